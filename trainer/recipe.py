"""A model's reading recipe: how it reads best, stored in its checkpoint and used by default.

A recipe names the decoder (`method`, trainer/decoders) and its options (`beam_width`, `particles`,
`bandwidth`, or a plugin's own in `options`), the text prior it is read under (`prior`: a style whose text
prior replaces the training style's; None: the model's own), the shift ensemble (`shifts`) and the
calibration `temperature`, fitted on synthetic captchas only (`calibration` says how: n, scale, the synthetic
figures), with the versions that produced it. `resolve` merges, part by part, the package default (beam
search under the model's own prior, T = 1), the checkpoint's stored recipe and the caller's overrides, and
records in `sources` where each part came from. The stored temperature was fitted for one reading: when an
override changes the method, prior or shifts it no longer applies (T = 1, and the source says why).

    fit_recipe(model, trained, {"method": "beam", "prior": "wikipedia", "shifts": 9}, calibrate=2000)
    store(state, recipe)                           # into a checkpoint's dict; trainer.checkpoint.export saves it
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from synthstream.errors import UserError

PARTS = ("method", "beam_width", "particles", "bandwidth", "prior", "shifts", "temperature")
TEMPERATURE_FOR = ("method", "prior", "shifts")          # the parts a fitted temperature belongs to
CALIBRATE_N = 2000                                       # synthetic captchas a stored temperature is fitted on
DEFAULT = "default"
STORED = "checkpoint"


@dataclass(frozen=True)
class Recipe:
    """How a model reads best: the decoding method and its options, the text prior, shifts, temperature."""

    method: str = "beam"
    beam_width: int = 16
    particles: int = 100
    prior: str | None = None                    # a style whose text prior decodes; None: the model's own
    shifts: int = 1
    temperature: float = 1.0
    bandwidth: float | None = None              # importance sampling's ABC kernel (None: calibrated per style)
    options: dict = field(default_factory=dict)       # a plugin decoder's own options
    calibration: dict | None = None             # how the temperature was fitted (synthetic n, scale, figures)
    versions: dict = field(default_factory=dict)      # what produced the stored recipe
    sources: dict = field(default_factory=dict)       # part -> where its value came from

    def __post_init__(self) -> None:
        from trainer.decoders import get
        from trainer.infer import SHIFTS

        try:
            decoder = get(self.method)
        except ValueError as e:
            raise UserError(f"recipe: {e}") from None
        if not isinstance(self.shifts, int) or not 1 <= self.shifts <= len(SHIFTS):
            raise UserError(f"recipe: shifts {self.shifts!r} must be in [1, {len(SHIFTS)}]")
        if self.shifts > 1 and not decoder.shiftable:
            raise UserError(f"--shifts applies to --method {', '.join(_shiftable())}: {self.method} takes no "
                            f"shifts")
        if not isinstance(self.temperature, (int, float)) or not (self.temperature > 0 and
                                                                 math.isfinite(self.temperature)):
            raise UserError(f"recipe: temperature {self.temperature!r} must be a positive number")
        try:
            self.decoder_options()
        except (ValueError, TypeError) as e:
            raise UserError(f"recipe: {e}") from None

    @property
    def decoder(self):
        from trainer.decoders import get

        return get(self.method)

    def decoder_options(self):
        """The decoder's Options from this recipe's fields (and `options` for a plugin's own)."""
        from trainer.decoders import make_options

        values = {k: getattr(self, k) for k in PARTS} | dict(self.options)
        return make_options(self.decoder, values)

    def parts(self) -> dict:
        """The parts that decide a reading: method, its options, prior, shifts, temperature."""
        keep = {"method", "prior", "shifts", "temperature"}
        from trainer.decoders import option_names

        keep |= set(option_names(self.decoder))
        return {k: v for k, v in self.to_dict().items() if k in keep or (k == "options" and v)}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("sources")
        return d

    def describe(self) -> str:
        """One line: 'beam, width 16, prior wikipedia, 9 shifts, T 0.61'."""
        opts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in dataclasses.asdict(self.decoder_options()).items()
                         if v is not None)
        prior = f", prior {self.prior}" if self.prior else ", the model's own prior"
        shifts = f", {self.shifts} shifts" if self.shifts > 1 else ""
        return f"{self.method} ({opts}){prior}{shifts}, T {self.temperature:.3g}"

    def where(self) -> str:
        """Where the parts came from: 'method, prior, shifts, temperature: checkpoint; beam_width: default'."""
        by: dict[str, list[str]] = {}
        for k in self.parts():
            by.setdefault(self.sources.get(k, DEFAULT), []).append(k)
        return "; ".join(f"{', '.join(ks)}: {src}" for src, ks in by.items())


def _shiftable() -> list[str]:
    from trainer.decoders import get, names

    return [n for n in names() if get(n).shiftable]


def stored(state: dict) -> dict | None:
    """The recipe a checkpoint holds (None if it holds none). Raises UserError for a malformed one."""
    raw = state.get("recipe")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UserError("checkpoint: its reading recipe is not a table")
    known = {f.name for f in dataclasses.fields(Recipe)} - {"sources"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"checkpoint: its reading recipe has unknown parts: {', '.join(unknown)}")
    Recipe(**raw)                                   # checks every part
    return raw


def resolve(state: dict | None, overrides: dict | None = None, how: str = "override") -> Recipe:
    """The recipe a reading uses: the default, then the checkpoint's, then `overrides` (None values are not
    given), each part's source recorded (`how` names the overrides, e.g. "flag")."""
    from trainer.decoders import all_options

    base = dataclasses.asdict(Recipe())
    base.pop("sources")
    sources = {k: DEFAULT for k in base}
    saved = stored(state) if state is not None else None
    if saved:
        base.update(saved)
        sources.update({k: STORED for k in saved})
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(PARTS) - set(all_options()))
    if unknown:
        raise UserError(f"unknown recipe parts: {', '.join(unknown)} (known: {', '.join(PARTS)})")
    changed = [k for k in TEMPERATURE_FOR if k in given and given[k] != base.get(k)]
    for k, v in given.items():
        if k in base:
            base[k] = v
        else:
            base["options"] = {**base["options"], k: v}
        sources[k] = how
    if changed and "temperature" not in given and sources["temperature"] == STORED:
        base["temperature"], base["calibration"] = 1.0, None
        sources["temperature"] = f"{DEFAULT} (the stored one was fitted for another {', '.join(changed)})"
    if "shifts" not in given and base["shifts"] > 1 and "method" in given:
        from trainer.decoders import get

        if not get(base["method"]).shiftable:
            base["shifts"], sources["shifts"] = 1, f"{DEFAULT} ({base['method']} takes no shifts)"
    return Recipe(**base, sources=sources)


def versions() -> dict:
    """What produced a recipe: the package, torch, and the git commit when run from a checkout."""
    import subprocess
    from pathlib import Path

    import torch

    import synthstream

    out = {"synthstream": synthstream.__version__, "torch": str(torch.__version__)}   # TorchVersion: not plain
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        if commit.returncode == 0:
            out["commit"] = commit.stdout.strip()
    except OSError:
        pass
    return out


def fit_recipe(model, trained, parts: dict, *, calibrate: int = CALIBRATE_N, scale: float = 1.0,
               seed: int = 0) -> Recipe:
    """A recipe with `parts` (method, options, prior, shifts; the rest default) and a temperature fitted on
    `calibrate` synthetic captchas of the style it is read under, drawn with its nuisance prior widened `scale`
    times (trainer/evaluate.py: calibrate; never real data). calibrate 0: T = 1."""
    from trainer.evaluate import calibrate as fit_temperature
    from trainer.reader import Reader

    recipe = resolve(None, {k: v for k, v in parts.items() if k != "temperature"}, how="fitted")
    reader = Reader.build(model, trained, recipe)
    calibration = None
    temperature = 1.0
    if calibrate:
        calibration = fit_temperature(reader, calibrate, scale, seed=seed)
        temperature = calibration["temperature"]
    sources = {k: STORED for k in recipe.sources}
    return dataclasses.replace(recipe, temperature=temperature, calibration=calibration, versions=versions(),
                               sources=sources)


def store(state: dict, recipe: Recipe) -> dict:
    """Put the recipe into a checkpoint's dict (plain types only: the safe unpickler takes them)."""
    state["recipe"] = recipe.to_dict()
    return state


def parse_spec(text: str) -> tuple[dict, dict]:
    """`method=beam,prior=wikipedia,shifts=9,calibrate=2000,scale=1.5` -> (recipe parts, fitting options)."""
    from trainer.decoders import all_options

    parts: dict = {}
    fitting = {"calibrate": CALIBRATE_N, "scale": 1.0}
    types = {"method": str, "prior": str, "shifts": int, "temperature": float, "calibrate": int, "scale": float}
    for f in all_options().values():
        types.setdefault(f.name, f.metadata.get("type", str))
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            raise UserError(f"--recipe {text!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(types)}")
        try:
            v = types[key](value.strip())
        except Exception as e:  # noqa: BLE001 - argparse types raise ArgumentTypeError, builtins ValueError
            raise UserError(f"--recipe {text!r}: {key}: {e}") from None
        (fitting if key in ("calibrate", "scale") else parts)[key] = v
    if fitting["calibrate"] < 0 or fitting["scale"] <= 0:
        raise UserError(f"--recipe {text!r}: calibrate must be >= 0 and scale > 0")
    return parts, fitting


def apply_spec(state: dict, spec: str) -> Recipe:
    """Fit the recipe `spec` describes (parse_spec) for the model in `state` and store it there."""
    from trainer.model import model_from_checkpoint

    parts, fitting = parse_spec(spec)
    model, trained = model_from_checkpoint(state)
    if "temperature" in parts:
        recipe = resolve(None, parts, how="fitted")
        recipe = dataclasses.replace(recipe, versions=versions())
    else:
        recipe = fit_recipe(model.float(), trained, parts, **fitting)
    store(state, recipe)
    return recipe


def fit_into(path, spec: str = "") -> Recipe:
    """Fit the recipe `spec` describes (default: beam search under the model's own prior, T fitted on
    CALIBRATE_N synthetic captchas) and store it in the checkpoint file at `path`, atomically. A training
    run's last step: `fit_into(out / "checkpoint.pt")`."""
    import torch

    from synthstream.output import atomic_write
    from trainer.checkpoint import load

    state = load(path)
    recipe = apply_spec(state, spec)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return recipe
