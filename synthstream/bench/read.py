"""Batch reading throughput: `synthstream read` (a Ray Data actor pool) vs one process on the same cores reading
the same PNG files in batches, in the same run.

    synthstream bench read --checkpoint lepture -n 512 [--actors 2] [--json out.json]

Both sides open each file, decode it and read it with the model's recipe, `--batch` images per reader call.
The one-process figure uses torch on `--threads` threads (default: every core of this machine; on a busy
shared machine 1 thread can be much faster, so it is worth running both); the Ray figure is end to end once Ray is
up (actor start-up and the model load included, the Parquet results written).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from synthstream.bench.report import machine, print_table, write_json

EVAL_SEED = 626262


def one_process(reader, paths: list[Path], batch: int) -> float:
    """Seconds to read every file in this process."""
    from trainer.batch_read import image_from_bytes

    t0 = time.perf_counter()
    for i in range(0, len(paths), batch):
        arrays = [reader.images([image_from_bytes(p.read_bytes())])[0][0] for p in paths[i:i + batch]]
        reader.read(arrays)
    return time.perf_counter() - t0


def run(checkpoint: str, n: int, actors: int | None, actor_cpus: float, batch: int, json_path: str | None,
        address: str | None = None, threads: int | None = None) -> dict:
    import ray
    import torch
    from PIL import Image

    from cluster.local import connect
    from synthstream.generate import render
    from synthstream.trace import sample_traces
    from trainer import batch_read
    from trainer.reader import load_reader

    reader = load_reader(checkpoint)
    cores = threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="synthstream-bench-read-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        paths = []
        for i, a in enumerate(render(reader.style, sample_traces(reader.style, EVAL_SEED, 0, n))):
            paths.append(folder / f"{i:06d}.png")
            Image.fromarray(a).save(paths[-1])
        torch.set_num_threads(cores)        # after rendering: Numba's OpenMP layer resets torch's thread count
        one_process(reader, paths[:batch], batch)                     # warm-up
        single = one_process(reader, paths, batch)
        connect(address)
        try:
            t0 = time.perf_counter()
            actors = actors or max(1, int(ray.cluster_resources().get("CPU", 1) // actor_cpus))
            done = batch_read.run(str(folder), checkpoint, Path(tmp) / "results.parquet", actors=actors,
                                  batch_size=batch, actor_cpus=actor_cpus)
            distributed = time.perf_counter() - t0
        finally:
            ray.shutdown()
    result = {"benchmark": "read", "checkpoint": checkpoint, "recipe": reader.recipe.method, "images": n,
              "batch": batch, "one_process": {"seconds": single, "captchas_per_s": n / single, "torch_threads": cores},
              "ray_data": {"seconds": distributed, "captchas_per_s": n / distributed, "actors": actors,
                           "actor_cpus": actor_cpus, "bad": done["bad"]},
              "ratio": single / distributed, "machine": machine()}
    print_table(["method", "workers", "seconds", "captchas/s"],
                [["one process", f"{cores} threads", f"{single:.1f}", f"{n / single:.1f}"],
                 ["Ray Data actor pool", f"{actors} x {actor_cpus:g} CPU", f"{distributed:.1f}",
                  f"{n / distributed:.1f}"]])
    print(f"ratio (Ray Data / one process): {single / distributed:.2f}")
    write_json(result, json_path)
    return result
