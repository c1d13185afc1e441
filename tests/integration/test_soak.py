"""Soak: a slow consumer for 10 minutes (SYNTHSTREAM_SOAK_SECONDS): nothing spilled, memory flat.

Run with `pytest -m slow tests/integration/test_soak.py -s`; it prints a line per minute.
"""
import os
import time

import psutil
import pytest
import ray

from cluster.local import object_store_stats
from synthstream.stream import GeneratorPool, StreamConfig
from synthstream.style import load_style

MiB = 1 << 20


@pytest.mark.slow
def test_slow_consumer_for_ten_minutes_spills_nothing_and_memory_stays_flat(local_ray):
    seconds = float(os.environ.get("SYNTHSTREAM_SOAK_SECONDS", "600"))
    pool = GeneratorPool(StreamConfig(style=load_style("wikipedia"), batch_size=256, num_actors=2,
                                      max_batches_in_flight=8))
    actor_pids = ray.get([a.__ray_call__.remote(lambda self: os.getpid()) for a in pool.actors])
    procs = [psutil.Process()] + [psutil.Process(p) for p in actor_pids]

    def rss() -> int:
        return sum(p.memory_info().rss for p in procs)

    stream = pool.stream()
    t0 = time.time()
    warm_rss, next_report = None, t0 + min(60.0, seconds / 4)
    while time.time() - t0 < seconds:
        stream.next_record_batch()
        time.sleep(0.05)                               # consumer slower than the producers (< 5k img/s)
        if warm_rss is None and time.time() - t0 > min(30.0, seconds / 3):
            warm_rss = rss()
        if time.time() >= next_report:
            s = object_store_stats()
            print(f"t={time.time() - t0:5.0f}s delivered={stream.delivered} rss={rss() / MiB:.0f}MiB "
                  f"store_used={s['object_store_bytes_used'] / MiB:.0f}MiB spilled={s['spilled_bytes']}",
                  flush=True)
            next_report += min(60.0, seconds / 4)
    stats, final_rss = object_store_stats(), rss()
    stream.close()
    pool.shutdown()
    print(f"spilled={stats['spilled_bytes']} rss warm={warm_rss / MiB:.0f}MiB final={final_rss / MiB:.0f}MiB")
    assert stats["spilled_bytes"] == 0
    assert final_rss - warm_rss < 64 * MiB
    assert stats["object_store_bytes_used"] < 128 * MiB      # a quarter of the 512 MiB store, at most
