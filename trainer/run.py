"""`synthstream train`: check the output folder, start Ray, the generators and a TorchTrainer, show
progress, and write the run's report, curve and final checkpoint into the output folder.

Output folder layout: checkpoint.pt (newest), report.json, curve.png, metrics.csv, tensorboard/, ray/ (Ray
Train's run storage with its checkpoints).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

from synthstream.errors import UserError
from synthstream.style import resolve_style
from trainer import checkpoint
from trainer.train import TrainConfig, config_dict, environment_summary, plan_resources, train_loop_per_worker


class ProgressTracker:
    """A tiny actor rank 0 reports to; the driver polls it to draw the progress bar."""

    def __init__(self) -> None:
        self.latest: dict = {}

    def update(self, figures: dict) -> None:
        self.latest.update(figures)

    def get(self) -> dict:
        return dict(self.latest)


def check_out_dir(out: Path, config: TrainConfig, resume: bool) -> str | None:
    """Refuse to touch another run's folder; on --resume return the checkpoint to continue from."""
    existing = out / checkpoint.FILE
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} exists and is not a directory")
    if not resume:
        if existing.exists() or (out / "ray").exists():
            raise UserError(f"--out {str(out)!r} already holds a training run; pass --resume to continue it or "
                            f"choose another folder (nothing was changed)")
        return None
    if not existing.exists():
        raise UserError(f"--resume: {str(existing)!r} does not exist")
    state = checkpoint.load(existing)
    style = resolve_style(config.style)
    if state["style"].get("name") != style.name or state["preset"] != config.preset:
        raise UserError(f"--resume: {str(existing)!r} is a {state['preset']} model of style "
                        f"{state['style'].get('name')!r}, not {config.preset} of {style.name!r}")
    if state["step"] >= config.steps:
        raise UserError(f"--resume: the checkpoint is already at step {state['step']} >= --steps {config.steps}")
    return str(existing)


def run(config: TrainConfig, out_dir: str, *, address: str | None = None, resume: bool = False,
        progress: bool = True) -> dict:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from cluster.local import connect
    from synthstream.stream import GeneratorPool, StreamConfig

    out = Path(out_dir).resolve()
    resume_from = check_out_dir(out, config, resume)
    style = resolve_style(config.style).widened(config.prior_scale)   # fails fast, before Ray starts
    config.style = style.to_raw()
    config.prior_scale = 1.0                                          # already applied to the style
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {str(out)!r}: {e.strerror}") from None

    connect(address)
    plan = plan_resources(config)
    stream_config = StreamConfig(style=config.style, seed=config.seed, batch_size=config.batch_size,
                                 num_actors=config.generators, actor_cpus=config.generator_cpus)
    pool = GeneratorPool(stream_config)
    try:
        tracker = ray.remote(num_cpus=0)(ProgressTracker).remote()
        loop_config = {"train": config_dict(config), "stream": vars(stream_config), "actors": pool.actors,
                       "threads": plan["threads"], "out_dir": str(out), "resume_from": resume_from,
                       "tracker": tracker}
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=loop_config,
            scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu,
                                         resources_per_worker={"CPU": plan["cpus_per_worker"]}),
            run_config=RunConfig(name=f"run-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(out / "ray"),
                                 failure_config=FailureConfig(max_failures=config.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2)))
        t0 = time.time()
        outcome: dict = {}
        worker = threading.Thread(target=lambda: outcome.update(result=_fit(trainer)), daemon=True)
        worker.start()
        _show_progress(worker, tracker, config.steps, enabled=progress)
        worker.join()
        wall = time.time() - t0
    finally:
        pool.shutdown()
    result = outcome["result"]
    newest = _newest_checkpoint(out / "ray")
    if newest is not None:
        _copy_atomic(newest, out / checkpoint.FILE)
    if isinstance(result, Exception):
        raise UserError(f"training failed: {_one_line(result)} (newest checkpoint: "
                        f"{out / checkpoint.FILE if newest else 'none'})")
    report = {"style": style.name, "preset": config.preset, "steps": config.steps, "wall_s": wall,
              "final": result.metrics, "config": {**config_dict(config), "style": style.name},
              "resources": plan, "environment": environment_summary(),
              "checkpoint": str(out / checkpoint.FILE)}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    _plot_curve(out / "metrics.csv", out / "curve.png")
    return report


def _fit(trainer):
    try:
        return trainer.fit()
    except Exception as e:  # TrainingFailedError and friends: reported by the driver as one line
        return e


def _show_progress(worker: threading.Thread, tracker, total: int, enabled: bool) -> None:
    import ray
    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", disable=not enabled, dynamic_ncols=True)
    shown = 0
    while worker.is_alive():
        worker.join(timeout=1.0)
        try:
            figures = ray.get(tracker.get.remote(), timeout=5)
        except ray.exceptions.RayError:
            continue
        step = figures.get("step", 0)
        if step > shown:
            bar.update(step - shown)
            shown = step
        post = {"loss": f"{figures.get('loss', float('nan')):.3f}",
                "img/s": f"{figures.get('images_per_s', 0):.0f}",
                "wait": f"{100 * figures.get('data_wait_share', 0):.0f}%"}
        if "val/string_accuracy" in figures:
            post["val_str_acc"] = f"{figures['val/string_accuracy']:.3f}"
        bar.set_postfix(post, refresh=True)
    bar.close()


def registered_checkpoints(storage: Path) -> list[Path]:
    """Checkpoints Ray Train has registered (listed in its snapshot, so fully uploaded), oldest first."""
    found = []
    for snapshot in sorted(storage.glob("*/checkpoint_manager_snapshot.json"), key=lambda p: p.stat().st_mtime):
        try:
            results = json.loads(snapshot.read_text()).get("checkpoint_results", [])
        except (OSError, ValueError):
            continue
        found += [snapshot.parent / r["checkpoint_dir_name"] / checkpoint.FILE for r in results
                  if "checkpoint_dir_name" in r]
    return [p for p in found if p.exists()]


def _newest_checkpoint(storage: Path) -> Path | None:
    """The newest registered checkpoint that loads (a half-copied one is never taken)."""
    for path in reversed(registered_checkpoints(storage)):
        try:
            checkpoint.load(path)
            return path
        except UserError:
            continue
    return None


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors[-1] if errors else (lines[-1] if lines else type(e).__name__))[:300]


def _plot_curve(csv_path: Path, png_path: Path) -> None:
    """Training loss, validation loss and string accuracy against step."""
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not csv_path.exists():
        return
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    step = [float(r["step"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("train_loss", "train -log q"), ("val/loss", "validation -log q")):
        a.plot(step, [float(r[key]) for r in rows], marker=".", label=label)
    a.set_xlabel("step")
    a.set_ylabel("nats per trace")
    a.set_yscale("log")
    a.legend()
    for key, label in (("val/string_accuracy", "whole string"), ("val/acc/char", "per character")):
        if key in rows[0]:
            b.plot(step, [float(r[key]) for r in rows], marker=".", label=label)
    b.set_xlabel("step")
    b.set_ylabel("validation accuracy (greedy)")
    b.set_ylim(0, 1)
    b.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
