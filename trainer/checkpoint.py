"""Checkpoints: one file, written atomically, loaded with `weights_only=True`.

Contents (all plain types or tensors, so the safe unpickler accepts them): model and optimiser state, the
network's shape (`NetConfig`), step, stream position (next batch number per rank), the resolved training
config, the style (raw dict) and the preset name, and optionally the reading recipe (`recipe`: a plain dict,
trainer/recipe.py). A checkpoint names its style, so inference can refuse a mismatched one.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from synthstream.errors import UserError
from synthstream.output import atomic_write

FILE = "checkpoint.pt"
FORMAT = 1


def save(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, step: int,
         position: int, config: dict, style_raw: dict, preset: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    net = getattr(model, "net", None)
    state = {"format": FORMAT, "model": model.state_dict(), "net": plain(asdict(net)) if net is not None else None,
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "step": int(step), "position": int(position), "config": config, "style": style_raw, "preset": preset,
             "style_sha256": style_digest(style_raw)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


SHIPPED = Path(__file__).resolve().parent / "models"


def shipped_models() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.pt"))


def resolve(name_or_path: str) -> Path:
    """A checkpoint path, a run folder (its final checkpoint.pt, else the newest checkpoint Ray Train registered
    there: a run that is still going or was stopped), or the name of a model shipped with synthstream."""
    path = Path(name_or_path)
    if path.is_dir() and not (path / FILE).exists() and (path / "ray" / "train").is_dir():
        from ray.train import Result

        try:
            newest = Result.from_path(str(path / "ray" / "train")).checkpoint
        except Exception:  # noqa: BLE001 - no record, or one a full disk left empty (Ray's own error types)
            newest = None
        if newest is not None:
            return Path(newest.path) / FILE
    if path.exists():
        return path
    if "/" not in name_or_path and (SHIPPED / f"{name_or_path}.pt").exists():
        return SHIPPED / f"{name_or_path}.pt"
    shipped = ", ".join(shipped_models()) or "none"
    raise UserError(f"checkpoint {name_or_path!r} does not exist (shipped models: {shipped})")


def load(path: str | Path) -> dict:
    """Read a checkpoint safely. Raises UserError (one line) if it is missing, corrupt or not ours."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist")
    try:
        with warnings.catch_warnings():         # torch warns about a raw pickle's protocol before refusing it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a zip, unsafe pickle...
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()            # torch colours its refusals
        first = (text.splitlines() or [type(e).__name__])[0]
        if "weights_only" in text or "Unsupported global" in text:
            first = "it holds Python objects beyond tensors and plain types, which are never loaded"
        raise UserError(f"checkpoint {str(path)!r} cannot be read ({first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise UserError(f"checkpoint {str(path)!r} is not a synthstream checkpoint (format {FORMAT})")
    problem = _problem(state)
    if problem:
        raise UserError(f"checkpoint {str(path)!r} is damaged: {problem}")
    return state


def style_digest(style_raw: dict) -> str:
    """The sha256 of a style's raw form (sorted JSON): saved with the weights, so an edit shows."""
    return hashlib.sha256(json.dumps(style_raw, sort_keys=True).encode()).hexdigest()


def _problem(state: dict) -> str:
    """What is wrong with a checkpoint's contents ("" if nothing): style (and its digest), preset, network
    shape and its size, weights."""
    from synthstream.style import parse_style
    from trainer.model import PRESETS, net_config_problem

    if not isinstance(state.get("style"), dict):
        return "it names no style"
    try:
        parse_style(state["style"], "checkpoint")
    except UserError as e:
        return f"its style is invalid ({e})"
    digest = state.get("style_sha256")              # checkpoints written before the digest have none
    if digest is not None and digest != style_digest(state["style"]):
        return ("its style was edited after training (it no longer matches the digest saved with the weights; "
                "an edited alphabet would read every character wrong)")
    if state.get("net") is None and state.get("preset") not in PRESETS:
        return f"unknown preset {state.get('preset')!r}"
    if state.get("net") is not None:
        why = net_config_problem(state["net"], state["style"])
        if why:
            return f"its network shape is invalid ({why})"
    weights = state["model"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        return "its weights are not a state dict of tensors"
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        return f"non-finite weights in {bad[0]}" + (f" and {len(bad) - 1} more tensors" if len(bad) > 1 else "")
    return ""


def plain(value):
    """Tuples to lists, so the safe unpickler and JSON both take the value."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def export(src: str | Path, dst: str | Path, recipe: str | None = None) -> dict:
    """A slim copy for shipping: weights in float16, no optimiser state; loads like any checkpoint. The
    reading recipe the source holds is kept; `recipe` (a spec, trainer/recipe.py: parse_spec) fits a new one
    for the float16 weights and stores it."""
    state = load(src)
    state["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model"].items()}
    state["optimizer"] = None
    if recipe is not None:                      # fitted with the weights it will be read with
        from trainer.recipe import apply_spec

        apply_spec(state, recipe)
    atomic_write(dst, lambda tmp: torch.save(state, tmp))
    return state
