"""Training sweeps on Ray Tune: `synthstream sweep --space SPACE.toml ...` (and `sweep(SweepConfig(...), out)`).

A space file holds the fixed training options (`[train]`, the `synthstream train` flags with underscores) and
the search dimensions (`[search]`), each one table with one kind: `choice`, `grid` (every value, in each of
the `trials` samples), `uniform`, `loguniform` (`[lo, hi]`) or `randint` (`[lo, hi]`, both included), over
any train option or any style field by its dotted name (`warp.elastic_alpha`):

    [train]
    style = "tiny"
    steps = 200
    [search]
    lr = { loguniform = [3e-4, 1e-2] }
    prior_scale = { grid = [1.0, 1.5] }
    "warp.elastic_alpha" = { uniform = [4.0, 8.0] }

Every value a dimension can take (each choice, each end of a range) is turned into the training config the
train command would build before any trial starts, so a bad space is one UserError naming its dotted field.

How a trial runs (the composition Ray documents for Tune with Train V2): a Tune *function* trial calls
`trainer.run.run` with its own run folder (`OUT/trials/<trial id>`), which builds the generator pool and the
`TorchTrainer` exactly as `synthstream train` does, with Tune's `TuneReportCallback` among the Ray Train
callbacks: rank 0's report (every `val_every` steps: validation metrics, checkpoint path) reaches Tune, so
ASHA can stop a poor trial at a validation. Each trial's stream has its own seed (`train.seed` + the trial's
number).

Resources (what one trial holds, and why a sweep cannot deadlock): a trial's Tune placement group has an empty
head bundle (the trial function only waits) and one bundle per generator actor, which the actors the trial
creates land in (Tune's placement groups capture child actors). Ray Train places the training workers in a
placement group of its own, which Ray Train V2 cannot nest inside Tune's, so "one trial" is the two together
(`trial_resources`) and `max_concurrent_trials` is capped at how many whole trials the cluster fits now
(`concurrency`): trials never hold half of what they need while waiting on each other. Two more guards:
- When Tune stops a trial (ASHA, or its last step) or the trial's process dies, Ray Train's controller dies
  with it and the workers' placement group outlives both (a placement group belongs to the job, not to the
  actor that made it); Ray Train's own cleaner finds dead controllers through the State API, which an
  embedded Ray (no dashboard) does not serve. Left alone it holds the workers' CPUs for the rest of the sweep
  and the next trials wait for ever, so `TrialCleanup` removes every placement group of the sweep's job whose
  creating actor is dead, and stops Ray Train's cleaner actor of such a run (detached, it would wait for
  ever for that State API: a ~200 MB idle process per stopped trial).
- A trial whose workers cannot be placed within `resource_wait_s` fails with one line instead of waiting.

Output folder (a local path or a pyarrow URI): sweep.json (the sweep's identity), tune/ (Tune's experiment:
re-running the same command after the driver died restores it, finished trials are not run again and a
trial cut off mid-way continues from its newest checkpoint), trials/<id>/ (each trial's training run),
results.csv, best.json, best.pt (the best trial's model, exported), sweep.png (the metric against each swept
parameter).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
from ray.tune import Callback

from synthstream.errors import RunFailed, UserError
from trainer.config import EVAL_METRIC, JOINED_RESOURCE_WAIT_S, SweepConfig, TrainConfig, sweep_options
from trainer.storage import RunStorage, held_marker, lock, unlock

log = logging.getLogger("synthstream.sweep")

SWEEP_FILE = "sweep.json"
TUNE_NAME = "tune"
KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
STYLE_SECTIONS = ("latents", "layout", "warp", "ink", "clutter", "text")
ASHA_REDUCTION = 2
TRIAL_WAIT_S = 120.0                # resource_wait_s's default on the embedded Ray (and one already started)

# The train options a space may set, with the sweep's defaults: name -> (type, default), derived from
# trainer/config.py's TrainConfig (`synthstream train`'s defaults, except worker_cpus: a trial cannot take "what
# the generators leave of the cluster", it shares the cluster with other trials).
TRAIN_OPTIONS: dict[str, tuple[type, Any]] = sweep_options()
NOT_SEARCHABLE = {"seed": "each trial's stream seed is train.seed + its trial number; set train.seed instead"}


# -- the space ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """One search dimension: `name` (a train option or a dotted style field), its kind and its values
    (choice/grid) or its inclusive [lo, hi] range."""

    name: str
    kind: str
    values: tuple

    def domain(self):
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        lo, hi = self.values
        if self.kind == "uniform":
            return tune.uniform(lo, hi)
        if self.kind == "loguniform":
            return tune.loguniform(lo, hi)
        return tune.randint(lo, hi + 1)              # Tune's upper bound is exclusive; ours is included

    def probes(self) -> list:
        """Every value to check before the sweep starts: each choice, or both ends of the range."""
        if self.kind in ("choice", "grid"):
            return list(self.values)
        lo, hi = self.values
        return [float(lo), float(hi)] if self.kind in ("uniform", "loguniform") else [lo, hi]

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"

    def to_raw(self) -> dict:
        return {self.kind: list(self.values)}


@dataclass(frozen=True)
class Space:
    """A parsed space file: fixed options and search dimensions (see the module doc)."""

    source: str
    fixed: dict
    dimensions: tuple[Dimension, ...]

    def param_space(self) -> dict:
        return {d.name: d.domain() for d in self.dimensions}

    def options(self, params: dict) -> dict:
        """A trial's options: defaults, then the fixed ones, then its sampled parameters."""
        return {**{k: v for k, (_, v) in TRAIN_OPTIONS.items()}, **self.fixed, **params}

    def grid_points(self) -> int:
        return math.prod(len(d.values) for d in self.dimensions if d.kind == "grid")

    def identity(self) -> dict:
        return {"train": self.fixed, "search": {d.name: d.to_raw() for d in self.dimensions}}

    def max_option(self, name: str) -> Any:
        """The largest value an option takes in any trial (for resources)."""
        for d in self.dimensions:
            if d.name == name:
                return max(d.probes())
        return self.options({})[name]


def load_space(path: str | Path) -> Space:
    """Read and check a space file's structure. Raises UserError naming the dotted field."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--space {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--space {str(path)!r}: not valid TOML: {e}") from None
    return parse_space(raw, str(p.resolve()), base=p.resolve().parent)


def parse_space(raw: dict, source: str = "<space>", base: Path | None = None) -> Space:
    """The structure of a space dict (as read from TOML); values are checked by `check_space`."""
    def bad(where: str, why: str) -> UserError:
        return UserError(f"space {source}: {where}: {why}")

    extra = sorted(set(raw) - {"train", "search"})
    if extra:
        raise bad(extra[0], "unknown table; a space has [train] (fixed options) and [search] (dimensions)")
    fixed, search = raw.get("train", {}), raw.get("search", {})
    for name, table in (("train", fixed), ("search", search)):
        if not isinstance(table, dict):
            raise bad(name, "must be a table")
    if not search:
        raise bad("search", "no dimensions; add at least one, e.g. lr = { loguniform = [1e-4, 1e-2] }")
    fixed = {name: _option_value(f"train.{name}", name, value, bad) for name, value in fixed.items()}
    dimensions = []
    for name, spec in search.items():
        where = f"search.{name}"
        _check_option_name(where, name, bad)
        if name in NOT_SEARCHABLE:
            raise bad(where, NOT_SEARCHABLE[name])
        if name in fixed:
            raise bad(where, "also set in [train]; an option is either fixed or searched")
        if not isinstance(spec, dict) or len(spec) != 1:
            raise bad(where, f"must be a table with one of {', '.join(KINDS)}, e.g. {{ choice = [1, 2] }}")
        (kind, values), = spec.items()
        if kind not in KINDS:
            raise bad(f"{where}.{kind}", f"unknown kind; one of {', '.join(KINDS)}")
        if not isinstance(values, list):
            raise bad(f"{where}.{kind}", "must be a list")
        if kind in ("choice", "grid"):
            if not values:
                raise bad(f"{where}.{kind}", "is empty; give at least one value")
            values = [_option_value(f"{where}.{kind}", name, v, bad) for v in values]
            if len({json.dumps(v) for v in values}) != len(values):
                raise bad(f"{where}.{kind}", f"{values!r} repeats a value")
        else:
            values = _range(f"{where}.{kind}", kind, values, bad)
        dimensions.append(Dimension(name, kind, tuple(values)))
    if base is not None:               # style files relative to the space file; trials run in other folders
        fixed = {k: _absolute_style(v, base) if k == "style" else v for k, v in fixed.items()}
        dimensions = [Dimension(d.name, d.kind, tuple(_absolute_style(v, base) for v in d.values))
                      if d.name == "style" else d for d in dimensions]
    return Space(source=source, fixed=fixed, dimensions=tuple(dimensions))


def _check_option_name(where: str, name: str, bad) -> None:
    if "." in name:
        section = name.split(".", 1)[0]
        if section not in STYLE_SECTIONS:
            raise bad(where, f"unknown style section {section!r}; style fields are one of "
                             f"{', '.join(STYLE_SECTIONS)} then a field, e.g. warp.elastic_alpha")
    elif name not in TRAIN_OPTIONS:
        raise bad(where, f"unknown option; known: {', '.join(TRAIN_OPTIONS)}, or a style field such as "
                         f"warp.elastic_alpha")


def _option_value(where: str, name: str, value: Any, bad) -> Any:
    """A value's type for its option (the option's range is checked by building the config)."""
    _check_option_name(where, name, bad)
    if "." in name:
        return value                                   # the style parser checks style fields
    kind = TRAIN_OPTIONS[name][0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {str: isinstance(value, str), bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: number and math.isfinite(value)}[kind]
    if not ok:
        what = {str: "a string", bool: "true or false", int: "an integer", float: "a finite number"}[kind]
        raise bad(where, f"{value!r} must be {what}")
    return value


def _range(where: str, kind: str, values: list, bad) -> list:
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                   for v in values):
        raise bad(where, f"{values!r} must be [lo, hi], two finite numbers")
    lo, hi = values
    if lo > hi:
        raise bad(where, f"lo {lo!r} > hi {hi!r}")
    if kind == "loguniform" and lo <= 0:
        raise bad(where, f"lo {lo!r} must be > 0 for a log scale")
    if kind == "randint" and not all(isinstance(v, int) for v in values):
        raise bad(where, f"{values!r} must be two integers")
    return values


def _absolute_style(value: Any, base: Path) -> Any:
    if isinstance(value, str) and (value.endswith(".toml") or "/" in value):
        return str((base / value).resolve())
    return value


# -- options -> a training config -------------------------------------------------------------------------------

def train_config(options: dict, seed: int | None = None) -> TrainConfig:
    """The TrainConfig `synthstream train` would build from these options (style fields applied before the
    prior is widened). Raises UserError as the train command would."""
    plain = {k: v for k, v in options.items() if "." not in k}
    fields = {k: v for k, v in options.items() if "." in k}
    return TrainConfig(**{**plain, **({} if seed is None else {"seed": seed})}, style_fields=fields)


def check_space(space: Space) -> list[str]:
    """Build the config of every value each dimension can take (the others at their first value), so a value
    the train command would refuse fails now, naming its field. Returns the metrics every trial reports."""
    from synthstream.trace import codec_of

    try:
        base = train_config(space.options({}))
    except UserError as e:
        raise UserError(f"space {space.source}: [train]: {e}") from None
    for d in space.dimensions:
        for value in d.probes():
            try:
                train_config(space.options({d.name: value}))
            except UserError as e:
                raise UserError(f"space {space.source}: search.{d.name} = {value!r}: {e}") from None
    codec = codec_of(base.stream.style)
    return (["val/loss", "val/string_accuracy", "val/acc/char", "train_loss"]
            + [f"val/acc/{a}" for a in codec.addresses])


# -- the sweep --------------------------------------------------------------------------------------------------

@dataclass
class TrialPlan:
    """What every trial gets (through the object store)."""

    space: Space
    out: str                          # the sweep's --out
    eval_data: str | None = None
    resource_wait_s: float = 120.0    # SweepConfig.resource_wait_s

    def run_folder(self, trial_id: str) -> str:
        return _join(self.out, f"trials/{trial_id}")


def trial_number(trial_id: str) -> int:
    """The trial's number within the sweep (Tune ids end in `_00003`), stable across a restore."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else zlib.crc32(trial_id.encode())


def run_trial(params: dict, plan: TrialPlan) -> None:
    """A Tune function trial: one training run in its own folder, reporting to Tune through Ray Train's
    callback; then, with eval data, the exact-string rate there."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from trainer.run import run as run_training

    trial_id = ray.tune.get_context().get_trial_id()
    options = plan.space.options(params)
    config = train_config(options, seed=options["seed"] + trial_number(trial_id))
    out = plan.run_folder(trial_id)
    report = run_training(config, out, progress=False, callbacks=[TuneReportCallback()],
                          trial_start_s=plan.resource_wait_s)
    final = {k: v for k, v in report["final"].items() if isinstance(v, (int, float))}
    if plan.eval_data:
        final[EVAL_METRIC] = evaluate_run(out, plan.eval_data)
    ray.tune.report(final)           # the final figures again (and eval): also when the run had already finished


def evaluate_run(out: str, eval_data: str) -> float:
    """Exact-string rate of a run's final model on a labelled folder: beam search (width 16) under the style's
    own text prior, the best reader measured (README, real captchas)."""
    from trainer.checkpoint import load
    from trainer.evaluate import evaluate
    from trainer.images import load_labelled_dir
    from trainer.model import model_from_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        path.write_bytes(RunStorage(out).read_bytes("checkpoint.pt"))
        model, style = model_from_checkpoint(load(path))
    items = load_labelled_dir(eval_data, style)
    report, _ = evaluate(model, style, items, method="beam", particles=1, bandwidth=None, beam_width=16)
    return report["exact_rate"]


class SweepProgress(Callback):
    """The progress view: one log line per trial event, with the counts of running, pending, ended and failed
    trials (an ended trial's line says whether it finished or was stopped early)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    @staticmethod
    def _counts(trials) -> str:
        from collections import Counter

        c = Counter(t.status for t in trials)
        return (f"[{c.get('RUNNING', 0)} running, {c.get('PENDING', 0)} pending, {c.get('TERMINATED', 0)} ended, "
                f"{c.get('ERROR', 0)} failed]")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        params = " ".join(f"{k}={_short(v)}" for k, v in trial.config.items())
        log.info("%s trial %s started: %s", self._counts(trials), trial.trial_id, params)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        log.info("%s trial %s step %s: %s = %s", self._counts(trials), trial.trial_id, result.get("step"),
                 self.metric, _short(result.get(self.metric, "-")))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        log.info("%s trial %s ended at step %s: %s = %s", self._counts(trials), trial.trial_id, result.get("step"),
                 self.metric, _short(result.get(self.metric, "-")))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        log.info("%s trial %s failed (re-run the same command to retry it): %s", self._counts(trials),
                 trial.trial_id, trial.error_file or "")


class TrialCleanup(Callback):
    """Removes the placement groups of this sweep's job whose creating actor has died: the training workers'
    group of a trial Tune stopped or that died (see the module doc). Such a group can never be used again (its
    Ray Train controller is gone), so nothing is lost; the same goes for Ray Train's cleaner actor of that
    run. Checked every CHECK_S while the sweep runs, and at its end."""

    CHECK_S = 2.0
    TRAIN_GROUP_CLEANER = "PlacementGroupCleaner"     # Ray Train's detached per-run actor (see free)

    def __init__(self) -> None:
        self.checked = 0.0

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() - self.checked >= self.CHECK_S:
            self.free()

    def on_experiment_end(self, trials, **info) -> None:
        self.free()

    def drain(self, wait_s: float = 15.0) -> None:
        """After the sweep: the last trials' processes may still be ending (Tune stops them asynchronously);
        free their groups and cleaners as their controllers go, for up to `wait_s`."""
        from cluster.ray_private import live_detached_actors, orphaned_placement_groups

        deadline = time.monotonic() + wait_s
        while True:
            self.free()
            try:
                if time.monotonic() > deadline or not (orphaned_placement_groups(alive_too=True)
                                                       or live_detached_actors(self.TRAIN_GROUP_CLEANER)):
                    return
            except Exception:                     # best effort, as in free()
                return
            time.sleep(0.5)

    def free(self) -> None:
        import ray
        from ray.util.placement_group import PlacementGroup, remove_placement_group

        from cluster.ray_private import end_stray_detached_actors, orphaned_placement_groups

        self.checked = time.monotonic()
        try:
            for hex_id in orphaned_placement_groups():
                remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(hex_id)))
                log.info("freed placement group %s: the Ray Train controller that made it is gone (a stopped "
                         "or failed trial)", hex_id[:12])
            if ended := end_stray_detached_actors(self.TRAIN_GROUP_CLEANER):    # of dead controllers, as above
                log.info("ended %d of Ray Train's cleaner actors whose runs are gone", ended)
        except Exception as e:                    # best effort: never end the sweep over it
            log.warning("could not free the placement groups of ended trials: %s", e)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _join(out: str, name: str) -> str:
    if "://" in out:
        return out.rstrip("/") + "/" + name
    return str(Path(out).expanduser().resolve() / name)


def trial_resources(space: Space) -> tuple[list[dict], dict[str, float]]:
    """A trial's placement-group bundles (an empty head for the trial function, one per generator actor) and
    everything one trial holds at once, Ray Train's workers included."""
    generators, gen_cpus = space.max_option("generators"), space.max_option("generator_cpus")
    workers, worker_cpus = space.max_option("workers"), space.max_option("worker_cpus")
    gpu = any(space.options({d.name: v})["gpu"] for d in space.dimensions for v in d.probes()) \
        or space.options({})["gpu"]
    bundles = [{}] + [{"CPU": float(gen_cpus)} for _ in range(generators)]
    whole = {"CPU": generators * gen_cpus + workers * worker_cpus}
    if gpu:
        whole["GPU"] = float(workers)
    return bundles, whole


def concurrency(whole: dict[str, float], asked: int | None) -> int:
    """Trials that fit in the cluster at once (never more than asked). Raises UserError if none fits."""
    import ray

    have = ray.available_resources()           # what other work on the cluster leaves, not its total
    fits = min(int(have.get(k, 0.0) / v + 1e-9) if v > 0 else 10**6 for k, v in whole.items())
    if fits < 1:
        need = ", ".join(f"{k} {v:g} (the cluster has {have.get(k, 0.0):g} free)" for k, v in sorted(whole.items()))
        raise UserError(f"one trial needs {need}: lower generators/generator_cpus/workers/worker_cpus in the space")
    if asked is not None and asked > fits:
        log.info("--max-concurrent %d: the cluster fits %d trials at once (%s each); running %d", asked, fits,
                 ", ".join(f"{k} {v:g}" for k, v in whole.items()), fits)
    return min(fits, asked) if asked is not None else fits


def check_out_dir(storage: RunStorage, config: SweepConfig) -> bool:
    """True when `out` holds this sweep (to continue); False when new. Refuses anything else, untouched."""
    return held_marker(storage, SWEEP_FILE, "sweep", config.identity()) is not None


def sweep(config: SweepConfig, out: str, *, address: str | None = None,
          connect_timeout_s: float | None = None) -> dict:
    """Run (or continue) a sweep into `out`; returns best.json's content. Raises UserError for a bad space or
    folder before any trial starts, RunFailed when no trial produced the metric."""
    from cluster.local import connect

    metrics = check_space(config.space)
    if config.eval_data is not None:
        config.eval_data = _check_eval_data(config.eval_data, config.space)
        metrics.append(EVAL_METRIC)
    if config.metric not in metrics:
        raise UserError(f"--metric {config.metric!r} is not reported by these trials; choose one of "
                        f"{', '.join(metrics[:4] + ([EVAL_METRIC] if EVAL_METRIC in metrics else []))}, ...")
    storage = RunStorage(out)
    resuming = check_out_dir(storage, config)
    joined = connect(address, **({"timeout_s": connect_timeout_s} if connect_timeout_s else {}))  # before writing
    if config.resource_wait_s is None:
        config.resource_wait_s = JOINED_RESOURCE_WAIT_S if joined not in ("local", "existing") else TRIAL_WAIT_S
    bundles, whole = trial_resources(config.space)
    at_once = concurrency(whole, config.max_concurrent)
    storage.make()
    guard = lock(storage)
    try:
        if not resuming:
            storage.write_bytes(SWEEP_FILE, json.dumps({"identity": config.identity()}, indent=1).encode())
        t0 = time.time()
        results = _fit(config, storage, bundles, at_once, resuming)
        wall_s = time.time() - t0
        TrialCleanup().drain()                  # nothing of the sweep holds the cluster after it
        return _write_outputs(config, storage, results, wall_s)
    finally:
        unlock(guard)


def _check_eval_data(eval_data: str, space: Space) -> str:
    from synthstream.labelled import read_labelled_folder
    from synthstream.style import load_style
    from trainer.images import outside_support

    rows = read_labelled_folder(eval_data, "--eval-data")
    style = load_style(space.options({d.name: d.probes()[0] for d in space.dimensions})["style"])
    if all(outside_support(label, style) for _, label in rows):
        raise UserError(f"--eval-data {eval_data!r}: no label there is a string style {style.name!r} can draw")
    return str(Path(eval_data).resolve())


def _trainable(config: SweepConfig, storage: RunStorage, bundles: list[dict]):
    from ray import tune

    plan = TrialPlan(space=config.space, out=storage.out if storage.local is None else str(storage.local),
                     eval_data=config.eval_data, resource_wait_s=config.resource_wait_s)
    return tune.with_resources(tune.with_parameters(run_trial, plan=plan),
                               tune.PlacementGroupFactory(bundles, strategy="PACK"))


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def _fit(config: SweepConfig, storage: RunStorage, bundles: list[dict], at_once: int, resuming: bool):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    # Ctrl-C raises KeyboardInterrupt at once instead of Tune's handler finishing the experiment gracefully
    # (which waits on every trial, then reports the interrupted ones as results); the sweep resumes on re-run.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    experiment = _join(storage.out, TUNE_NAME)
    trainable = _trainable(config, storage, bundles)
    if resuming and tune.Tuner.can_restore(experiment):
        log.info("continuing the sweep in %s (finished trials are kept)", storage.describe())
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        space = config.space
        steps = [space.options({d.name: v})["steps"] for d in space.dimensions for v in d.probes()]
        val_every = [space.options({d.name: v})["val_every"] for d in space.dimensions for v in d.probes()]
        scheduler = (ASHAScheduler(time_attr="step", metric=config.metric, mode=config.mode, max_t=max(steps),
                                   grace_period=min(min(val_every), min(steps)), reduction_factor=ASHA_REDUCTION)
                     if config.scheduler == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable, param_space=space.param_space(),
            tune_config=tune.TuneConfig(num_samples=config.trials, scheduler=scheduler,
                                        trial_dirname_creator=_trial_dirname,
                                        # the concurrency cap lives here: Tune ignores max_concurrent_trials
                                        # when it is given a BasicVariantGenerator
                                        search_alg=BasicVariantGenerator(random_state=space.options({})["seed"],
                                                                         max_concurrent=at_once)),
            run_config=tune.RunConfig(name=TUNE_NAME, storage_path=storage.out if storage.local is None
                                      else str(storage.local), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0),
                                      callbacks=[SweepProgress(config.metric), TrialCleanup()]))
        log.info("sweep: %d trials, %d at once, into %s", config.total_trials(), at_once, storage.describe())
    return tuner.fit()


# -- outputs ----------------------------------------------------------------------------------------------------

def _rows(config: SweepConfig, results) -> list[dict]:
    rows = []
    for r in results:
        m = r.metrics or {}
        params = {d.name: (r.config or {}).get(d.name) for d in config.space.dimensions}
        planned = config.space.options({k: v for k, v in params.items() if v is not None})["steps"]
        step = int(m.get("step") or 0)
        status = "failed" if r.error else ("finished" if step >= planned else "stopped")
        trial_id = m.get("trial_id") or Path(r.path).name.removeprefix("trial_")
        row = {"trial_id": trial_id, **params, "status": status, "steps_run": step,
               "steps": planned, "stopped_early": status == "stopped", "wall_s": round(m.get("time_total_s", 0.0), 1)}
        for key in (config.metric, "val/string_accuracy", "val/acc/char", "val/loss", "train_loss", EVAL_METRIC):
            if key in m:
                row[key] = m[key]
        if r.error:
            text = str(r.error).strip()
            row["error"] = text.splitlines()[-1][:200] if text else type(r.error).__name__
        rows.append(row)
    return sorted(rows, key=lambda row: row["trial_id"])


def _write_outputs(config: SweepConfig, storage: RunStorage, results, wall_s: float) -> dict:
    rows = _rows(config, results)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes("results.csv", text.getvalue().encode())
    _plot(config, storage, rows)
    scored = [r for r in rows if isinstance(r.get(config.metric), (int, float)) and math.isfinite(r[config.metric])]
    if not scored:
        raise RunFailed(f"no trial reported {config.metric} ({sum(r['status'] == 'failed' for r in rows)} of "
                        f"{len(rows)} failed; see {storage.describe('results.csv')}); re-run the same command to "
                        f"retry the failed ones")
    sign = 1 if config.mode == "max" else -1
    best = max(scored, key=lambda r: sign * r[config.metric])
    run = TrialPlan(config.space, storage.out if storage.local is None else str(storage.local)).run_folder(
        best["trial_id"])
    _export_best(run, storage)
    summary = {"metric": config.metric, "mode": config.mode, "value": best[config.metric],
               "trial_id": best["trial_id"], "params": {d.name: best[d.name] for d in config.space.dimensions},
               "options": config.space.options({d.name: best[d.name] for d in config.space.dimensions}),
               "seed": config.space.options({})["seed"] + trial_number(best["trial_id"]),
               "row": best, "run": run, "model": storage.describe("best.pt"),
               "trials": {s: sum(r["status"] == s for r in rows) for s in ("finished", "stopped", "failed")},
               "wall_s": wall_s}
    storage.write_bytes("best.json", json.dumps(summary, indent=2, default=str).encode())
    return summary


def _export_best(run: str, storage: RunStorage) -> None:
    """The best trial's newest checkpoint (its final one if it finished), exported to best.pt."""
    from ray.train import Result

    from trainer.checkpoint import FILE, export

    trial = RunStorage(run)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / FILE, Path(tmp) / "best.pt"
        if trial.exists(FILE):
            src.write_bytes(trial.read_bytes(FILE))
        else:                                   # stopped early: Ray Train's newest registered checkpoint
            checkpoint = Result.from_path(trial.ray_storage_path + "/train").checkpoint
            if checkpoint is None:
                raise RunFailed(f"the best trial ({run}) left no checkpoint")
            with checkpoint.as_directory() as d:
                src.write_bytes((Path(d) / FILE).read_bytes())
        export(src, dst)
        storage.upload_file(dst, "best.pt")


def _plot(config: SweepConfig, storage: RunStorage, rows: list[dict]) -> None:
    """sweep.png: the metric against each swept parameter; stopped trials hollow, failed ones left out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = config.space.dimensions
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.2), squeeze=False)
    for ax, d in zip(axes[0], dims):
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values)
        labels = [] if numeric else [json.dumps(v) for v in d.values]
        if labels:
            ax.set_xticks(range(len(labels)), [t.strip('"')[-24:] for t in labels], rotation=20, fontsize=7)
        for status, style in (("finished", {"color": "C0"}), ("stopped", {"facecolors": "none", "edgecolors": "C1"})):
            pts = [(r[d.name], r[config.metric]) for r in rows
                   if r["status"] == status and isinstance(r.get(config.metric), (int, float))]
            if not pts:
                continue
            xs = [labels.index(json.dumps(x)) for x, _ in pts] if labels else [x for x, _ in pts]
            ax.scatter(xs, [y for _, y in pts], label=status, **style)
        if d.log_scale:
            ax.set_xscale("log")
        if numeric and d.kind in ("choice", "grid"):                  # ticks at the values tried, readable
            ax.set_xticks(list(d.values), [f"{v:g}" for v in d.values], fontsize=7)
        ax.set_xlabel(d.name)
        ax.set_ylabel(config.metric)
        if ax.get_legend_handles_labels()[0]:            # a dimension whose trials all failed has none
            ax.legend(fontsize=7)
    fig.suptitle(f"{config.metric} ({config.mode}) per trial; stopped = ended early by ASHA", fontsize=9)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=100, format="png")
    plt.close(fig)
    storage.write_bytes("sweep.png", png.getvalue())
