"""Distributed training of the proposal network from the stream, with Ray Train.

The driver (trainer/run.py) starts the generator actors (separate CPU actors, so generation scales apart from
training), then a `TorchTrainer` whose workers each read their own shard of the stream (DDP: gloo on CPU,
nccl on GPU). Each worker runs the same flat loop: lr -> batch -> forward -> finite check -> backward -> clip
-> step, and every `val_every` steps rank 0 validates on a fixed synthetic set rendered in memory and reports
a checkpoint that Ray Train records. A restarted worker group, or a new run with the same storage and name,
resumes from the newest registered checkpoint, stream position included.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synthstream.errors import UserError, deterministic
from trainer import checkpoint
from trainer.config import TrainConfig  # noqa: F401  (re-exported: the run's settings live in trainer/config.py)
from trainer.model import build_model


@dataclass
class WorkerPlan:
    """What the driver sends every Ray Train worker."""

    config: TrainConfig
    actors: list                     # generator actor handles
    threads: int                     # torch threads per worker
    tracker: object | None = None    # ProgressTracker actor handle (rank 0 reports to it)
    extra_metrics: dict = field(default_factory=dict)


def validation_set(style, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed synthetic set rendered in memory: (uint8 images, targets). Its keys come from a key domain no
    training seed can reach (render/rng.py), so no training run ever sees these samples."""
    from synthstream.generate import render
    from synthstream.trace import codec_of, traces_from_classes, validation_keys

    keys = validation_keys(size)
    classes = codec_of(style).sample(keys)
    images = render(style, traces_from_classes(style, classes, keys))
    return torch.from_numpy(images), torch.from_numpy(classes.astype(np.int64))


class StepTimer:
    """Step and data-wait time between reports; `record` is called once per step."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps, self.images, self.step_s, self.wait_s, self.t0 = 0, 0, 0.0, 0.0, time.perf_counter()

    def record(self, started: float, data_s: float, images: int) -> None:
        self.steps += 1
        self.images += images
        self.wait_s += data_s
        self.step_s += time.perf_counter() - started

    def figures(self, world_size: int) -> dict:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        return {"images_per_s": self.images * world_size / elapsed,
                "data_wait_share": self.wait_s / max(self.step_s, 1e-9)}


def autocast_for(use_gpu: bool):
    """bf16 autocast on GPU; a no-op context on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if use_gpu else torch.autocast("cpu", enabled=False)


def optimise(model, optimizer, images: torch.Tensor, targets: torch.Tensor, grad_clip: float, autocast,
             step: int) -> torch.Tensor:
    """One optimiser step on -log q; returns the (detached) mean loss."""
    with autocast:
        nll, _ = model(images, targets)
    loss = nll.mean()
    if not torch.isfinite(loss):                          # host sync; stop before the optimiser sees it
        raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


@dataclass
class WorkerState:
    """A worker's model, optimiser and counters (restored from a checkpoint or fresh)."""

    model: torch.nn.Module           # what the step calls (DDP-wrapped, maybe compiled)
    bare: torch.nn.Module            # the plain module, for validation and checkpoints
    optimizer: torch.optim.Optimizer
    step: int = 0
    position: int = 0                # next stream batch number of this rank
    restored_from_step: int = 0


def build_state(config: TrainConfig) -> WorkerState:
    """The model and optimiser, restored from Ray Train's newest checkpoint when there is one."""
    import ray.train
    import ray.train.torch

    model = build_model(config.preset, config.stream.style)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = position = 0
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            state = checkpoint.load(Path(d) / checkpoint.FILE)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, position = state["step"], state["position"]
    wrapped = ray.train.torch.prepare_model(model)            # DDP (gloo on CPU, nccl on GPU) + device
    bare = wrapped.module if hasattr(wrapped, "module") else wrapped
    forward = torch.compile(wrapped) if config.compile else wrapped
    return WorkerState(forward, bare, optimizer, step, position, restored_from_step=step)


def validate_and_checkpoint(plan: WorkerPlan, state: WorkerState, metrics: dict, validation, lead: bool) -> None:
    """Rank 0 validates and writes a checkpoint; every rank reports (Ray Train needs all of them)."""
    import ray.train

    from synthstream.trace import codec_of
    from trainer.metrics import evaluate

    config = plan.config
    with tempfile.TemporaryDirectory() as d:
        ckpt = None
        if lead:
            images, targets = validation
            metrics.update({f"val/{k}": v for k, v in evaluate(
                state.bare, images, targets, codec_of(config.stream.style)).items()})
            checkpoint.save(Path(d) / checkpoint.FILE, model=state.bare, optimizer=state.optimizer,
                            step=state.step, position=state.position, config=config.summary(),
                            style_raw=config.stream.style.to_raw(), preset=config.preset)
            ckpt = ray.train.Checkpoint.from_directory(d)
            if plan.tracker is not None:
                plan.tracker.record.remote(metrics)
        ray.train.report(metrics, checkpoint=ckpt)


def train_loop_per_worker(loop_config: dict) -> None:
    """Runs inside each Ray Train worker. An error no restart can fix (a full disk) is told to the driver's
    tracker first, so the driver ends the run at once instead of letting Ray Train retry it."""
    plan: WorkerPlan = loop_config["plan"]
    try:
        _train_loop(plan)
    except Exception as e:
        if deterministic(e) and plan.tracker is not None:
            plan.tracker.fail.remote(f"{type(e).__name__}: {e}")
        raise


def _train_loop(plan: WorkerPlan) -> None:
    """Restore, build, loop, validate-and-checkpoint."""
    import ray
    import ray.train
    import ray.train.torch

    from synthstream.stream import DataStream
    from trainer.feed import DeviceFeed

    config = plan.config
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(config.stream.seed)
    device = ray.train.torch.get_device()
    state = build_state(config)

    stream = DataStream(config.stream, plan.actors, rank=rank, world_size=world, start=state.position)
    batches = DeviceFeed(stream, device)           # pinned buffers + side-stream copy on GPU; no-op on CPU
    lead = rank == 0
    validation = None
    if lead:
        images, targets = validation_set(config.stream.style, config.val_size)
        validation = images.to(device), targets.to(device)
    torch.set_num_threads(plan.threads)    # after the validation set: Numba's OpenMP layer resets this thread's count
    timer, recent_loss = StepTimer(), []
    autocast = autocast_for(config.use_gpu)
    budget = TimeBudget(config.max_seconds, world)
    while state.step < config.steps:
        for group in state.optimizer.param_groups:
            group["lr"] = config.lr_at(state.step, budget.fraction())
        t0 = time.perf_counter()
        images, targets = next(batches)
        t_data = time.perf_counter() - t0
        loss = optimise(state.model, state.optimizer, images, targets, config.grad_clip, autocast, state.step)
        state.step, state.position = state.step + 1, state.position + 1
        timer.record(t0, t_data, images.shape[0])
        if lead and (state.step % config.log_every == 0 or state.step == config.steps):
            recent_loss.append(loss.item())                # host sync, once per log interval
            if plan.tracker is not None:
                plan.tracker.update.remote({"step": state.step, "loss": recent_loss[-1], **timer.figures(world)})
        spent = state.step % config.log_every == 0 and budget.spent(device)     # all ranks agree
        if state.step % config.val_every == 0 or state.step == config.steps or spent:
            s = stream.stats(actors=False)
            metrics = {"step": state.step, "train_loss": float(np.mean(recent_loss)) if recent_loss else float("nan"),
                       "lr": config.lr_at(state.step - 1, budget.fraction()),
                       "restored_from_step": state.restored_from_step,
                       "stream/samples": s["images_delivered"], "stream/index_errors": s["index_errors"],
                       "worker_node": ray.util.get_node_ip_address(), "torch_threads": torch.get_num_threads(),
                       **timer.figures(world)}
            validate_and_checkpoint(plan, state, metrics, validation, lead)
            timer.reset()
            recent_loss = []
            if spent:
                break
    stream.close()


class TimeBudget:
    """A wall-clock budget for the loop; `spent` is agreed by every rank (one all-reduce per call)."""

    def __init__(self, seconds: float | None, world_size: int) -> None:
        self.seconds, self.world_size, self.t0 = seconds, world_size, time.monotonic()

    def fraction(self) -> float:
        return (time.monotonic() - self.t0) / self.seconds if self.seconds else 0.0

    def spent(self, device) -> bool:
        if not self.seconds:
            return False
        over = self.fraction() >= 1.0
        if self.world_size > 1:
            import torch.distributed as dist
            flag = torch.tensor([int(over)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            over = bool(flag.item())
        return over


def plan_workers(config: TrainConfig) -> tuple[float, int]:
    """CPUs for each training worker and its torch threads. With `worker_cpus` unset: what the generators
    leave of the cluster's CPUs now, split evenly (an embedded Ray: the whole machine)."""
    import ray

    per_worker = config.worker_cpus
    if per_worker is None:
        cpus = ray.cluster_resources().get("CPU", 0.0)
        per_worker = (cpus - config.stream.num_actors * config.stream.actor_cpus) / config.workers
        if per_worker < 1.0 - 1e-9:
            raise UserError(
                f"{config.workers} training workers and {config.stream.num_actors} generators x "
                f"{config.stream.actor_cpus:g} CPU need at least "
                f"{config.workers + config.stream.num_actors * config.stream.actor_cpus:g} CPUs; the Ray cluster "
                f"has {cpus:g} (set worker_cpus explicitly on a cluster that autoscales)")
        per_worker = math.floor(per_worker * 4) / 4                # tidy quarter-CPUs
    return per_worker, config.torch_threads or max(1, math.ceil(per_worker - 1e-9))
