"""The stream under stress and failure on a real local Ray: backpressure, no spilling, faults, bad input."""
import shutil
import time

import numpy as np
import pytest
import ray

from cluster.local import object_store_stats
from synthstream.batch import images_of
from synthstream.errors import UserError
from synthstream.fonts import find_font
from synthstream.generate import generate
from synthstream.stream import GeneratorPool, StreamConfig, StreamError, sample_indices
from synthstream.style import FontSpec, load_style, parse_style

B = 32


def take(stream, n):
    return [stream.next_record_batch() for _ in range(n)]


def test_slow_consumer_backpressure_and_no_spilling(local_ray):
    config = StreamConfig(style=load_style("wikipedia"), batch_size=64, num_actors=2, max_batches_in_flight=3,
                          object_size=64)
    pool = GeneratorPool(config)
    try:
        stream = pool.stream()
        spilled_before = object_store_stats()["spilled_bytes"]
        for _ in range(12):
            stream.next_record_batch()
            assert len(stream._in_flight) <= 3
            time.sleep(0.25)                         # a consumer far slower than the producers
        rendered = sum(a["images"] for a in pool.stats())
        # producers waited: they rendered what was delivered plus at most the queue's capacity
        assert rendered <= stream.delivered + 3 * 64
        assert object_store_stats()["spilled_bytes"] == spilled_before == 0
        stream.close()
    finally:
        pool.shutdown()


def test_killed_actor_restarts_and_every_index_arrives_once(local_ray):
    pool = GeneratorPool(StreamConfig(style=load_style("tiny"), batch_size=B, num_actors=2, max_batches_in_flight=6))
    try:
        stream = pool.stream()
        got = take(stream, 4)
        ray.kill(pool.actors[0], no_restart=False)   # dies with calls queued; Ray restarts it and retries them
        got += take(stream, 12)
        indices = sample_indices(got)
        np.testing.assert_array_equal(indices, np.arange(16 * B))
        direct, _ = generate(load_style("tiny"), 0, 0, 16 * B)
        np.testing.assert_array_equal(np.concatenate([images_of(b) for b in got]), direct)
    finally:
        pool.shutdown()


def test_actor_that_cannot_start_fails_fast_with_its_error(local_ray, tmp_path, monkeypatch):
    # the font exists for this process only (Ray workers do not inherit the variable): the actors' style
    # cannot render, as on a node missing a font
    shutil.copy(find_font(FontSpec("DejaVuSans-Bold.ttf")), tmp_path / "OnlyOnTheDriver.ttf")
    monkeypatch.setenv("SYNTHSTREAM_FONT_PATH", str(tmp_path))
    style = {"name": "drivers_only", "height": 32, "width": 48, "alphabet": "AB",
             "fonts": [{"file": "OnlyOnTheDriver.ttf", "package": "fonts-driver"}],
             "latents": {"num_chars": 1, "font_size": 20}}
    t0 = time.time()
    with pytest.raises(StreamError, match="OnlyOnTheDriver.ttf"):
        GeneratorPool(StreamConfig(style=parse_style(style), batch_size=8, num_actors=1, max_restarts=0))
    assert time.time() - t0 < 60


def test_more_actors_than_the_cluster_has_cpus(local_ray):
    with pytest.raises(UserError, match="need CPU 8 \\(the cluster has 2\\); this cluster cannot grow"):
        GeneratorPool(StreamConfig(style=load_style("tiny"), num_actors=8))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"batch_size": 0}, "batch_size = 0"), ({"num_actors": 0}, "num_actors = 0"),
    ({"max_bytes_in_flight": 10}, "at least 1 MiB"), ({"actor_cpus": -1}, "actor_cpus = -1"),
    ({"seed": 2**63}, "seed = "), ({"actor_resource": "CPU"}, "custom resource"),
])
def test_bad_config(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        StreamConfig(style=load_style("tiny"), **kwargs)


def test_byte_cap_below_one_batch():
    config = StreamConfig(style=load_style("wikipedia"), batch_size=4096, max_bytes_in_flight=2 << 20)
    with pytest.raises(UserError, match="exceeds max_bytes_in_flight"):
        config.capacity()
