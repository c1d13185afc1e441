"""Stream throughput: images/s delivered to a consumer by N generator actors vs the standalone generator on
the same cores, and, as the baseline, the same batches pushed by value through `ray.util.queue.Queue`.

Per actor count a: the standalone rate is `generate` in this process on a Numba threads (no Ray); the
stream rate is what one consumer receives (as torch tensors) from a actors with 1 CPU each. Efficiency is
their ratio. Spilled bytes come from the object store's own counters (`ray memory --stats-only`).
"""

from __future__ import annotations

import statistics
import time

import ray

from cluster.local import connect, object_store_stats
from synthstream.bench.report import machine, print_table, write_json
from synthstream.generate import generate
from synthstream.render.jit import get_threads, set_threads
from synthstream.stream import GeneratorPool, StreamConfig
from synthstream.style import load_style


def standalone_rate(style_name: str, threads: int, batch: int, seconds: float) -> float:
    style = load_style(style_name)
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


def stream_rate(style_name: str, actors: int, batch: int, seconds: float) -> dict:
    pool = GeneratorPool(StreamConfig(style=load_style(style_name), num_actors=actors, batch_size=batch))
    try:
        stream = pool.stream()
        it = iter(stream)
        for _ in range(2 * actors):                      # fill the pipeline
            next(it)
        n0, wait0, cpu0, k0 = stream.delivered, stream.wait_s, stream.cpu_s, stream.position
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            next(it)
        elapsed = time.perf_counter() - t0
        images, batches = stream.delivered - n0, stream.position - k0
        stream.close()
        return {"delivered_images_per_s": images / elapsed,
                "mb_per_s": images * stream.batch_bytes / batch / elapsed / 1e6,
                "consumer_wait_share": (stream.wait_s - wait0) / elapsed,
                "consumer_cpu_ms_per_batch": 1e3 * (stream.cpu_s - cpu0) / batches,
                "batches": batches}
    finally:
        pool.shutdown()


@ray.remote(num_cpus=1)
def _produce_by_value(style, batch: int, queue, first_batch: int, step: int, deadline: float) -> int:
    """Baseline producer: render batches and push the values themselves through a queue actor."""
    from synthstream.batch import to_record_batch
    from synthstream.render.jit import set_threads

    set_threads(1)
    g, sent = first_batch, 0
    while time.time() < deadline:
        images, traces = generate(style, 0, g * batch, batch)
        try:
            queue.put(to_record_batch(style, images, traces, 0), timeout=1.0)
            sent += 1
        except Exception:  # queue.Full after the consumer stops
            pass
        g += step
    return sent


def queue_by_value_rate(style_name: str, actors: int, batch: int, seconds: float) -> dict:
    from ray.util.queue import Queue

    style = load_style(style_name)
    queue = Queue(maxsize=8)
    deadline = time.time() + seconds + 20
    producers = [_produce_by_value.remote(style, batch, queue, a, actors, deadline) for a in range(actors)]
    for _ in range(2 * actors):
        queue.get()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += queue.get().num_rows
    rate = n / (time.perf_counter() - t0)
    for p in producers:
        ray.cancel(p, force=True)
    ray.kill(queue.actor)
    return {"delivered_images_per_s": rate}


def run(actor_counts: list[int], batch: int, seconds: float, style: str, json_path: str | None,
        address: str | None = None) -> dict:
    load_style(style)
    connect(address, num_cpus=None if address else max(actor_counts))
    runs = []
    for a in actor_counts:
        alone = standalone_rate(style, a, batch, min(seconds, 15.0))
        streamed = stream_rate(style, a, batch, seconds)
        runs.append({"actors": a, "standalone_images_per_s": alone, **streamed,
                     "efficiency": streamed["delivered_images_per_s"] / alone,
                     "spilled_bytes": object_store_stats()["spilled_bytes"]})
    baseline = queue_by_value_rate(style, max(actor_counts), batch, min(seconds, 15.0))
    baseline["actors"] = max(actor_counts)
    rows = [[r["actors"], r["standalone_images_per_s"], r["delivered_images_per_s"], r["efficiency"], r["mb_per_s"],
             r["consumer_cpu_ms_per_batch"], r["spilled_bytes"]] for r in runs]
    rows.append([f"{baseline['actors']} (Queue by value)", "", baseline["delivered_images_per_s"], "", "", "", ""])
    print_table(["actors", "standalone img/s", "delivered img/s", "efficiency", "MB/s", "consumer CPU ms/batch",
                 "spilled B"], rows)
    result = {"style": style, "batch": batch, "seconds": seconds, "runs": runs,
              "baseline_queue_by_value": baseline, "machine": machine(),
              "cluster_cpus": ray.cluster_resources().get("CPU", 0)}
    write_json(result, json_path)
    return result
