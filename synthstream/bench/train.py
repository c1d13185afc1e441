"""Training throughput: images/s of the real training step fed by the stream vs the same network fed from a
pre-rendered in-memory tensor (the ceiling), in the same run, and the share of step time spent waiting.

Both loops run `trainer.train.optimise` with the same torch threads inside one Ray task that holds the CPUs
the generators leave (as a Ray Train worker would, at the same scheduling priority as the actors); the
stream side uses a `GeneratorPool` on the same machine.
"""

from __future__ import annotations

import time

import torch

from cluster.local import connect
from synthstream.bench.report import machine, print_table, write_json
from synthstream.generate import generate
from synthstream.stream import GeneratorPool, StreamConfig
from synthstream.style import load_style
from trainer.model import build_model
from trainer.train import autocast_for, optimise

SETTLE_S = 12.0    # > the driver watcher's fast-polling start (cluster/local.py `_watcher_main`, 10 s)


def _timed_loop(next_batch, model, optimizer, device, use_gpu: bool, seconds: float, warmup: int = 3) -> dict:
    autocast = autocast_for(use_gpu)
    steps = images = 0
    wait = 0.0
    t_start = None
    while True:
        t0 = time.perf_counter()
        x, y = next_batch()
        t_data = time.perf_counter() - t0
        loss = optimise(model, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True), 1.0,
                        autocast, steps)
        if use_gpu:
            torch.cuda.synchronize()
        steps += 1
        if steps == warmup:
            t_start, images, wait = time.perf_counter(), 0, 0.0
        elif steps > warmup:
            images += x.shape[0]
            wait += t_data
            if time.perf_counter() - t_start >= seconds:
                break
    elapsed = time.perf_counter() - t_start
    return {"images_per_s": images / elapsed, "data_wait_share": wait / elapsed, "final_loss": float(loss)}


def bench_preset(preset: str, style_name: str, batch: int, seconds: float, generators: int,
                 generator_cpus: float, use_gpu: bool, threads: int) -> dict:
    torch.set_num_threads(threads)
    style = load_style(style_name)
    device = torch.device("cuda" if use_gpu else "cpu")
    torch.manual_seed(0)
    model = build_model(preset, style).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    # ceiling: 8 batches rendered once, cycled
    images, traces = generate(style, 0, 0, 8 * batch)
    targets = torch.from_numpy(traces.classes.astype("int64"))
    images = torch.from_numpy(images)
    cycle = iter(range(10**12))

    def from_memory():
        k = next(cycle) % 8
        return images[k * batch:(k + 1) * batch], targets[k * batch:(k + 1) * batch]

    ceiling = _timed_loop(from_memory, model, optimizer, device, use_gpu, seconds)

    pool = GeneratorPool(StreamConfig(style=style, batch_size=batch, num_actors=generators,
                                      actor_cpus=generator_cpus))
    try:
        stream = iter(pool.stream())

        def from_stream():
            b = next(stream)
            return b.images, b.targets

        streamed = _timed_loop(from_stream, model, optimizer, device, use_gpu, seconds)
    finally:
        pool.shutdown()
    out = {"preset": preset, "style": style_name, "batch": batch,
           "parameters": sum(p.numel() for p in model.parameters()),
           "torch_threads": torch.get_num_threads(), "generators": generators, "generator_cpus": generator_cpus,
           "stream": streamed, "in_memory_ceiling": ceiling,
           "stream_vs_ceiling": streamed["images_per_s"] / ceiling["images_per_s"]}
    if use_gpu:
        out["gpu"] = torch.cuda.get_device_name()
        out["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return out


def run(presets: list[str], style: str, batch: int, seconds: float, generators: int, generator_cpus: float,
        use_gpu: bool, json_path: str | None, address: str | None = None) -> dict:
    from synthstream.errors import UserError
    from trainer.model import PRESETS

    for p in presets:
        if p not in PRESETS:
            raise UserError(f"unknown preset {p!r}; available: {', '.join(PRESETS)}")
    if use_gpu and not torch.cuda.is_available():
        raise UserError("--gpu: torch sees no CUDA device here")
    load_style(style)
    started = time.monotonic()
    if connect(address) == "local":
        # the embedded Ray's driver watcher polls every 50 ms for its first seconds (cluster/local.py), ~4% of
        # a core: time nothing until it settles, or the loop timed first (the ceiling) pays for it alone
        time.sleep(max(0.0, SETTLE_S - (time.monotonic() - started)))
    import math

    import ray
    cpus = ray.cluster_resources().get("CPU", 0) - generators * generator_cpus
    if cpus < 1:
        raise UserError(f"{generators} generators x {generator_cpus:g} CPU leave {cpus:g} CPUs for training; "
                        f"need at least 1")
    task = ray.remote(bench_preset).options(num_cpus=cpus, num_gpus=1 if use_gpu else 0)
    results = [ray.get(task.remote(p, style, batch, seconds, generators, generator_cpus, use_gpu,
                                   max(1, math.ceil(cpus))))
               for p in presets]
    rows = [[r["preset"], f"{r['parameters'] / 1e6:.1f}M", r["in_memory_ceiling"]["images_per_s"],
             r["stream"]["images_per_s"], r["stream_vs_ceiling"], 100 * r["stream"]["data_wait_share"]]
            for r in results]
    print_table(["preset", "params", "ceiling img/s", "stream img/s", "stream/ceiling", "data wait %"], rows,
                digits=[1, 1, 1, 1, 3, 2])
    out = {"style": style, "results": results, "machine": machine(),
           "device": torch.cuda.get_device_name() if use_gpu else "cpu"}
    write_json(out, json_path)
    return out
