import json

import numpy as np
import pyarrow as pa
import pytest

from synthstream.batch import check_version, images_of, schema, style_of, targets_of, to_record_batch, to_torch
from synthstream.generate import generate, render
from synthstream.style import load_style
from synthstream.trace import codec_of, traces_from_classes


@pytest.fixture(scope="module")
def wiki():
    style = load_style("wikipedia")
    images, traces = generate(style, 9, 512, 16)
    return style, images, traces, to_record_batch(style, images, traces, 9)


def test_schema_has_every_address_and_the_metadata(wiki):
    style, _, _, batch = wiki
    names = batch.schema.names
    assert names[:2] == ["image", "text"] and names[-3:] == ["log_prob", "seed", "index"]
    assert tuple(names[2:-3]) == codec_of(style).addresses
    assert batch.schema.field("image").type == pa.fixed_shape_tensor(pa.uint8(), [50, 200])
    meta = batch.schema.metadata
    assert meta[b"style"] == b"wikipedia" and json.loads(meta[b"image_shape"]) == [50, 200]
    assert meta[b"run_seed"] == b"9"
    assert batch.schema.equals(schema(style, 9), check_metadata=True)


def test_pixels_are_not_copied(wiki):
    _, images, _, batch = wiki
    assert np.shares_memory(images_of(batch), images)
    t = to_torch(load_style("wikipedia"), batch)
    assert t.images.data_ptr() == images_of(batch).ctypes.data
    assert t.images.shape == (16, 50, 200) and t.targets.shape == (16, 14)
    assert t.index.tolist() == list(range(512, 528))


def test_targets_are_class_indices_within_each_support(wiki):
    style, _, traces, batch = wiki
    targets = targets_of(style, batch)
    np.testing.assert_array_equal(targets[:, 0], traces.num_chars - 8)
    np.testing.assert_array_equal(targets[:, 2], traces.font_size - 26)
    np.testing.assert_array_equal(targets[:, 4:], traces.chars)
    codec = codec_of(style)
    for j, address in enumerate(codec.addresses):
        col = targets[:, j]
        assert col.max() < len(codec.support(address)) and col.min() >= -1


def test_a_row_rerenders_from_the_batch_alone(wiki):
    _, images, _, batch = wiki
    style = style_of(batch)                       # the style travels in the schema metadata
    traces = traces_from_classes(style, targets_of(style, batch), batch.column("seed").to_numpy())
    np.testing.assert_array_equal(render(style, traces), images)


def test_version_is_checked(wiki):
    batch = wiki[3]
    check_version(batch)
    old = batch.replace_schema_metadata({**batch.schema.metadata, b"synthstream.version": b"0"})
    with pytest.raises(ValueError, match="format version '0'"):
        check_version(old)
