"""The stream on a real local Ray: shards, determinism, resume, torch batches, use from another worker."""

import dataclasses

import numpy as np
import pytest
import ray

from synthstream.batch import images_of
from synthstream.generate import generate
from synthstream.stream import DataStream, GeneratorPool, StreamConfig, sample_indices
from synthstream.style import load_style

B = 32


@pytest.fixture(scope="module")
def pool(local_ray):
    p = GeneratorPool(StreamConfig(style=load_style("tiny"), seed=5, batch_size=B, num_actors=2,
                                   max_batches_in_flight=4))
    yield p
    p.shutdown()


def take(stream, n):
    return [stream.next_record_batch() for _ in range(n)]


def test_ranks_get_disjoint_shards_that_tile_the_index_range(pool):
    shards = [take(pool.stream(rank=r, world_size=3), 4) for r in range(3)]
    per_rank = [sample_indices(s) for s in shards]
    assert all(len(np.unique(ix)) == 4 * B for ix in per_rank)
    together = np.sort(np.concatenate(per_rank))
    np.testing.assert_array_equal(together, np.arange(12 * B))
    # rank r's k-th batch is global batch 3k + r
    assert shards[1][2].column("index").to_numpy()[0] == (3 * 2 + 1) * B


def test_stream_bytes_equal_direct_generation_and_resume_continues(pool):
    first = take(pool.stream(), 5)
    style = load_style("tiny")
    direct, _ = generate(style, 5, 0, 5 * B)
    np.testing.assert_array_equal(np.concatenate([images_of(b) for b in first]), direct)
    resumed = take(pool.stream(start=3), 2)
    for a, b in zip(first[3:], resumed):
        np.testing.assert_array_equal(images_of(a), images_of(b))


def test_torch_batches_in_a_for_loop(pool):
    stream = pool.stream()
    for k, batch in enumerate(stream):
        assert batch.images.shape == (B, 32, 48) and batch.targets.shape == (B, 6)
        assert batch.index[0].item() == k * B
        if k == 2:
            break
    s = stream.stats()
    assert s["position"] == 3 and s["images_delivered"] == 3 * B and s["capacity"] == 4
    assert s["queue_depth"] <= 4 and len(s["actors"]) == 2 and s["actors"][0]["images"] > 0
    stream.close()


@ray.remote(num_cpus=0)
def _consume_elsewhere(stream, n):
    return [int(stream.next_record_batch().column("index").to_numpy()[0]) for _ in range(n)]


def test_a_stream_works_inside_another_ray_worker(pool):
    starts = ray.get(_consume_elsewhere.remote(pool.stream(rank=1, world_size=2), 3))
    assert starts == [1 * B, 3 * B, 5 * B]


def test_embedded_ray_keeps_token_authentication(local_ray):
    auth = pytest.importorskip("ray._private.authentication.authentication_utils")
    assert auth.is_token_auth_enabled()
    assert ray.get_runtime_context().gcs_address


@pytest.mark.parametrize("object_batches", [1, 3])
def test_object_size_is_a_performance_knob_only(pool, object_batches):
    """Objects of m training batches, sliced by the consumer: every rank gets the same samples in the same
    batches as with one batch per object, exactly once, and resumes mid-object in training-batch units."""
    tiny = load_style("tiny")
    config = dataclasses.replace(pool.config, object_size=object_batches * B, max_batches_in_flight=2)

    def stream(**kw):
        return DataStream(config, pool.actors, **kw)
    streams = [stream(rank=r, world_size=2) for r in range(2)]
    shards = [take(s, 5) for s in streams]
    assert all(s.index_errors == 0 and s.position == 5 for s in streams)
    for r, shard in enumerate(shards):
        for k, batch in enumerate(shard):
            np.testing.assert_array_equal(batch.column("index").to_numpy(),
                                          np.arange((2 * k + r) * B, (2 * k + r + 1) * B))
    direct, _ = generate(tiny, 5, 0, 10 * B)
    got = {int(b.column("index")[0].as_py()): images_of(b) for shard in shards for b in shard}
    np.testing.assert_array_equal(np.concatenate([got[i * B] for i in range(10)]), direct)
    resumed = stream(rank=1, world_size=2, start=4)                # mid-object when m = 3
    again = take(resumed, 2)
    np.testing.assert_array_equal(images_of(again[0]), images_of(shards[1][4]))
    assert again[1].column("index")[0].as_py() == (2 * 5 + 1) * B and resumed.index_errors == 0
    for s in streams + [resumed]:
        s.close()


def test_object_size_defaults_by_bytes_and_is_checked():
    from synthstream.errors import UserError
    from synthstream.stream import OBJECT_TARGET_BYTES

    wiki = load_style("wikipedia")
    for batch in (64, 256):
        config = StreamConfig(style=wiki, batch_size=batch)
        m = config.batches_per_object()
        assert config.object_bytes() >= OBJECT_TARGET_BYTES > config.object_bytes() - batch * config.sample_bytes()
        assert m >= 1 and config.capacity() * config.object_bytes() <= config.max_bytes_in_flight
    with pytest.raises(UserError, match="object_size = 100 must be a multiple of batch_size"):
        StreamConfig(style=wiki, batch_size=64, object_size=100)
