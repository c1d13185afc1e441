"""How Ray Data stalls or slows on a small machine, one configuration per run (README, "The stream").

The choices in `synthstream.raydata.read_synthstream` and in `bench stream`'s Ray Data baseline come from these
runs, on an embedded Ray of `--cpus` CPUs (default 2) and a `--store-mb` object store (default 512, the
embedded default):

    python benchmarks/raydata_blocks.py --source range                       # read tasks wait for CPUs: no batch
    python benchmarks/raydata_blocks.py --drop-text --rows 832               # drop_columns waits: no batch
    python benchmarks/raydata_blocks.py --drop-text --rows 64 --blocks 400   # no batch either
    python benchmarks/raydata_blocks.py --drop-text --rows 256               # squeezes through
    python benchmarks/raydata_blocks.py --style tiny --rows 64 --blocks 4000     # one 64-row block per task
    python benchmarks/raydata_blocks.py --style tiny --rows 5248 --blocks 100    # 8 MiB blocks
    python benchmarks/raydata_blocks.py --rows 832 --blocks 300 [--unordered]    # preserve_order's cost

Prints one JSON line: the configuration, seconds to the first batch (null if none came within --timeout) and
delivered images/s after it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--style", default="wikipedia")
    p.add_argument("--source", choices=("items", "range"), default="items", help="where block numbers come from")
    p.add_argument("--rows", type=int, default=256, help="rows per block")
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--batch", type=int, default=64, help="iter_torch_batches batch size")
    p.add_argument("--drop-text", action="store_true", help="drop `text` with a later drop_columns")
    p.add_argument("--unordered", action="store_true", help="leave preserve_order off")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--store-mb", type=int, default=512)
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds after the first batch")
    p.add_argument("--timeout", type=float, default=120.0, help="give up waiting for the first batch")
    a = p.parse_args()

    import ray

    from cluster.local import connect
    from synthstream.raydata import RenderBlocks, quiet_ray_data
    from synthstream.style import load_style

    connect(num_cpus=a.cpus, object_store_mb=a.store_mb)
    quiet_ray_data()
    ray.data.DataContext.get_current().execution_options.preserve_order = not a.unordered
    style = load_style(a.style)
    numbers = (ray.data.range(a.blocks, override_num_blocks=a.blocks) if a.source == "range" else
               ray.data.from_items([{"id": b} for b in range(a.blocks)], override_num_blocks=a.blocks))
    columns = None if a.drop_text else ("image", "index")
    ds = numbers.map_batches(RenderBlocks, fn_constructor_args=(style, 0, 0, a.blocks * a.rows, a.rows, 1, columns),
                             batch_size=1, batch_format="pyarrow", zero_copy_batch=True, concurrency=a.actors,
                             num_cpus=1)
    if a.drop_text:
        ds = ds.drop_columns(["text"])
    figures: dict = {"first_batch_s": None, "images_per_s": None}
    t0 = time.perf_counter()

    def consume() -> None:
        n, start = 0, None
        for b in ds.iter_torch_batches(batch_size=a.batch, dtypes=None, prefetch_batches=2):
            if start is None:
                start = time.perf_counter()
                figures["first_batch_s"] = round(start - t0, 1)
                continue
            n += len(b["index"])
            if time.perf_counter() - start >= a.seconds:
                break
        if start is not None and n:
            figures["images_per_s"] = round(n / (time.perf_counter() - start))

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(a.timeout + a.seconds)
    block_mib = round(a.rows * style.height * style.width / 2**20, 2)
    print(json.dumps({**{k: v for k, v in vars(a).items()}, "block_image_mib": block_mib, **figures}), flush=True)
    os._exit(0)                        # a stalled executor cannot be stopped cleanly; the process ends it


if __name__ == "__main__":
    main()
