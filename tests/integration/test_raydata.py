"""read_synthstream: Ray Data rows equal `generate` for the same (seed, index)."""

import numpy as np
import pytest

from synthstream.errors import UserError
from synthstream.generate import generate
from synthstream.style import load_style


def test_ray_data_rows_equal_generate(local_ray):
    from synthstream.raydata import quiet_ray_data, read_synthstream

    quiet_ray_data()
    tiny = load_style("tiny")
    ds = read_synthstream(tiny, seed=3, start=10, stop=200, rows_per_block=64, concurrency=1, num_cpus=0.5)
    rows = sorted(ds.take_all(), key=lambda r: r["index"])
    assert [r["index"] for r in rows] == list(range(10, 200))
    direct, traces = generate(tiny, 3, 10, 190)
    np.testing.assert_array_equal(np.stack([np.asarray(r["image"]) for r in rows]), direct)
    assert [r["text"] for r in rows] == traces.texts()


def test_bad_range_is_one_line(local_ray):
    from synthstream.raydata import read_synthstream

    with pytest.raises(UserError, match="start = 5, stop = 5"):
        read_synthstream(load_style("tiny"), start=5, stop=5)


def test_unknown_columns_are_one_line():
    from synthstream.raydata import read_synthstream

    with pytest.raises(UserError, match=r"columns = \('nope',\): choose one or more of"):
        read_synthstream(load_style("tiny"), columns=("nope",))
