"""A training run's settings, declared once.

`TrainConfig` is a kw-only dataclass whose fields are the options of `synthstream train` and the `[train]`
options of a sweep's space. Each option field is declared with `option(default, help, ...)`: its default, its
help text (the one place it is documented) and its flag's argument type; the checks are in `__post_init__`,
in Python as on the command line. Everything else is derived from these fields:

- the `train` and `sweep` flags, with their defaults in `--help` (`synthstream.commands.flags.add_config_flags`,
  `config_from_args`);
- the sweep's option table: name -> (type, default) (`sweep_options`);
- the run identity (`identity()`: the fields declared `identity=True`, what must match to continue a run);
- the summaries written into report.json and every checkpoint (`summary()`: every option).

Adding a training option is one `option(...)` field here (plus its use and its test). The stream the run reads
(`config.stream`, a `synthstream.stream.StreamConfig`) is built from the stream options; the Python API may
pass a ready `stream=` instead, whose values then replace them. docs/config.md is the user's reference.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from synthstream.errors import UserError

if TYPE_CHECKING:                    # these import Ray: not needed to build the CLI's parser
    from synthstream.stream import StreamConfig
    from trainer.sweep import Space

EVAL_METRIC = "eval/exact_rate"      # a sweep's end-of-trial metric (with --eval-data)
MAX_VAL_SIZE = 16384                 # validation images, rendered once and held in memory by rank 0
MAX_VAL_BYTES = 256 << 20            # ... and their pixels
MAX_MINUTES = 30 * 24 * 60
SWEEP_DEFAULTS = {"worker_cpus": 1.0}   # a trial shares the cluster: it cannot take "what the generators leave"


def option(default: Any, help: str, *, parse=None, flag: str | None = None, metavar: str | None = None,
           choices: tuple | None = None, identity: bool = False, cli: bool = True, sweep: bool = True):
    """A config field that is a user option (TrainConfig's, SweepConfig's). `parse`: the name of the flag's
    argument type in synthstream.argtypes (default: by the field's type; named, not imported: the CLI sits
    above this layer); `flag`: the flag's name if not the field's; `identity`: part of the run identity;
    `cli`/`sweep`: a command-line flag / a space option."""
    return field(default=default, metadata={"help": help, "parse": parse, "flag": flag, "metavar": metavar,
                                            "choices": choices, "identity": identity, "cli": cli, "sweep": sweep})


@dataclass(kw_only=True)
class TrainConfig:
    """One training run. Errors name these fields; the CLI's flags are these names with dashes."""

    # -- the stream ------------------------------------------------------------------------------------------
    style: str = option("tiny", "built-in style name or path to a style .toml", identity=True)
    prior_scale: float = option(1.0, "widen every nuisance range of the style this many times (1 = as written)",
                                parse="positive_float")
    seed: int = option(0, "the stream's seed (a sweep's trial uses seed + its number)", parse="seed",
                       identity=True)
    batch_size: int = option(64, "training images per step, per worker", parse="batch_size", identity=True)
    generators: int = option(1, "generator actors", parse="positive_int")
    generator_cpus: float = option(0.5, "CPUs per generator actor", parse="positive_float")
    generator_resource: str | None = option(
        None, "a custom Ray resource generator actors also require, to pin them to the nodes that advertise it "
              "(e.g. a CPU worker group started with --resources='{\"NAME\": 1}')",
        parse="custom_resource", metavar="NAME")
    resource_wait_s: float | None = option(
        None, "wait this long for an autoscaling cluster to add the nodes the run needs (default: 0 on the "
              "embedded Ray, 600 when joining a cluster)",
        parse="nonneg_float", flag="resource-wait", metavar="SECONDS", sweep=False)
    # -- network and optimiser -------------------------------------------------------------------------------
    preset: str = option("cpu", "network: cpu, paper, gpu, cpu-columns or gpu-columns (steps attend to image "
                                "columns)", identity=True)
    lr: float = option(2e-3, "peak learning rate (AdamW), in (0, 1)", parse="positive_float", identity=True)
    warmup_steps: int = option(50, "linear warm-up steps, then cosine decay to 5%% of lr",
                               parse="nonneg_int", identity=True)
    weight_decay: float = option(1e-4, "AdamW weight decay", parse="nonneg_float", identity=True)
    grad_clip: float = option(1.0, "clip the gradient norm to this", parse="positive_float", identity=True)
    # -- schedule ----------------------------------------------------------------------------------------------
    steps: int = option(500, "training steps (a re-run with more steps continues the run)",
                        parse="positive_int")
    max_minutes: float | None = option(
        None, "a wall-clock budget: validate, checkpoint and stop once it is spent (the lr schedule then runs on "
              "the larger of the step and time fractions)", parse="positive_float")
    val_every: int = option(100, "validate and checkpoint every N steps", parse="positive_int")
    val_size: int = option(512, f"validation images (a fixed synthetic set rank 0 renders once and holds in "
                                f"memory; at most {MAX_VAL_SIZE})", parse="positive_int", identity=True)
    log_every: int = option(10, "rank 0's progress interval, in steps", cli=False, sweep=False)
    # -- resources ---------------------------------------------------------------------------------------------
    workers: int = option(1, "Ray Train workers (DDP ranks)", parse="positive_int", identity=True)
    worker_cpus: float | None = option(
        None, "CPUs per training worker (default: what the generators leave of the cluster now, split evenly; "
              "set it on a cluster that autoscales)", parse="positive_float")
    torch_threads: int | None = option(
        None, "intra-op threads per training worker (default: its CPUs; 1 is faster on a busy host)",
        parse="positive_int")
    gpu: bool = option(False, "one GPU per worker (nccl, bf16, channels_last)")
    compile: bool = option(False, "torch.compile the network")
    max_failures: int = option(3, "worker-group restarts allowed", parse="nonneg_int")

    # -- not options -------------------------------------------------------------------------------------------
    style_fields: dict = field(default_factory=dict)
    """Style fields by dotted name (`warp.elastic_alpha`), set before the prior is widened (a sweep's)."""
    stream: StreamConfig | None = None
    """The stream the run reads: built from the options above, or given (Python API), whose values then
    replace the stream options."""

    def __post_init__(self) -> None:
        from trainer.model import PRESETS

        if self.preset not in PRESETS:
            raise UserError(f"preset {self.preset!r} is unknown; available: {', '.join(PRESETS)}")
        for name in ("workers", "steps", "val_every", "val_size", "log_every"):
            _check(name, getattr(self, name), int, 1)
        _check("warmup_steps", self.warmup_steps, int, 0)
        _check("max_failures", self.max_failures, int, 0)
        _check("weight_decay", self.weight_decay, float, 0.0)
        _check("grad_clip", self.grad_clip, float, 0.0, strict=True)
        if not (_number(self.lr) and 0 < self.lr < 1):
            raise UserError(f"lr = {self.lr!r} must be in (0, 1)")
        if self.worker_cpus is not None and not (_number(self.worker_cpus) and 0 < self.worker_cpus <= 1024):
            raise UserError(f"worker_cpus = {self.worker_cpus!r} must be in (0, 1024]")
        if self.torch_threads is not None:
            _check("torch_threads", self.torch_threads, int, 1, 1024)
        if self.max_minutes is not None and not (_number(self.max_minutes) and 0 < self.max_minutes <= MAX_MINUTES):
            raise UserError(f"max_minutes = {self.max_minutes!r} must be in (0, {MAX_MINUTES}] (30 days)")
        for name in ("gpu", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} = {getattr(self, name)!r} must be true or false")
        self.stream = self._stream() if self.stream is None else self._adopt(self.stream)
        self._check_val_size()
        self.val_every = min(self.val_every, self.steps)

    def _stream(self) -> StreamConfig:
        from synthstream.stream import StreamConfig
        from synthstream.style import load_style, parse_style

        if not isinstance(self.style, str):
            raise UserError(f"style = {self.style!r} must be a built-in style name or a path to a .toml")
        style = load_style(self.style)
        if self.style_fields:
            raw = style.to_raw()
            for name, value in self.style_fields.items():
                section, key = name.split(".", 1)
                raw.setdefault(section, {})[key] = value
            style = parse_style(raw, style.source)
        _check("prior_scale", self.prior_scale, float, 0.0, strict=True)
        return StreamConfig(style=style.widened(float(self.prior_scale)), seed=self.seed,
                            batch_size=self.batch_size, num_actors=self.generators, actor_cpus=self.generator_cpus,
                            actor_resource=self.generator_resource, resource_wait_s=self.resource_wait_s or 0.0)

    def _adopt(self, stream: StreamConfig) -> StreamConfig:
        """A ready stream (Python API): the stream options take its values, so summaries tell the truth."""
        from synthstream.stream import StreamConfig

        if not isinstance(stream, StreamConfig):
            raise TypeError(f"stream must be a synthstream.stream.StreamConfig, not {type(stream).__name__}")
        self.style, self.seed, self.batch_size = stream.style.name, stream.seed, stream.batch_size
        self.generators, self.generator_cpus = stream.num_actors, stream.actor_cpus
        self.generator_resource, self.resource_wait_s = stream.actor_resource, stream.resource_wait_s
        return stream

    def _check_val_size(self) -> None:
        style = self.stream.style
        pixels = self.val_size * style.height * style.width
        if self.val_size > MAX_VAL_SIZE or pixels > MAX_VAL_BYTES:
            most = min(MAX_VAL_SIZE, MAX_VAL_BYTES // (style.height * style.width))
            raise UserError(f"val_size = {self.val_size} must be at most {most} for style {style.name!r} (rank 0 "
                            f"renders the validation set once and holds it in memory: {pixels / 2**20:.0f} MiB)")

    @property
    def max_seconds(self) -> float | None:
        return None if self.max_minutes is None else 60.0 * self.max_minutes

    @property
    def use_gpu(self) -> bool:
        return self.gpu

    def lr_at(self, step: int, time_fraction: float = 0.0) -> float:
        """Linear warm-up, then cosine decay to 5% of lr over the steps (or the time budget, if that runs first)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = max((step - self.warmup_steps) / max(1, self.steps - self.warmup_steps), time_fraction)
        return self.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def identity(self) -> dict:
        """What must match for a later run to continue this one (the `identity=True` options; the style by its
        content, after its fields and prior scale are applied)."""
        return {f.name: self.stream.style.canonical if f.name == "style" else getattr(self, f.name)
                for f in options() if f.metadata["identity"]}

    def summary(self) -> dict:
        """JSON-able settings for reports and checkpoints: every option (the style by name)."""
        out = {f.name: getattr(self, f.name) for f in options()}
        if self.style_fields:
            out["style_fields"] = dict(self.style_fields)
        return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check(name: str, value: Any, kind: type, low, high=None, *, strict: bool = False) -> None:
    """`value` is a `kind` (an int for int; a finite number for float) >= low (> low if strict), <= high."""
    ok = (isinstance(value, int) and not isinstance(value, bool)) if kind is int else _number(value)
    if ok:
        ok = (value > low if strict else value >= low) and (high is None or value <= high)
    if not ok:
        what = "an integer" if kind is int else "a number"
        bound = f"> {low}" if strict else f">= {low}"
        raise UserError(f"{name} = {value!r} must be {what} {bound}" + (f" and <= {high}" if high else ""))


@dataclass(kw_only=True)
class SweepConfig:
    """One sweep. Errors name these fields; the `sweep` command's flags are these names with dashes."""

    space: Space
    """The parsed space file (`--space`, `load_space`)."""
    metric: str = option("val/string_accuracy", "what the best trial maximises (or minimises): "
                         "val/string_accuracy, val/loss, val/acc/char, train_loss, or eval/exact_rate with "
                         "--eval-data", identity=True)
    mode: str | None = option(None, "max or min (default: min for a loss, else max)", choices=("max", "min"),
                              identity=True)
    trials: int = option(1, "samples of the space: random dimensions are drawn this many times; a grid runs "
                            "whole in each sample (Tune's num_samples)", parse="positive_int", identity=True)
    scheduler: str = option("asha", "asha: stop poor trials at a validation (every val_every steps); none: run "
                                    "all to the end", choices=("asha", "none"), identity=True)
    max_concurrent: int | None = option(None, "trials at once (default and upper bound: as many as the cluster "
                                              "fits whole)", parse="positive_int")
    eval_data: str | None = option(None, "labelled folder: each trial ends with its exact-string rate there "
                                         "(eval/exact_rate)", metavar="DIR", identity=True)
    resource_wait_s: float | None = option(
        None, "how long a trial may wait for its training workers to be placed before it fails (default: 120 "
              "on the embedded Ray, 600 when joining a cluster)", parse="positive_float",
        flag="resource-wait", metavar="SECONDS")

    def __post_init__(self) -> None:
        if self.resource_wait_s is not None and not (isinstance(self.resource_wait_s, (int, float))
                                                     and 1 <= self.resource_wait_s <= 86400):
            raise UserError(f"--resource-wait {self.resource_wait_s!r} must be in [1, 86400] seconds")
        if self.mode is None:
            self.mode = "min" if "loss" in self.metric else "max"
        if self.mode not in ("max", "min"):
            raise UserError(f"--mode {self.mode!r} must be max or min")
        if self.scheduler not in ("asha", "none"):
            raise UserError(f"--scheduler {self.scheduler!r} must be asha or none")
        if not isinstance(self.trials, int) or self.trials < 1:
            raise UserError(f"--trials {self.trials!r} must be a positive integer")
        if self.max_concurrent is not None and (not isinstance(self.max_concurrent, int) or self.max_concurrent < 1):
            raise UserError(f"--max-concurrent {self.max_concurrent!r} must be a positive integer")
        if self.metric == EVAL_METRIC and self.eval_data is None:
            raise UserError(f"--metric {EVAL_METRIC} needs --eval-data DIR (a labelled folder)")
        if self.metric == EVAL_METRIC and self.scheduler == "asha":
            raise UserError(f"--metric {EVAL_METRIC} is measured once, when a trial ends, so ASHA cannot stop "
                            f"trials on it: add --scheduler none, or stop on a validation metric such as "
                            f"val/string_accuracy")

    def identity(self) -> dict:
        """What must match for a later command to continue this sweep: the space and the identity options."""
        return {"space": self.space.identity(),
                **{f.name: getattr(self, f.name) for f in options(SweepConfig) if f.metadata["identity"]}}

    def total_trials(self) -> int:
        return self.trials * self.space.grid_points()


# -- derived: the option table, the flags ------------------------------------------------------------------------

def options(cls: type = None) -> list:
    """The option fields of a config class (TrainConfig unless told), in declaration order."""
    return [f for f in fields(cls or TrainConfig) if "help" in f.metadata]


def option_type(f) -> type:
    """An option's value type: int, float, str or bool (an optional's inner type)."""
    return {"int": int, "float": float, "str": str, "bool": bool}[str(f.type).removesuffix(" | None")]


def sweep_options() -> dict[str, tuple[type, Any]]:
    """What a sweep's space may set: name -> (type, the sweep's default)."""
    return {f.name: (option_type(f), SWEEP_DEFAULTS.get(f.name, f.default)) for f in options()
            if f.metadata["sweep"]}


def flag_of(f) -> str:
    """An option's command-line flag: `--batch-size` for batch_size (or its `flag`)."""
    return "--" + (f.metadata["flag"] or f.name).replace("_", "-")


assert all(f.default is not MISSING for f in options()), "every option has a default"
JOINED_RESOURCE_WAIT_S = 600.0       # resource_wait_s's default when joining a cluster (which may autoscale)

def reference() -> str:
    """The options as a Markdown table (docs/config.md holds it; a test keeps it current)."""
    rows = ["| option (space) | `train` flag | default | identity | meaning |", "|---|---|---|---|---|"]
    for f in options():
        flag = flag_of(f) if f.metadata["cli"] else "-"
        where = f"`{f.name}`" if f.metadata["sweep"] else f"`{f.name}` (not in a space)"
        value = str(f.default).lower() if isinstance(f.default, bool) else f.default
        default = "-" if f.default is None else f"`{value}`"
        text = f.metadata["help"].replace("%%", "%").replace("|", "\\|")
        rows.append(f"| {where} | `{flag}` | {default} | {'yes' if f.metadata['identity'] else ''} | {text} |")
    return "\n".join(rows) + "\n"


def update_docs(path: str = "docs/config.md") -> None:
    """Rewrite the option table between the markers of docs/config.md: `python -m trainer.config`."""
    from pathlib import Path

    doc = Path(path).read_text()
    begin = doc.index("<!-- options:begin")
    begin = doc.index("-->\n", begin) + len("-->\n")
    end = doc.index("<!-- options:end -->")
    Path(path).write_text(doc[:begin] + reference() + doc[end:])


if __name__ == "__main__":
    update_docs()
