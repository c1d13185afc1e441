"""`synthstream fit`: learn a style's global parameters from unlabeled real images, round by round.

Each round: search the style's parameters (trainer/fit/space.py) with Ray Tune, every trial rendering a
synthetic set with a fixed seed and scoring it against the real images (trainer/fit/objective.py: the
feature gap, or the wake objective), the searcher Levenberg-Marquardt, CMA-ES or random (trainer/fit/search.py);
write the best style; optionally train a proposal on it (the sleep phase, `trainer.run.run`), which reads the
real images (their mean top-reading probability: `trainer.fit.select`, no labels) and, where a labelled
evaluation folder is given, report the model's reading rate on it (never used by the fit). The next round
starts from the fitted style. With a sleep phase the start gets a proposal too (round 0), and `fitted.toml` is
the most confidently read round's style, or the start's where no round's proposal reads the same images
clearly more confidently (`trainer.fit.select.choose`). With the wake objective the real images are read once
per round by a trained model: `checkpoint` in round 1 and in every round without a sleep phase; with one, each
later round reads them with the previous round's newly trained model (wake-sleep). The bandwidth is
`checkpoint`'s training style's calibrated one for the whole fit.

Output folder:
    fit.json                 the fit's arguments (its identity: a re-run with the same ones continues) and rounds
    fitted.toml              the last round's fitted style; with a sleep phase, the one chosen by confidence
    fit_curve.png            objective (and reading rate) per round
    round_NN/trials.jsonl    every scored trial (cube point, objective, statistic gaps), appended as they finish
    round_NN/style.toml      the round's fitted style, commented (what was fitted, within which envelope)
    round_NN/round.json      objective before/after, statistics, what the style cannot express, rate
    round_NN/report.md       the same for a person
    round_NN/grid.png        real (left) vs synthetic
    round_NN/train/          the sleep phase's training run (with --train-steps)
    round_00/style.toml      with a sleep phase: the start (envelope-clipped), and round_00/train its proposal

An interrupted fit continues: finished rounds are kept, the current round's finished trials are replayed into
the searcher and only the rest run.
"""

from __future__ import annotations

import json
import logging
import textwrap
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from synthstream.errors import UserError
from synthstream.style import Style
from trainer.fit.objective import DEFAULT_ENCODER, OBJECTIVES, STAT_FLOOR, Target, score, synthetic_images, target_of
from trainer.fit.search import ALGORITHMS, lm_first_step_trials, make_searcher
from trainer.fit.select import Z_REPLACE, choose, confidence, paired_z
from trainer.fit.space import Space, build_space, read_style_file
from trainer.fit.write import style_toml

log = logging.getLogger(__name__)
ONE_FONT = ("the fitted style draws every character from one font, {}: the fits measured have not found a "
            "scheme's font, and a reader trained on one wrong font reads almost nothing; unless it is the scheme's, "
            "list several fonts and keep them (fixed = [\"fonts\"]; docs/fit.md, \"What a reader needs\")")
FITTED_SUFFIX = "_fitted"
FAR = 0.5                   # a statistic no trial brought within this many sds is reported as not expressed
MIN_REAL = 10
DEFAULT_BUDGET = 48         # trials per round for cma and random (lm: its first step, `lm_first_step_trials`)
GAP_SLACK = 0.25            # wake: at 0 the start sits on its caps and nearly every move crosses one (docs/fit.md)


@dataclass(frozen=True)
class FitConfig:
    """One fit. Errors name these fields; the CLI maps them to its flags."""

    style: str
    real: str
    rounds: int = 1
    budget: int | None = None         # trials per round; None: lm's first step, else DEFAULT_BUDGET
    population: int = 12              # CMA-ES generation size (cma, random)
    algorithm: str | None = None      # None: the objective's default (gap: lm, wake: cma)
    objective: str = "gap"            # trainer.fit.objective.OBJECTIVES
    checkpoint: str | None = None     # the wake objective's reader (a shipped name, checkpoint or run folder)
    renders: int = 32                 # wake: renders per real image
    gap_weight: float = 0.0           # wake, seen: + gap_weight * gap
    gap_slack: float = GAP_SLACK      # wake: the gap may rise to (1 + gap_slack) x the round's start's
    n_synthetic: int = 200            # images rendered per trial
    max_real: int = 500
    seed: int = 0
    trial_cpus: float = 0.5
    fixed: tuple[str, ...] = ()
    train_steps: int = 0              # sleep phase per round (0: none)
    train_preset: str = "cpu-columns"
    train_minutes: float | None = None
    eval_data: str | None = None      # a labelled folder: the reading rate is reported, never used
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("rounds", "budget", "population", "n_synthetic", "max_real"):
            value = getattr(self, name)
            if name == "budget" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{name} = {value!r} must be a positive integer")
        if self.budget is not None and self.budget < 2:
            raise UserError(f"budget = {self.budget} must be >= 2 trials")
        if self.population < 4:
            raise UserError(f"population = {self.population} must be >= 4")
        if self.n_synthetic < MIN_REAL:
            raise UserError(f"n_synthetic = {self.n_synthetic} must be >= {MIN_REAL}")
        if self.objective not in OBJECTIVES:
            raise UserError(f"objective {self.objective!r} is unknown; available: {', '.join(OBJECTIVES)}")
        kind = OBJECTIVES[self.objective]
        if self.algorithm is None:
            object.__setattr__(self, "algorithm", kind.default_algorithm)
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"algorithm {self.algorithm!r} is unknown; available: {', '.join(ALGORITHMS)}")
        if self.algorithm not in kind.algorithms:
            raise UserError(f"algorithm {self.algorithm!r} cannot search the {self.objective} objective (it needs "
                            f"per-feature residuals); use {' or '.join(kind.algorithms)}")
        if kind.needs_checkpoint and not self.checkpoint:
            raise UserError(f"objective {self.objective!r} needs checkpoint: a trained model that reads the real "
                            f"images (a shipped model's name, a checkpoint or a run folder)")
        if kind.encoder and self.checkpoint is None:
            object.__setattr__(self, "checkpoint", DEFAULT_ENCODER)
        if not kind.needs_checkpoint and (self.gap_slack != GAP_SLACK or self.renders != 32):
            raise UserError(f"renders and gap_slack are for objective 'wake'; objective "
                            f"{self.objective!r} uses neither")
        if self.gap_weight and not (kind.needs_checkpoint or kind.encoder):
            raise UserError(f"gap_weight is for objectives 'wake' and 'seen' (the feature gap added to theirs); "
                            f"objective {self.objective!r} is the gap already")
        if self.checkpoint and not (kind.needs_checkpoint or kind.encoder):
            raise UserError(f"checkpoint is for objectives 'wake' and 'seen' (the reader whose features it "
                            f"compares); objective {self.objective!r} uses none")
        if not isinstance(self.renders, int) or isinstance(self.renders, bool) or self.renders < 1:
            raise UserError(f"renders = {self.renders!r} must be a positive integer")
        for name in ("gap_weight", "gap_slack"):
            if not 0 <= getattr(self, name) < 1e12:
                raise UserError(f"{name} = {getattr(self, name)!r} must be >= 0")
        if not 0 < self.trial_cpus <= 64:
            raise UserError(f"trial_cpus = {self.trial_cpus!r} must be in (0, 64]")
        if not isinstance(self.train_steps, int) or self.train_steps < 0:
            raise UserError(f"train_steps = {self.train_steps!r} must be an integer >= 0")

    def identity(self) -> dict:
        """What a continued fit must match: everything but the budget and the number of rounds, which a
        continued fit may change (finished rounds are kept as they are)."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
               if k not in ("budget", "rounds")}
        if self.objective == "gap":                   # as before the wake objective: older fits continue
            for k in ("objective", "checkpoint", "renders", "gap_weight", "gap_slack"):
                out.pop(k)
        return out


@dataclass(frozen=True)
class Job:
    """What every trial needs: travels to the Tune workers once (tune.with_parameters)."""

    space: Space
    target: Target
    n: int
    seed: int


def _trial(config: dict, job: Job) -> None:
    """One Tune trial: render, score, report (no Ray Train: a fraction of a CPU each)."""
    import numba
    from ray import tune

    numba.set_num_threads(1)
    try:
        style = job.space.decode(config["u"], config["k"])
        result = score(style, job.target, job.n, job.seed)
    except Exception as e:        # a corner of the space the style language refuses: scored, so it is replayed
        tune.report({"objective": float("inf"), "error": f"{type(e).__name__}: {str(e)[:200]}"})
        return
    tune.report({k: result[k] for k in ("objective", "gap", "coverage", "wake", "residuals") if k in result}
                | {f"stat/{k}": v for k, v in result["stats"].items()})


def _trial_log(path: Path):
    from ray.tune import Callback

    class TrialLog(Callback):
        """Appends each finished trial to trials.jsonl (what a continued fit replays)."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            record = {"trial": trial.trial_id, "config": {"u": list(trial.config["u"]), "k": list(trial.config["k"])},
                      "objective": float(r.get("objective", float("inf"))),
                      **{k: float(r[k]) for k in ("gap", "coverage", "wake") if k in r},
                      "stats": {k[5:]: v for k, v in r.items() if k.startswith("stat/")},
                      **({"residuals": list(r["residuals"])} if "residuals" in r else {})}
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()

    return TrialLog()


def read_trials(path: Path) -> list[dict]:
    """The finished trials of a round (a line cut short by an interrupt is dropped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _search(config: FitConfig, space: Space, start: Style, target: Target, round_dir: Path,
            round_no: int) -> list[dict]:
    """Run (the rest of) one round's search; returns every finished trial."""
    from ray import tune

    trials_path = round_dir / "trials.jsonl"
    records = read_trials(trials_path)
    if records:
        trials_path.write_text("".join(json.dumps(r) + "\n" for r in records))    # drop a cut-short line
    searcher = make_searcher(config.algorithm, space.n_continuous, [len(p.choices) for p in space.categorical],
                             space.encode(start), population=config.population, seed=config.seed * 1000 + round_no,
                             sigma=OBJECTIVES[config.objective].sigma)
    searcher.replay(records)
    remaining = config.budget - len(records)
    if remaining <= 0 or getattr(searcher, "done", False):
        return records
    log.info("round %d: %d trials to run (%d replayed)", round_no, remaining, len(records))
    job = Job(space, target, config.n_synthetic, config.seed)
    trainable = tune.with_resources(tune.with_parameters(_trial, job=job), {"cpu": config.trial_cpus})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=remaining, reuse_actors=True,
                                    trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
        run_config=tune.RunConfig(name=f"tune_{len(records)}", storage_path=str(round_dir.resolve()), verbose=0,
                                  callbacks=[_trial_log(trials_path)],
                                  failure_config=tune.FailureConfig(max_failures=0)))
    tuner.fit()
    records = read_trials(trials_path)
    if len(records) < config.budget and not getattr(searcher, "done", False):
        from synthstream.errors import RunFailed
        raise RunFailed(f"round {round_no}: only {len(records)} of {config.budget} trials finished; run the same "
                        f"command again to continue")
    return records


def expressiveness(records: list[dict], fitted: dict[str, float], start: dict[str, float]) -> list[dict]:
    """Per image statistic: its gap at the start and at the fitted style, and the closest any trial came.
    A statistic that no trial brought within FAR sds is one the style language (within the searched
    envelope) cannot express."""
    rows = []
    for name in fitted:
        closest = min((abs(r["stats"].get(name, np.inf)) for r in records if r["stats"]), default=np.inf)
        rows.append({"statistic": name, "start": start.get(name), "fitted": fitted[name],
                     "closest_any_trial": round(float(closest), 4), "expressed": bool(closest <= FAR)})
    return sorted(rows, key=lambda r: -abs(r["fitted"]))


def _write_text(path: Path, text: str) -> None:
    from synthstream.output import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _save_state(out: Path, state: dict) -> None:
    """fit.json: the fit's arguments and every finished round (what a re-run continues from)."""
    _write_text(out / "fit.json", json.dumps(state, indent=2) + "\n")


def _grid(path: Path, style: Style, real: np.ndarray, seed: int) -> None:
    from synthstream.grid import make_grid
    from synthstream.output import atomic_write

    rows = min(8, len(real))
    synthetic = synthetic_images(style, rows * 3, seed + 7)
    sheet = make_grid([(img, "") for img in synthetic], 3, [(img, "") for img in real[:rows]])
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))


def _train(config: FitConfig, style: Style, out: Path) -> str:
    """The sleep phase: a proposal trained on the fitted style's samples only (resumes like `train`)."""
    from synthstream.stream import StreamConfig
    from trainer.run import run as run_training
    from trainer.train import TrainConfig

    stream = StreamConfig(style=style, seed=config.seed, batch_size=64, num_actors=1, actor_cpus=0.5)
    train = TrainConfig(stream=stream, preset=config.train_preset, steps=config.train_steps,
                        val_every=max(1, min(500, config.train_steps)), val_size=256,
                        max_minutes=config.train_minutes)
    run_training(train, str(out), progress=False)
    return str(out)


def reading_rate(checkpoint: str, eval_data: str) -> dict:
    """The reading rate of a model on a labelled folder, read with its recipe: for the report only."""
    from trainer.evaluate import evaluate_reader
    from trainer.images import load_labelled_dir
    from trainer.reader import load_reader

    reader = load_reader(checkpoint)
    items = load_labelled_dir(eval_data, reader.style)
    report, _ = evaluate_reader(reader, items)
    return {"exact_rate": report["exact_rate"], "per_character_accuracy": report["per_character_accuracy"],
            "n": report["n"], "method": report["method"]}


def _added_gap(summary: dict) -> str:
    """" + W x feature gap" where a reader-feature objective (seen) had the statistics' gap added, else ""."""
    weight = summary.get("gap_weight")
    return f" + {weight:g} x feature gap" if weight and OBJECTIVES[summary.get("objective_name", "gap")].encoder else ""


def _report_md(summary: dict) -> str:
    kind = OBJECTIVES[summary.get("objective_name", "gap")]
    lines = [f"# Round {summary['round']}", "",
             f"objective ({kind.description}{_added_gap(summary)}): start {summary['objective_start']:.4f} -> fitted "
             f"{summary['objective']:.4f} over {summary['trials']} trials ({summary['wall_s']:.0f} s)", ""]
    if summary.get("wake") is not None:
        lines += [f"wake objective (lower: the real images likelier; read by {summary['read_by']}, bandwidth "
                  f"{summary['bandwidth']:.2f}, {summary['renders']} renders each, {summary['images_left_out']} "
                  f"images left out): {summary['wake_start']:.4f} -> {summary['wake']:.4f}",
                  f"feature gap (0 = alike): {summary['gap_start']:.4f} -> {summary['gap']:.4f}", ""]
    if kind.encoder:
        lines += [f"feature gap of the image statistics (0 = alike): {summary['gap_start']:.4f} -> "
                  f"{summary['gap']:.4f}", ""]
    if summary.get("coverage") is not None:
        lines += [f"coverage gap (0 = every real image inside the style's range): {summary['coverage_start']:.4f} -> "
                  f"{summary['coverage']:.4f}", ""]
    if summary.get("confidence") is not None:
        lines += [f"the sleep phase's proposal reads the real images with mean top-reading probability "
                  f"{summary['confidence']['mean']:.3f} (no labels; a round replaces the start only where its proposal "
                  f"reads them more confidently by {Z_REPLACE:g} standard errors)", ""]
    if summary.get("rate") is not None:
        rate = summary["rate"]["exact_rate"]
        lines += [f"reading rate on the evaluation folder (reported, never used): {rate:.3f}", ""]
    lines += ["| statistic | gap at start (sd) | fitted (sd) | closest any trial | expressed |",
              "|---|---:|---:|---:|---|"]
    for r in summary["expressiveness"]:
        lines.append(f"| {r['statistic']} | {r['start']:+.2f} | {r['fitted']:+.2f} | {r['closest_any_trial']:.2f} | "
                     f"{'yes' if r['expressed'] else '**no**'} |")
    missing = [r["statistic"] for r in summary["expressiveness"] if not r["expressed"]]
    lines += ["", "Not expressed (no trial brought it within 0.5 sd): " + (", ".join(missing) or "none")]
    if summary.get("one_font"):
        lines += ["", ONE_FONT.format(summary["one_font"])]
    return "\n".join(lines) + "\n"


def _plot(out: Path, rounds: list[dict], start: dict | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthstream.output import atomic_write

    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [0] + [r["round"] for r in rounds]
    ax.plot(xs, [rounds[0]["objective_start"]] + [r["objective"] for r in rounds], "o-", label="objective")
    ax.set_xlabel("round")
    ax.set_ylabel(textwrap.fill(OBJECTIVES[rounds[0].get("objective_name", "gap")].description, 40), fontsize="small")
    read = ([start] if start else []) + [r for r in rounds if r.get("confidence")]
    if read:
        ax2 = ax.twinx()
        ax2.plot([r["round"] for r in read], [r["confidence"]["mean"] for r in read], "^:", color="C2",
                 label="confidence on the real images (selects)")
        rated = [r for r in read if r.get("rate")]
        if rated:
            ax2.plot([r["round"] for r in rated], [r["rate"]["exact_rate"] for r in rated], "s--", color="C1",
                     label="reading rate (reported only)")
        ax2.set_ylabel("sleep-phase reader")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="upper right", fontsize="small")
    ax.set_xticks(xs)
    ax.set_title("synthstream fit")
    fig.tight_layout()
    atomic_write(out / "fit_curve.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def check_out(out: Path, config: FitConfig) -> dict:
    """The fit.json of a folder holding this fit (to continue), or a fresh one; another fit there is refused."""
    state_path = out / "fit.json"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} exists and is not a folder")
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"--out {str(out)!r}: fit.json is unreadable ({e}); use another --out") from None
        if state.get("config") != config.identity():
            held, asked = state.get("config") or {}, config.identity()
            differs = sorted(k for k in set(held) | set(asked) if held.get(k) != asked.get(k))
            raise UserError(f"--out {str(out)!r} holds a fit with other arguments ({', '.join(differs)}); give the "
                            f"same ones to continue it, or another --out")
        return state
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {str(out)!r} is not empty and holds no fit; use another --out")
    return {"config": config.identity(), "rounds": []}


def fit(config: FitConfig, out_dir: str, address: str | None = None) -> dict:
    """Run (or continue) a fit; returns fit.json's content."""
    from cluster.local import connect
    from synthstream.fidelity import load_real_images

    out = Path(out_dir)
    raw_file, source = read_style_file(config.style)
    space = build_space(raw_file, source, config.fixed)
    config = _with_budget(config, space)
    style = space.decode(*space.encode(_start_style(space)))            # the envelope-clipped start
    real = load_real_images(config.real, style, limit=config.max_real)   # images only: names are never read
    if len(real) < MIN_REAL:
        raise UserError(f"--real {config.real!r} holds {len(real)} images; a fit needs at least {MIN_REAL}")
    if config.eval_data is not None and not Path(config.eval_data).is_dir():
        raise UserError(f"--eval-data {config.eval_data!r} is not a directory")
    kind = OBJECTIVES[config.objective]
    wake = _Wake(config, style) if kind.needs_checkpoint else None
    target = target_of(real, kind.coverage_weight, encoder=config.checkpoint if kind.encoder else "",
                       gap_weight=config.gap_weight if kind.encoder else 0.0)
    state = check_out(out, config)
    state["budget"], state["rounds_asked"] = config.budget, config.rounds
    out.mkdir(parents=True, exist_ok=True)
    _save_state(out, state)
    connect(address)
    if config.train_steps and "start" not in state:
        state["start"] = _sleep_start(config, style, real, out, raw_file.get("fit"))
        _save_state(out, state)
    for round_no in range(1, config.rounds + 1):
        done = next((r for r in state["rounds"] if r["round"] == round_no), None)
        if done is not None:
            style = _load_fitted(out / f"round_{round_no:02d}" / "style.toml")
            if config.train_steps and "confidence" not in done:       # trained before rounds were read
                done["confidence"] = confidence(str(out / f"round_{round_no:02d}" / "train"), real)
            continue
        round_target = target if wake is None else wake.target(target, style, real, out, round_no)
        summary = _round(config, space, style, round_target, real, out, round_no, raw_file.get("fit"))
        state["rounds"].append(summary)
        _save_state(out, state)
        _plot(out, state["rounds"], state.get("start"))
        style = _load_fitted(out / f"round_{round_no:02d}" / "style.toml")
        print(f"round {round_no}: {round_line(summary)}"
              + (f"; reading rate {summary['rate']['exact_rate']:.3f}" if summary.get("rate") else "")
              + f"; not expressed: {', '.join(summary['not_expressed']) or 'none'}")
    chosen = config.rounds
    if config.train_steps:
        state["selected"] = _select(state, config.rounds)
        _save_state(out, state)
        chosen = state["selected"]["round"]
        print(state["selected"]["line"])
    _write_text(out / "fitted.toml", (out / f"round_{chosen:02d}" / "style.toml").read_text())
    return state


def _sleep_start(config: FitConfig, style: Style, real: np.ndarray, out: Path, fit_table: dict | None) -> dict:
    """Round 0 of a fit with a sleep phase: the start as it is, with its own proposal, so that no fitted round
    is kept whose proposal reads the real images less confidently than the start's."""
    t0 = time.time()
    round_dir = out / "round_00"
    round_dir.mkdir(exist_ok=True)
    header = [f"The start of `synthstream fit` ({config.style}), its ranges clipped to the searched envelopes; "
              f"round 0: not fitted."]
    _write_text(round_dir / "style.toml", style_toml(style, {}, header, fit_table))
    checkpoint = _train(config, _load_fitted(round_dir / "style.toml"), round_dir / "train")
    start = {"round": 0, "confidence": confidence(checkpoint, real)}
    if config.eval_data:
        start["rate"] = reading_rate(checkpoint, config.eval_data)
    start["wall_s"] = round(time.time() - t0, 1)
    log.info("round 0 (the start): its proposal reads the real images with mean confidence %.3f",
             start["confidence"]["mean"])
    return start


def _select(state: dict, rounds: int) -> dict:
    """The round to keep (0: the start; `trainer.fit.select.choose`), with a line saying why."""
    start = state["start"]["confidence"]["probabilities"]
    read = {r["round"]: r["confidence"]["probabilities"] for r in state["rounds"] if r["round"] <= rounds}
    chosen = choose(start, read)
    means = {r["round"]: r["confidence"]["mean"] for r in [state["start"], *state["rounds"]] if r["round"] <= rounds}
    z = {k: round(paired_z(start, v), 2) for k, v in read.items()}
    what = (f"the start: no round's proposal reads the real images more confidently than the start's by more than "
            f"{Z_REPLACE:g} standard errors" if chosen == 0 else
            f"round {chosen}: its proposal reads the real images most confidently, {z[chosen]:+.1f} standard errors "
            f"above the start's")
    listing = ", ".join(f"{k}: {v:.3f}" + (f" ({z[k]:+.1f} se)" if k else "") for k, v in sorted(means.items()))
    return {"round": chosen, "by": "top-reading probability of each round's proposal on the real images, paired "
            f"with the start's; a round must exceed it by {Z_REPLACE:g} standard errors",
            "confidence": means, "z_vs_start": z,
            "line": f"fitted.toml is {what} (mean top-reading probability by round, 0 = the start: {listing}; "
                    f"no labels read)"}


def _with_budget(config: FitConfig, space: Space) -> FitConfig:
    """The budget given, or by default lm's first step (its Jacobian, then its damped steps), else
    DEFAULT_BUDGET. An lm budget too small for one step is refused: its rounds would keep a single-axis probe."""
    choices = [len(p.choices) for p in space.categorical]
    need = lm_first_step_trials(space.n_continuous, choices)
    lm = config.algorithm == "lm"
    if config.budget is None:
        return replace(config, budget=need if lm else DEFAULT_BUDGET)
    if lm and config.budget < need:
        raise UserError(f"budget = {config.budget} trials is too few for one Levenberg-Marquardt step over this "
                        f"style's {space.n_continuous} numbers and {sum(n > 1 for n in choices)} choices: give "
                        f"--budget {need} or more (or --algorithm cma)")
    return config


class _Wake:
    """The wake objective's readers: `checkpoint` (loaded and checked against the style before anything is
    written), and with a sleep phase the previous round's model from round 2 on; one bandwidth for the fit."""

    def __init__(self, config: FitConfig, style: Style) -> None:
        from trainer.fit.wake import load_wake_reader
        from trainer.infer import calibrated_bandwidth

        self.config = config
        self.readers = {config.checkpoint: load_wake_reader(config.checkpoint, style)}
        self.bandwidth = calibrated_bandwidth(self.readers[config.checkpoint].trained)

    def checkpoint(self, out: Path, round_no: int) -> str:
        if round_no == 1 or not self.config.train_steps:
            return self.config.checkpoint
        return str(out / f"round_{round_no - 1:02d}" / "train")

    def target(self, target: Target, style: Style, real: np.ndarray, out: Path, round_no: int) -> Target:
        from trainer.fit.wake import load_wake_reader, wake_target

        name = self.checkpoint(out, round_no)
        if name not in self.readers:
            self.readers[name] = load_wake_reader(name, style)
        t0 = time.time()
        c = self.config
        start = score(style, target, c.n_synthetic, c.seed)                  # the start's, as its first trial
        slack = 1 + c.gap_slack
        caps = tuple((s, max(abs(v), STAT_FLOOR) * slack) for s, v in start["stats"].items())
        wake = wake_target(self.readers[name], name, style, real, bandwidth=self.bandwidth, renders=c.renders,
                           gap_weight=c.gap_weight, gap_cap=start["gap"] * slack, stat_caps=caps, seed=c.seed,
                           minimum=MIN_REAL)
        log.info("round %d: %d real images read by %s in %.0f s", round_no, len(real), name, time.time() - t0)
        return replace(target, wake=wake)


def round_line(summary: dict) -> str:
    """The round's objective(s), start -> fitted, in one line."""
    if summary.get("objective_name") == "cover":
        return f"cover objective {summary['objective_start']:.4f} -> {summary['objective']:.4f} (feature gap " \
               f"{summary['gap_start']:.4f} -> {summary['gap']:.4f}, coverage gap {summary['coverage_start']:.4f} " \
               f"-> {summary['coverage']:.4f})"
    if summary.get("objective_name") == "seen":
        return f"seen objective{_added_gap(summary)} {summary['objective_start']:.4f} -> " \
               f"{summary['objective']:.4f} (feature gap {summary['gap_start']:.4f} -> {summary['gap']:.4f})"
    if summary.get("wake") is None:
        return f"objective {summary['objective_start']:.4f} -> {summary['objective']:.4f}"
    line = f"wake {summary['wake_start']:.4f} -> {summary['wake']:.4f}, feature gap {summary['gap_start']:.4f} -> " \
           f"{summary['gap']:.4f}"
    if summary.get("gap_weight") or summary["objective"] != summary["wake"]:
        line += f" (searched, guarded: {summary['objective_start']:.4f} -> {summary['objective']:.4f})"
    return line


def _start_style(space: Space) -> Style:
    from synthstream.style import parse_style

    return parse_style(space.base, space.source)


def _load_fitted(path: Path) -> Style:
    from synthstream.style import load_style

    return load_style(str(path))


def fitted_name(style: Style) -> Style:
    """The fitted style under its own name (`<start>_fitted`), so a reader trained on it and its run records
    say which style they learned; a re-fit of a fitted style keeps the name."""
    name = style.name if style.name.endswith(FITTED_SUFFIX) else style.name + FITTED_SUFFIX
    return replace(style, name=name)


def _round(config: FitConfig, space: Space, start: Style, target: Target, real: np.ndarray, out: Path,
           round_no: int, fit_table: dict | None) -> dict:
    t0 = time.time()
    round_dir = out / f"round_{round_no:02d}"
    round_dir.mkdir(exist_ok=True)
    records = _search(config, space, start, target, round_dir, round_no)
    best = min(records, key=lambda r: r["objective"])
    fitted = fitted_name(space.decode(best["config"]["u"], best["config"]["k"]))
    first = records[0]                      # the searcher's first point is the start itself
    summary = {"round": round_no, "trials": len(records), "objective_name": config.objective,
               "objective_start": first["objective"], "objective": best["objective"],
               "gap_start": first.get("gap", first["objective"]), "gap": best.get("gap", best["objective"]),
               "coverage_start": first.get("coverage"), "coverage": best.get("coverage"),
               "wake_start": first.get("wake"), "wake": best.get("wake"), "stats": best["stats"],
               "expressiveness": expressiveness(records, best["stats"], first["stats"])}
    if target.wake is not None:
        summary.update(read_by=target.wake.checkpoint, bandwidth=target.wake.bandwidth, renders=target.wake.renders,
                       gap_weight=target.wake.gap_weight, gap_cap=target.wake.gap_cap,
                       statistic_caps=dict(target.wake.stat_caps),
                       images_left_out=target.wake.left_out)
    if target.encoded is not None:
        summary.update(features_of=target.encoder, gap_weight=target.gap_weight)
    summary["not_expressed"] = [r["statistic"] for r in summary["expressiveness"] if not r["expressed"]]
    if len(fitted.fonts) == 1 and any(p.name.startswith("fonts:") for p in space.params):
        summary["one_font"] = fitted.fonts[0].file
        log.warning("round %d: %s", round_no, ONE_FONT.format(summary["one_font"]))
    how = round_line(summary) if target.wake is None else (
        round_line(summary) + f"; the real images read by {target.wake.checkpoint}")
    header = [f"Fitted by `synthstream fit` from {space.source}, round {round_no}: "
              f"{how.replace('objective', 'feature gap', 1) if config.objective == 'gap' else how} over "
              f"{len(records)} trials",
              f"against the images of {config.real} (no labels read). Edit freely; `--style` takes this file."]
    notes = space.describe()
    _write_text(round_dir / "style.toml", style_toml(fitted, notes, header, fit_table))
    _grid(round_dir / "grid.png", fitted, real, config.seed)
    summary["rate"] = None
    if config.train_steps:
        checkpoint = _train(config, _load_fitted(round_dir / "style.toml"), round_dir / "train")
        summary["confidence"] = confidence(checkpoint, real)
        if config.eval_data:
            summary["rate"] = reading_rate(checkpoint, config.eval_data)
    summary["wall_s"] = round(time.time() - t0, 1)
    _write_text(round_dir / "round.json", json.dumps(summary, indent=2) + "\n")
    _write_text(round_dir / "report.md", _report_md(summary))
    return summary
