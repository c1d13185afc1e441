"""Stream throughput against what users would pick instead, in one run, on the same actors/CPUs/style/batch/seed.

Per actor count A (each method gets A CPUs of generation and one consumer that receives torch tensors):
  - `synthstream`: `GeneratorPool` + `DataStream`, objects of `object_size` samples (default: by bytes)
    sliced into training batches;
  - `synthstream_batch_objects`: the same with one training batch per object (object_size = batch);
  - `raydata`: `synthstream.raydata.read_synthstream` (range -> map_batches(class UDF, concurrency=A,
    batch_format="pyarrow")) consumed with `iter_torch_batches`;
  - `dataloader`: a torch `IterableDataset` over `generate` with num_workers = A (1 Numba thread each);
  - `queue`: the same batches pushed by value through `ray.util.queue.Queue` by A producer tasks.
The standalone rate is `generate` in this process on A Numba threads (no Ray): efficiency = delivered /
standalone. For each method: delivered images/s, wait share, consumer CPU ms per batch, time to first batch,
peak object-store bytes (sampled), spilled bytes (`object_store_stats()`), duplicates and missing indices.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ray
import torch

from cluster.local import connect, object_store_stats
from synthstream.batch import to_torch
from synthstream.bench.report import machine, print_table, write_json
from synthstream.errors import UserError
from synthstream.generate import generate
from synthstream.render.jit import get_threads, set_threads
from synthstream.stream import GeneratorPool, StreamConfig
from synthstream.style import Style, load_style

METHODS = ("synthstream", "synthstream_batch_objects", "raydata", "dataloader", "queue")
MIN_SECONDS = 0.5
SEED = 0


def standalone_rate(style: Style, threads: int, batch: int, seconds: float) -> float:
    before = get_threads()
    set_threads(threads)
    try:
        generate(style, 0, 0, batch)
        rates = []
        for rep in range(3):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 3:
                generate(style, 1, (rep * 10**6 + n), batch)
                n += batch
            rates.append(n / (time.perf_counter() - t0))
        return statistics.median(rates)
    finally:
        set_threads(before)


class StorePeak:
    """Samples the object store's bytes in use every `interval_s` on a thread; `peak` is the largest seen."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.peak, self._stop, self.interval_s = 0, threading.Event(), interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, object_store_stats()["object_store_bytes_used"])
            except Exception:  # noqa: BLE001 - a missed sample is not a failed benchmark
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> StorePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Consumer:
    """Times one consumer: `next_batch()` returns (images, index) as torch tensors."""

    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    indices: list = field(default_factory=list)

    def run(self, seconds: float, t_start: float, warm_batches: int) -> dict:
        first = None
        for _ in range(warm_batches):
            images, index = self.next_batch()
            self.indices.append(index.numpy().copy())
            first = first if first is not None else time.perf_counter() - t_start
        n = batches = 0
        wait = cpu = 0.0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            c0, w0 = time.thread_time(), time.perf_counter()
            images, index = self.next_batch()
            wait += time.perf_counter() - w0
            cpu += time.thread_time() - c0
            self.indices.append(index.numpy().copy())
            n += images.shape[0]
            batches += 1
        elapsed = time.perf_counter() - t0
        got = np.concatenate(self.indices)
        unique = np.unique(got)
        return {"delivered_images_per_s": n / elapsed, "wait_share": wait / elapsed,
                "consumer_cpu_ms_per_batch": 1e3 * cpu / max(batches, 1), "time_to_first_batch_s": first,
                "batches": batches, "duplicates": int(len(got) - len(unique)),
                "missing_below_max": int(unique[-1] + 1 - len(unique)),
                "exactly_once": bool(len(got) == len(unique) == unique[-1] + 1)}


def _synthstream(style: Style, actors: int, batch: int, object_size: int | None) -> tuple[Consumer, Callable, dict]:
    pool = GeneratorPool(StreamConfig(style=style, seed=SEED, num_actors=actors, batch_size=batch,
                                      object_size=object_size))
    stream = pool.stream()
    it = iter(stream)

    def next_batch():
        b = next(it)
        return b.images, b.index

    def close():
        stream.close()
        pool.shutdown()
    return Consumer(next_batch), close, {"object_size": stream.per_object * batch}


def _raydata(style: Style, actors: int, batch: int, seconds: float) -> tuple[Consumer, Callable, dict]:
    from synthstream.raydata import MAX_BLOCKS, read_synthstream

    # Blocks as large as synthstream's objects: one 64-row block per task ran at a ninth of the rate
    # (per-task costs; benchmarks/raydata_blocks.py --style tiny --rows 64 vs --rows 5248).
    rows = StreamConfig(style=style, batch_size=batch).batches_per_object() * batch
    blocks = min(MAX_BLOCKS, max(8 * actors, int((seconds + 10) * 12_000 * actors / rows)))  # > enough for the run
    options = ray.data.DataContext.get_current().execution_options
    ordered, options.preserve_order = options.preserve_order, True     # in order, like the stream: countable
    ds = read_synthstream(style, SEED, 0, blocks * rows, rows_per_block=rows, concurrency=actors,
                          columns=("image", "index"))
    it = iter(ds.iter_torch_batches(batch_size=batch, dtypes=None, prefetch_batches=2))

    def next_batch():
        b = next(it)
        return b["image"], b["index"]
    def close():
        options.preserve_order = ordered
        if hasattr(it, "close"):
            it.close()                       # a generator: ends Ray Data's executor and frees its actors now
    return Consumer(next_batch), close, {"rows_per_block": rows}


class GeneratedBatches(torch.utils.data.IterableDataset):
    """The DataLoader baseline: worker w of N renders training batches w, w + N, ... with `generate`."""

    def __init__(self, style: Style, seed: int, batch: int) -> None:
        self.style, self.seed, self.batch = style, seed, batch

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        w, n = (info.id, info.num_workers) if info else (0, 1)
        set_threads(1)
        g = w
        while True:
            images, traces = generate(self.style, self.seed, g * self.batch, self.batch)
            yield {"image": torch.from_numpy(images), "targets": torch.from_numpy(traces.classes.astype(np.int64)),
                   "index": torch.from_numpy(traces.indices)}
            g += n


def _dataloader(style: Style, actors: int, batch: int) -> tuple[Consumer, Callable, dict]:
    loader = torch.utils.data.DataLoader(GeneratedBatches(style, SEED, batch), batch_size=None, num_workers=actors,
                                         multiprocessing_context="spawn", prefetch_factor=2)
    it = iter(loader)

    def next_batch():
        b = next(it)
        return b["image"], b["index"]

    def close():
        it._shutdown_workers()
    return Consumer(next_batch), close, {"multiprocessing_context": "spawn"}


@ray.remote(num_cpus=1)
def _produce_by_value(style, batch: int, queue, first_batch: int, step: int, deadline: float) -> int:
    """Baseline producer: render batches and push the values themselves through a queue actor."""
    from synthstream.batch import to_record_batch

    set_threads(1)
    g, sent = first_batch, 0
    while time.time() < deadline:
        images, traces = generate(style, SEED, g * batch, batch)
        while time.time() < deadline:
            try:
                queue.put(to_record_batch(style, images, traces, SEED), timeout=1.0)
                sent += 1
                break
            except Exception:  # noqa: BLE001 - queue.Full: retry the same batch until the deadline
                pass
        g += step
    return sent


def _queue(style: Style, actors: int, batch: int, seconds: float) -> tuple[Consumer, Callable, dict]:
    from ray.util.queue import Queue

    queue = Queue(maxsize=8)
    producers = [_produce_by_value.remote(style, batch, queue, a, actors, time.time() + seconds + 120)
                 for a in range(actors)]
    pending: dict[int, object] = {}
    expected = [0]

    def next_batch():                      # the queue interleaves producers: hand batches out in index order
        g = expected[0]
        while g not in pending:
            b = queue.get()
            pending[int(b.column("index")[0].as_py()) // batch] = b
        expected[0] += 1
        t = to_torch(style, pending.pop(g))
        return t.images, t.index

    def close():
        for p in producers:
            ray.cancel(p, force=True)
        ray.kill(queue.actor)
    return Consumer(next_batch), close, {"maxsize": 8}


def measure(method: str, style: Style, actors: int, batch: int, seconds: float) -> dict:
    spilled0 = object_store_stats()["spilled_bytes"]
    with StorePeak() as peak:
        t_start = time.perf_counter()
        if method == "synthstream":
            consumer, close, extra = _synthstream(style, actors, batch, None)
        elif method == "synthstream_batch_objects":
            consumer, close, extra = _synthstream(style, actors, batch, batch)
        elif method == "raydata":
            consumer, close, extra = _raydata(style, actors, batch, seconds)
        elif method == "dataloader":
            consumer, close, extra = _dataloader(style, actors, batch)
        else:
            consumer, close, extra = _queue(style, actors, batch, seconds)
        try:
            out = consumer.run(seconds, t_start, warm_batches=2 * actors)
        finally:
            close()
    return {"method": method, "actors": actors, "batch": batch, **out,
            "peak_object_store_bytes": peak.peak,
            "spilled_bytes": object_store_stats()["spilled_bytes"] - spilled0, **extra}


def run(actor_counts: list[int], batch_sizes: list[int] | int, seconds: float, style: str, json_path: str | None,
        address: str | None = None, methods: list[str] | None = None, plot: str | None = None) -> dict:
    if not seconds >= MIN_SECONDS:
        raise UserError(f"--seconds {seconds:g} is too short to time anything; use at least {MIN_SECONDS:g}")
    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    batch_sizes = [batch_sizes] if isinstance(batch_sizes, int) else list(batch_sizes)
    from synthstream.limits import MAX_BATCH
    if not all(1 <= b <= MAX_BATCH for b in batch_sizes):
        raise UserError(f"--batch {batch_sizes}: every size must be in [1, {MAX_BATCH}]")
    the_style = load_style(style)
    connect(address, num_cpus=None if address else max(actor_counts))
    from synthstream.raydata import quiet_ray_data
    quiet_ray_data()
    runs = []
    for batch in batch_sizes:
        for a in actor_counts:
            alone = standalone_rate(the_style, a, batch, min(seconds, 10.0))
            for m in methods:
                r = measure(m, the_style, a, batch, seconds)
                r["standalone_images_per_s"] = alone
                r["efficiency"] = r["delivered_images_per_s"] / alone
                runs.append(r)
    ratios = _ratios(runs)
    _print(runs)
    result = {"style": style, "batch_sizes": batch_sizes, "seconds": seconds, "runs": runs, "ratios": ratios,
              "machine": machine(), "cluster_cpus": ray.cluster_resources().get("CPU", 0)}
    write_json(result, json_path)
    plot_path = plot or (str(Path(json_path).with_suffix(".png")) if json_path else None)
    if plot_path:
        _plot(runs, plot_path)
    return result


def _ratios(runs: list[dict]) -> list[dict]:
    """synthstream's delivered rate over each other method's, per (batch, actors)."""
    out = []
    for r in runs:
        if r["method"] != "synthstream":
            continue
        row = {"batch": r["batch"], "actors": r["actors"]}
        for o in runs:
            if o["batch"] == r["batch"] and o["actors"] == r["actors"] and o["method"] != "synthstream":
                row[f"vs_{o['method']}"] = r["delivered_images_per_s"] / max(o["delivered_images_per_s"], 1e-9)
        out.append(row)
    return out


def _print(runs: list[dict]) -> None:
    rows = [[r["batch"], r["actors"], r["method"], r["standalone_images_per_s"], r["delivered_images_per_s"],
             f"{r['efficiency']:.2f}", f"{r['wait_share']:.2f}", f"{r['consumer_cpu_ms_per_batch']:.2f}",
             f"{r['time_to_first_batch_s']:.2f}", f"{r['peak_object_store_bytes'] / 2**20:.0f}",
             r["spilled_bytes"], "yes" if r["exactly_once"] else f"no (dup {r['duplicates']}, "
                                                                  f"missing {r['missing_below_max']})"]
            for r in runs]
    print_table(["batch", "actors", "method", "standalone img/s", "delivered img/s", "efficiency", "wait share",
                 "consumer CPU ms/batch", "first batch s", "peak store MiB", "spilled B", "exactly once"], rows)


def _plot(runs: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in runs})
    methods = list(dict.fromkeys(r["method"] for r in runs))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in methods:
        for b in batches:
            pts = sorted((r["actors"], r["delivered_images_per_s"]) for r in runs
                         if r["method"] == m and r["batch"] == b)
            axes[0].plot(*zip(*pts), marker="o", label=f"{m} (batch {b})")
        top = max(r["actors"] for r in runs)
        pts = sorted((r["batch"], r["delivered_images_per_s"]) for r in runs if r["method"] == m and r["actors"] == top)
        axes[1].plot(*zip(*pts), marker="o", label=m)
    axes[0].set(xlabel="generator actors (= CPUs)", ylabel="delivered images/s (one consumer)",
                title="delivered rate vs actors")
    axes[1].set(xlabel="training batch", ylabel="delivered images/s", xscale="log",
                title=f"delivered rate vs batch ({max(r['actors'] for r in runs)} actors)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise UserError(f"cannot write the plot {path}: {e.strerror}") from None
    finally:
        plt.close(fig)
    print(f"plot: {path}")
