"""Distributed training of the proposal network from the stream, with Ray Train.

The driver starts the generator actors (separate CPU actors, so generation scales apart from training),
then a `TorchTrainer` whose workers each read their own shard of the stream (DDP: gloo on CPU, nccl on
GPU). Each worker runs the same flat loop: lr -> batch -> forward -> finite check -> backward -> clip ->
step, and every `val_every` steps rank 0 validates on a fixed synthetic set rendered in memory and writes
a checkpoint that Ray Train records. A restarted worker group resumes from the newest checkpoint, stream
position included.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from synthstream.errors import UserError
from synthstream.style import resolve_style
from trainer import checkpoint
from trainer.model import PRESETS, build_model

VAL_SEED = 2**62 + 12345        # validation traces come from a seed no training run uses


@dataclass(kw_only=True)
class TrainConfig:
    style: str | dict = "tiny"
    """Style name, file path or raw dict."""
    prior_scale: float = 1.0
    """Widen every nuisance range of the style this many times (robustness to real data); 1 = as written."""
    preset: str = "cpu"
    workers: int = 1
    generators: int = 1
    generator_cpus: float = 0.5
    """CPUs reserved per generator actor (rendering ~10k images/s per core is far above CPU training)."""
    steps: int = 500
    batch_size: int = 64
    """Per worker."""
    lr: float = 2e-3
    warmup_steps: int = 50
    grad_clip: float = 1.0
    weight_decay: float = 1e-4
    seed: int = 0
    val_every: int = 100
    val_size: int = 512
    log_every: int = 10
    use_gpu: bool = False
    compile: bool = False
    max_failures: int = 3

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; available: {', '.join(PRESETS)}")
        positive = {"workers": self.workers, "generators": self.generators, "steps": self.steps,
                    "batch_size": self.batch_size, "val_every": self.val_every, "val_size": self.val_size,
                    "log_every": self.log_every}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} {value!r} must be a positive integer")
        if not 0 < self.lr < 1:
            raise UserError(f"--lr {self.lr!r} must be in (0, 1)")
        if not 0 < self.generator_cpus <= 64:
            raise UserError(f"--generator-cpus {self.generator_cpus!r} must be in (0, 64]")
        if not 0.1 <= self.prior_scale <= 10:
            raise UserError(f"--prior-scale {self.prior_scale!r} must be in [0.1, 10]")
        if self.batch_size > 8192:
            raise UserError(f"--batch-size {self.batch_size} is absurd (max 8192 per worker)")

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 5% of lr."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def validation_set(style, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed synthetic set rendered in memory: (uint8 images, targets)."""
    from synthstream.batch import targets_of, to_record_batch
    from synthstream.generate import generate

    images, traces = generate(style, VAL_SEED, 0, size)
    batch = to_record_batch(style, images, traces, VAL_SEED)
    return torch.from_numpy(images.copy()), torch.from_numpy(targets_of(style, batch))


class StepTimer:
    """Accumulates step and data-wait time between reports."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps, self.images, self.step_s, self.wait_s, self.t0 = 0, 0, 0.0, 0.0, time.perf_counter()

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


def train_loop_per_worker(cfg: dict) -> None:
    """Runs inside each Ray Train worker."""
    import ray.train
    import ray.train.torch

    from synthstream.stream import DataStream, StreamConfig
    from trainer.metrics import evaluate

    config = TrainConfig(**cfg["train"])
    style = resolve_style(config.style)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(config.seed)
    device = ray.train.torch.get_device()

    model = build_model(config.preset, style)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step = position = restored_from_step = 0
    state = None
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            state = checkpoint.load(Path(d) / checkpoint.FILE)
    elif cfg.get("resume_from"):
        state = checkpoint.load(cfg["resume_from"])
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, position = state["step"], state["position"]
        restored_from_step = step
    model = ray.train.torch.prepare_model(model)            # DDP (gloo on CPU, nccl on GPU) + device
    bare = model.module if hasattr(model, "module") else model
    forward = torch.compile(model) if config.compile else model

    stream = DataStream(StreamConfig(**cfg["stream"]), cfg["actors"], rank=rank, world_size=world,
                        start=position)
    batches = iter(stream)
    lead = rank == 0
    if lead:
        val_images, val_targets = validation_set(style, config.val_size)
        val_images, val_targets = val_images.to(device), val_targets.to(device)
        log = RunLog(cfg["out_dir"], resumed=state is not None)
    tracker = cfg.get("tracker")
    timer, recent_loss = StepTimer(), []
    autocast = autocast_for(config.use_gpu)
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        t0 = time.perf_counter()
        batch = next(batches)
        t_data = time.perf_counter() - t0
        images = batch.images.to(device, non_blocking=True)
        loss = optimise(forward, optimizer, images, batch.targets.to(device, non_blocking=True),
                        config.grad_clip, autocast, step)
        step, position = step + 1, position + 1
        timer.steps += 1
        timer.images += images.shape[0]
        timer.wait_s += t_data
        timer.step_s += time.perf_counter() - t0
        if lead and (step % config.log_every == 0 or step == config.steps):
            recent_loss.append(loss.item())                # host sync, once per log interval
            if tracker is not None:
                tracker.update.remote({"step": step, "loss": recent_loss[-1], **timer.figures(world)})
        if step % config.val_every == 0 or step == config.steps:
            metrics = {"step": step, "train_loss": float(np.mean(recent_loss)) if recent_loss else float("nan"),
                       "lr": config.lr_at(step - 1), "restored_from_step": restored_from_step,
                       **timer.figures(world)}
            with tempfile.TemporaryDirectory() as d:
                ckpt = None
                if lead:
                    metrics.update({f"val/{k}": v for k, v in evaluate(
                        bare, val_images, val_targets, style.addresses(), style.alphabet).items()})
                    log.write(metrics)
                    checkpoint.save(Path(d) / checkpoint.FILE, model=bare, optimizer=optimizer, step=step,
                                    position=position, config=cfg["train"], style_raw=style.to_raw(),
                                    preset=config.preset)
                    ckpt = ray.train.Checkpoint.from_directory(d)
                    if tracker is not None:
                        tracker.update.remote(metrics)
                ray.train.report(metrics, checkpoint=ckpt)
            timer.reset()
            recent_loss = []
    stream.close()
    if lead:
        log.close()


class RunLog:
    """Rank 0's CSV and TensorBoard logs under the run's output folder."""

    def __init__(self, out_dir: str, resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(out_dir) / "metrics.csv"
        self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        self.fields: list[str] | None = None
        if resumed and self.path.exists():
            with self.path.open() as f:
                self.fields = next(csv.reader(f), None)

    def write(self, metrics: dict) -> None:
        if self.fields is None:
            self.fields = list(metrics)
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.fields)
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([metrics.get(k, "") for k in self.fields])
        for k, v in metrics.items():
            if k != "step" and isinstance(v, (int, float)):
                self.tb.add_scalar(k, v, metrics["step"])
        self.tb.flush()

    def close(self) -> None:
        self.tb.close()


def plan_resources(config: TrainConfig) -> dict:
    """CPUs for each training worker and its torch threads, after the generators take theirs."""
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if config.use_gpu and gpus < config.workers:
        raise UserError(f"--workers {config.workers} with --gpu needs {config.workers} GPUs; the cluster has "
                        f"{gpus:g}")
    left = cpus - config.generators * config.generator_cpus
    per_worker = left / config.workers
    if per_worker < 1.0 - 1e-9:
        raise UserError(f"{config.workers} training workers and {config.generators} generators x "
                        f"{config.generator_cpus:g} CPU need at least {config.workers + config.generators * config.generator_cpus:g} "
                        f"CPUs; the Ray cluster has {cpus:g}")
    per_worker = math.floor(per_worker * 4) / 4                # tidy quarter-CPUs
    return {"cpus_per_worker": per_worker, "threads": max(1, math.ceil(per_worker - 1e-9))}


def environment_summary() -> dict:
    return {"torch": torch.__version__, "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
