"""The Arrow record batch: one schema for every batch the stream carries.

Columns: `image` (fixed-shape uint8 tensor [H, W]), `text`, one int16 column per traced address
(`num_chars`, `font`, `font_size`, `kerning`, `char/0` ... `char/{max-1}`, -1 past the text's end), the
prior `log_prob`, the per-sample `seed` (the key fixing all nuisance randomness) and the global `index`.
Schema metadata: format version, style name, the full style (JSON), image shape, run seed. With the
metadata and the `seed` column, any row re-renders exactly.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from synthstream.style import Style, parse_style
from synthstream.trace import TraceBatch, codec_of

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = "2"


def schema(style: Style, run_seed: int) -> pa.Schema:
    fields = [pa.field("image", pa.fixed_shape_tensor(pa.uint8(), [style.height, style.width]), nullable=False),
              pa.field("text", pa.string(), nullable=False)]
    fields += [pa.field(a, pa.int16(), nullable=False) for a in codec_of(style).addresses]
    fields += [pa.field("log_prob", pa.float64(), nullable=False), pa.field("seed", pa.uint64(), nullable=False),
               pa.field("index", pa.int64(), nullable=False)]
    meta = {"synthstream.version": FORMAT_VERSION, "style": style.name, "style_json": style.canonical,
            "image_shape": json.dumps([style.height, style.width]), "run_seed": str(run_seed)}
    return pa.schema(fields, metadata=meta)


def to_record_batch(style: Style, images: np.ndarray, traces: TraceBatch, run_seed: int) -> pa.RecordBatch:
    """Pack rendered images and their traces (no copy of the pixels)."""
    values = traces.codec.to_values(traces.classes).astype(np.int16)
    columns = [pa.FixedShapeTensorArray.from_numpy_ndarray(images), pa.array(traces.texts(), pa.string())]
    columns += [pa.array(values[:, j]) for j in range(values.shape[1])]
    columns += [pa.array(traces.log_prior()), pa.array(traces.keys), pa.array(traces.indices)]
    return pa.RecordBatch.from_arrays(columns, schema=schema(style, run_seed))


def check_version(batch: pa.RecordBatch) -> None:
    meta = batch.schema.metadata or {}
    got = meta.get(b"synthstream.version", b"?").decode()
    if got != FORMAT_VERSION:
        raise ValueError(f"record batch format version {got!r}, this synthstream reads {FORMAT_VERSION!r}")


def style_of(batch: pa.RecordBatch) -> Style:
    """The style a batch was rendered with, from its schema metadata."""
    return parse_style(json.loads(batch.schema.metadata[b"style_json"]), "record batch metadata")


def images_of(batch: pa.RecordBatch) -> np.ndarray:
    """uint8 [n, H, W], a zero-copy (read-only) view of the batch's pixels."""
    return batch.column(0).to_numpy_ndarray()


def targets_of(style: Style, batch: pa.RecordBatch) -> np.ndarray:
    """int64 [n, T]: each latent as its class index within the address's support (-1 = absent), in the
    codec's order. This is what a proposal network's heads are trained to predict."""
    codec = codec_of(style)
    return codec.to_classes(np.stack([batch.column(a).to_numpy() for a in codec.addresses], axis=1))


@dataclass
class TorchBatch:
    """What a training step consumes. `images` shares memory with the Arrow batch (read-only: copy or move
    it to a device before writing); `targets` follow the codec's addresses; `index` are global sample indices;
    `record_batch` is the Arrow batch itself (texts, log_prob, seeds)."""

    images: torch.Tensor      # uint8 [n, H, W]
    targets: torch.Tensor     # int64 [n, A]
    index: torch.Tensor       # int64 [n]
    record_batch: pa.RecordBatch

    @property
    def texts(self) -> list[str]:
        return self.record_batch.column("text").to_pylist()


def to_torch(style: Style, batch: pa.RecordBatch) -> TorchBatch:
    import torch

    with warnings.catch_warnings():
        # the pixels live in Ray's read-only shared memory; nothing writes to them in place, and moving them
        # to a device or to float makes the copy a training step needs anyway
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        images = torch.from_numpy(images_of(batch))
    return TorchBatch(images=images, targets=torch.from_numpy(targets_of(style, batch)),
                      index=torch.from_numpy(batch.column("index").to_numpy()), record_batch=batch)
