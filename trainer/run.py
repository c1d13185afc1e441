"""`synthstream train`: check the output folder, start (or join) Ray, the generators and a TorchTrainer, follow
progress, and write the run's report, curve, metrics and final checkpoint into the output folder.

Output folder (`--out`, a local/NFS path or a pyarrow URI): run.json (the run's identity), checkpoint.pt
(final), report.json, curve.png, metrics.csv, tensorboard/, ray/train/ (Ray Train's storage: every registered
checkpoint). Re-running the same command on the same folder continues from the newest registered checkpoint
(Ray Train restores a run with the same storage path and name), so a stopped run, a killed driver and a
retried cluster job all resume; a folder holding a run with other settings, or files that are not a run, is
refused and left untouched.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from synthstream.capacity import ensure_resources, release_request
from synthstream.errors import RunFailed, UserError
from trainer import checkpoint
from trainer.config import JOINED_RESOURCE_WAIT_S
from trainer.storage import RunStorage, held_marker, lock, unlock, write_failed
from trainer.train import TrainConfig, WorkerPlan, plan_workers, train_loop_per_worker

log = logging.getLogger("synthstream.train")
RUN_FILE = "run.json"
RUN_NAME = "train"                  # Ray Train's run name inside ray/: fixed, so a re-run restores it
LOG_EVERY_S = 30.0                  # headless progress lines
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"   # Ray Train's wait for its worker group


class ProgressTracker:
    """A tiny actor rank 0 reports to: the latest figures for the progress view, and every validation row."""

    def __init__(self) -> None:
        self.latest: dict = {}
        self.rows: list[dict] = []

    def update(self, figures: dict) -> None:
        self.latest.update(figures)

    def record(self, metrics: dict) -> None:
        self.latest.update(metrics)
        self.rows.append(metrics)

    def fail(self, error: str) -> None:
        """A worker met an error no restart can fix; the driver ends the run on it."""
        self.latest["fatal"] = error

    def drain(self) -> tuple[dict, list[dict]]:
        rows, self.rows = self.rows, []
        return dict(self.latest), rows


def check_out_dir(storage: RunStorage, config: TrainConfig, resume: bool) -> dict | None:
    """What the folder holds: None for a new run, else its run.json. Refuses a folder holding anything else."""
    held = held_marker(storage, RUN_FILE, "run", config.identity())
    if held is None and resume:
        raise UserError(f"--resume: {storage.describe()!r} holds no training run")
    if held is not None and storage.exists("metrics.csv"):
        storage.read_metrics()                      # a damaged one is refused now, not at the first validation
    return held


def run(config: TrainConfig, out: str, *, address: str | None = None, resume: bool = False,
        progress: bool | None = None, connect_timeout_s: float | None = None, callbacks: list | None = None,
        trial_start_s: float | None = None) -> dict:
    """Train, or continue the run in `out`. `progress`: a progress bar (True), log lines (False), or a bar
    only on a terminal (None). `callbacks`: Ray Train callbacks for the run (a sweep's trial passes Tune's
    `TuneReportCallback`). `trial_start_s`: set by a sweep's trial: the run fails (one line) when its workers
    cannot be placed within that many seconds, instead of Ray Train retrying for ever. Raises UserError for bad
    input, RunFailed when training fails."""
    from cluster.local import connect

    storage = RunStorage(out)
    held = check_out_dir(storage, config, resume)
    finished = held is not None and storage.exists("report.json") and (
        held.get("finished_step", -1) >= config.steps or (config.max_seconds and "finished_step" in held))
    if finished:
        log.info("%s already finished at step %d; nothing to do", storage.describe(), held["finished_step"])
        return storage.read_json("report.json")
    joined = connect(address, **({"timeout_s": connect_timeout_s} if connect_timeout_s else {}))  # before writing
    if config.resource_wait_s is None and joined not in ("local", "existing"):    # a cluster may autoscale
        config.stream.resource_wait_s = JOINED_RESOURCE_WAIT_S
    storage.make()
    guard = lock(storage)
    try:
        return _train(config, storage, held, progress, callbacks, trial_start_s)
    except RunFailed:
        drop_half_written_checkpoints(storage)
        raise
    finally:
        unlock(guard)


def _train(config: TrainConfig, storage: RunStorage, held: dict | None, progress: bool | None,
           callbacks: list | None = None, trial_start_s: float | None = None) -> dict:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from cluster.loopback_torch import torch_config
    from synthstream.stream import GeneratorPool

    worker_cpus, threads = plan_workers(config)
    asked_autoscaler = _ensure_capacity(config, worker_cpus)       # may wait for an autoscaler; before writing
    if held is None:
        storage.write_bytes(RUN_FILE, json.dumps({"identity": config.identity()}, indent=1).encode())

    try:
        pool = GeneratorPool(config.stream)
    except BaseException:
        if asked_autoscaler:
            release_request()
        raise
    metrics_log = MetricsLog(storage)
    try:
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        tracker = ray.remote(num_cpus=0, scheduling_strategy=here)(ProgressTracker).remote()   # dies with us only
        plan = WorkerPlan(config=config, actors=pool.actors, threads=threads, tracker=tracker)
        failure = FailureConfig(max_failures=config.max_failures)
        if trial_start_s is not None:          # read by Ray Train's controller (it propagates RAY_TRAIN_*)
            os.environ[START_TIMEOUT_ENV] = f"{trial_start_s:g}"
            failure = FailureConfig(max_failures=config.max_failures, controller_failure_limit=0)
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config={"plan": plan}, torch_config=torch_config(),
            scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu,
                                         resources_per_worker={"CPU": worker_cpus}),
            run_config=RunConfig(name=RUN_NAME, storage_path=storage.ray_storage_path,
                                 failure_config=failure,
                                 checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks))
        t0 = time.time()
        outcome: dict = {}
        fit = threading.Thread(target=lambda: outcome.update(result=_fit(trainer)), daemon=True)
        fit.start()
        _follow(fit, tracker, config.steps, metrics_log,
                bar=progress if progress is not None else sys.stderr.isatty())
        fit.join()
        wall = time.time() - t0
        generator_nodes = pool.node_ips()
    finally:
        pool.shutdown()
        metrics_log.close()
        if asked_autoscaler:
            release_request()
    result = outcome["result"]
    if isinstance(result, Exception) and trial_start_s is not None and _not_placed(result):
        raise RunFailed(f"the {config.workers} training worker(s) ({worker_cpus:g} CPU each) could not be placed "
                        f"within {trial_start_s:g} s: other work holds the cluster's resources")
    if isinstance(result, Exception):
        raise RunFailed(f"training failed: {_one_line(result)} (re-run the same command to continue from the "
                        f"newest checkpoint in {storage.describe('ray')})")
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as d:
            storage.upload_file(Path(d) / checkpoint.FILE, checkpoint.FILE)
    final = result.metrics or {}
    report = {"style": config.stream.style.name, "preset": config.preset, "steps": config.steps, "wall_s": wall,
              "final": final, "config": config.summary(),
              "resources": {"worker_cpus": worker_cpus, "torch_threads": threads},
              "stream": {"generator_nodes": generator_nodes, "worker_nodes": metrics_log.worker_nodes,
                         "samples": final.get("stream/samples"), "index_errors": final.get("stream/index_errors")},
              "environment": _environment(), "checkpoint": storage.describe(checkpoint.FILE)}
    storage.write_bytes("report.json", json.dumps(report, indent=2, default=float).encode())
    storage.write_bytes(RUN_FILE, json.dumps({"identity": config.identity(), "finished_step": final.get("step", 0)},
                                             indent=1).encode())
    metrics_log.plot()
    return report


def drop_half_written_checkpoints(storage: RunStorage) -> list[str]:
    """Remove the checkpoint folders under ray/train whose checkpoint.pt is missing or not a whole zip file (an
    upload that a full disk or a kill cut short), so nothing half-written stays in the run. Judged by content,
    not by Ray Train's record of the run: a full disk can leave that record empty too. Returns what it removed."""
    import posixpath
    import zipfile

    import pyarrow.fs as pafs

    try:
        found = storage.fs.get_file_info(pafs.FileSelector(storage.join(f"ray/{RUN_NAME}")))
    except OSError:
        return []
    removed = []
    for info in found:
        name = posixpath.basename(info.path)
        if info.type != pafs.FileType.Directory or not name.startswith("checkpoint_"):
            continue
        try:
            with storage.fs.open_input_file(posixpath.join(info.path, checkpoint.FILE)) as f:
                whole = zipfile.ZipFile(f).testzip() is None
        except (OSError, zipfile.BadZipFile, EOFError):
            whole = False
        if not whole:
            try:
                storage.fs.delete_dir(info.path)
                removed.append(name)
            except OSError:
                pass
    if removed:
        log.info("removed %d half-written checkpoint folder(s) from %s", len(removed), storage.describe("ray"))
    return removed


def _tensorboard_writer(folder: Path):
    """A TensorBoard SummaryWriter into `folder`, or False (one log line) when the `tensorboard` extra is not
    installed: metrics.csv and curve.png are written either way."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("TensorBoard files are not written: the tensorboard extra is not installed "
                    "(pip install 'synthstream[tensorboard]')")
        return False
    _quiet_tensorboard_writer_thread()
    try:
        return SummaryWriter(str(folder))
    except OSError as e:
        raise write_failed(e, str(folder)) from None


def _quiet_tensorboard_writer_thread() -> None:
    """TensorBoard writes from a thread of its own and re-raises that thread's OSError (a full disk) in the
    next `add_scalar`/`flush`, where MetricsLog turns it into the run's one error line; so the thread's own
    traceback is not printed as well. Other threads' errors go to the previous hook. Installed once."""
    previous = threading.excepthook
    if getattr(previous, "synthstream_quiet_tensorboard", False):
        return

    def hook(args) -> None:
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        if isinstance(args.exc_value, OSError) and any("/tensorboard/" in f.filename for f in frames):
            return
        previous(args)

    hook.synthstream_quiet_tensorboard = True
    threading.excepthook = hook


def _ensure_capacity(config: TrainConfig, worker_cpus: float) -> bool:
    """The generators and the training workers together, so that one request to the autoscaler covers both
    kinds of node and a refusal names everything missing. True if the autoscaler was asked."""
    stream = config.stream
    worker = {"CPU": worker_cpus, **({"GPU": 1.0} if config.use_gpu else {})}
    return ensure_resources([stream.actor_bundle()] * stream.num_actors + [worker] * config.workers,
                            wait_s=stream.resource_wait_s,
                            what=f"{stream.num_actors} generator actors and {config.workers} training workers")


def _not_placed(e: BaseException) -> bool:
    """Whether Ray Train gave up because its worker group could not be placed (its startup timeout)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ == "WorkerGroupStartupTimeoutError":
            return True
        e = getattr(e, "controller_failure", None) or e.__cause__ or e.__context__
    return False


def _fit(trainer):
    try:
        return trainer.fit()
    except Exception as e:  # TrainingFailedError and friends: reported by the driver as one line
        return e


def _follow(fit: threading.Thread, tracker, total: int, metrics_log: MetricsLog, bar: bool) -> None:
    """Until training ends: validation rows to metrics.csv/TensorBoard, and a progress bar or log lines."""
    import ray
    from tqdm import tqdm

    progress = tqdm(total=total, unit="step", disable=not bar, dynamic_ncols=True)
    shown, last_line = 0, 0.0
    while fit.is_alive():
        fit.join(timeout=1.0)
        try:
            figures, rows = ray.get(tracker.drain.remote(), timeout=5)
        except ray.exceptions.RayError:
            continue
        if "fatal" in figures:
            raise RunFailed(f"training failed: {_one_line(figures['fatal'])} (a restart cannot fix this)")
        metrics_log.add(rows)
        step = figures.get("step", 0)
        if step > shown:
            progress.update(step - shown)
            shown = step
        post = {"loss": f"{figures.get('loss', float('nan')):.3f}", "img/s": f"{figures.get('images_per_s', 0):.0f}",
                "wait": f"{100 * figures.get('data_wait_share', 0):.0f}%"}
        if "val/string_accuracy" in figures:
            post["val_str_acc"] = f"{figures['val/string_accuracy']:.3f}"
        progress.set_postfix(post, refresh=True)
        if not bar and (rows or time.monotonic() - last_line >= LOG_EVERY_S) and step:
            log.info("step %d/%d %s", step, total, " ".join(f"{k}={v}" for k, v in post.items()))
            last_line = time.monotonic()
    progress.close()


class MetricsLog:
    """The driver's metrics.csv and TensorBoard files, from the rows rank 0 reports (so they land in the run's
    storage wherever the workers run). A row for step s replaces earlier rows with step >= s: after a restart
    from a checkpoint the repeated steps are not duplicated."""

    def __init__(self, storage: RunStorage) -> None:
        self.storage, self.rows, self.worker_nodes = storage, [], []
        self._tb_dir, self._tb = storage.scratch() / "tensorboard", None
        if storage.exists("metrics.csv"):
            self.rows = storage.read_metrics("metrics.csv")

    def add(self, rows: list[dict]) -> None:
        if not rows:
            return
        for row in rows:
            self.rows = [r for r in self.rows if float(r["step"]) < row["step"]] + [row]
            if row.get("worker_node") and row["worker_node"] not in self.worker_nodes:
                self.worker_nodes.append(row["worker_node"])
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        self.storage.write_bytes("metrics.csv", text.getvalue().encode())
        if self._tb is None:
            self._tb = _tensorboard_writer(self._tb_dir)
        if self._tb is False:
            return
        try:
            for row in rows:
                for k, v in row.items():
                    if k != "step" and isinstance(v, (int, float)):
                        self._tb.add_scalar(k, v, row["step"])
            self._tb.flush()
        except OSError as e:                     # a full disk: one line, like every other write of the run
            raise write_failed(e, str(self._tb_dir)) from None

    def close(self) -> None:
        """Flush TensorBoard's files (and upload them, for remote storage). Never raises: it runs while the
        run's own error, if any, is on its way to the user; a write it cannot make is logged."""
        if not self._tb:
            return
        try:
            self._tb.close()
            if self.storage.local is None:
                self.storage.upload_dir(self._tb_dir, "tensorboard")
        except (OSError, RunFailed, UserError) as e:
            log.warning("TensorBoard files in %s may be incomplete: %s", self.storage.describe("tensorboard"),
                        str(e).splitlines()[0])

    def plot(self) -> None:
        """curve.png: training and validation loss, and validation accuracy, against step."""
        if not self.rows:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def number(value) -> float:
            try:
                return float(value)
            except (TypeError, ValueError):          # a column an older row lacks
                return float("nan")

        rows = self.rows
        step = [number(r["step"]) for r in rows]
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
        for key, label in (("train_loss", "train -log q"), ("val/loss", "validation -log q")):
            a.plot(step, [number(r.get(key)) for r in rows], marker=".", label=label)
        a.set_xlabel("step")
        a.set_ylabel("nats per trace")
        a.set_yscale("log")
        a.legend()
        for key, label in (("val/string_accuracy", "whole string"), ("val/acc/char", "per character")):
            if key in rows[0]:
                b.plot(step, [number(r.get(key)) for r in rows], marker=".", label=label)
        b.set_xlabel("step")
        b.set_ylabel("validation accuracy (greedy)")
        b.set_ylim(0, 1)
        b.legend()
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, dpi=110, format="png")
        plt.close(fig)
        self.storage.write_bytes("curve.png", png.getvalue())


def _one_line(e: BaseException | str) -> str:
    """The innermost error of a (possibly nested, multi-line, coloured) Ray failure, on one line."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors[-1] if errors else (lines[-1] if lines else type(e).__name__))[:300]


def _environment() -> dict:
    import torch

    return {"torch": torch.__version__, "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
