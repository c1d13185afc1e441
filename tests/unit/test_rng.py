import numpy as np

from synthstream.render import rng
from synthstream.render.jit import ngjit
from synthstream.render.rng import (
    fill_normals,
    normal_table,
    randint,
    sample_keys,
    stream_key,
    substream,
    table_normal,
    uniform,
)


@ngjit
def _draws(key, n, lo, hi, table):
    u = np.empty(n)
    k = np.empty(n, np.int64)
    z = np.empty(n, np.float32)
    for j in range(n):
        u[j] = uniform(key, j)
        k[j] = randint(key, j, lo, hi)
        z[j] = table_normal(key, j, table)
    return u, k, z


def test_draws_have_the_right_ranges_and_moments():
    table = normal_table()
    u, k, z = _draws(np.uint64(12345), 200_000, -2, 1, table)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01
    assert set(np.unique(k)) == {-2, -1, 0, 1}
    assert np.allclose(np.bincount(k + 2) / k.size, 0.25, atol=0.01)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02


def test_fill_normals_matches_table_normal():
    table = normal_table()
    out = np.empty(10, np.float32)
    fill_normals(out, np.uint64(7), table, 2.0)
    _, _, z = _draws(np.uint64(7), 10, 0, 1, table)
    np.testing.assert_array_equal(out, 2.0 * z)


def test_sample_keys_depend_on_seed_and_index_only():
    a = sample_keys(3, np.arange(100, 200))
    b = sample_keys(3, np.arange(0, 300))[100:200]
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 100
    assert not np.intersect1d(a, sample_keys(4, np.arange(100, 200))).size
    assert normal_table()[:5].tolist() == normal_table()[:5].tolist()


@ngjit
def _stream_keys(key, purposes, instances):
    out = []
    for s in purposes:
        out.append(stream_key(key, s))
        out.append(hash2_draw0(key, s))
        for i in range(instances):
            out.append(substream(key, s, i))
    return out


@ngjit
def hash2_draw0(key, s):
    """The raw bits behind draw 0 of stream s, which a sub-stream key must not repeat."""
    return rng.hash2(stream_key(key, s), 0)


def test_named_streams_and_substreams_are_all_distinct():
    names = [n for n in dir(rng) if n.startswith("STREAM_")]
    purposes = np.array(sorted(getattr(rng, n) for n in names), np.int64)
    assert len(set(purposes.tolist())) == len(names), "two streams share a number"
    for key in sample_keys(0, np.arange(3)):
        keys = _stream_keys(key, purposes, 12)
        assert len(set(keys)) == len(keys)
