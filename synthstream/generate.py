"""The batch API: (style, seed, first index, n) -> uint8 images [n, H, W] and their traces.

`render(style, traces)` re-renders any traces (nuisance from each trace's key), which is what inference
uses; `generate` = `sample_traces` + `render`. Neither runs per-sample Python.
"""

from __future__ import annotations

import functools

import numpy as np

from synthstream.errors import UserError
from synthstream.glyphs import glyph_atlas
from synthstream.limits import MAX_SAMPLES
from synthstream.render.params import render_params
from synthstream.render.pipeline import render_batch_kernel
from synthstream.render.rng import normal_table
from synthstream.style import Style
from synthstream.trace import TraceBatch, sample_traces


@functools.lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    return normal_table()


def render(style: Style, traces: TraceBatch, out: np.ndarray | None = None) -> np.ndarray:
    """Render traces into uint8 [n, H, W] (allocated unless `out` is given)."""
    n = len(traces)
    if out is None:
        out = np.empty((n, style.height, style.width), np.uint8)
    elif out.shape != (n, style.height, style.width) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(n, style.height, style.width)}, got {out.dtype} {out.shape}")
    atlas = glyph_atlas(style)
    size_idx = (traces.font_size - style.latent_range("font_size")[0]).astype(np.int32)
    render_batch_kernel(out, traces.keys, traces.num_chars, traces.chars, traces.font, size_idx,
                        traces.kerning, atlas.pixels, atlas.meta, atlas.advance, _normal_table(),
                        render_params(style))
    return out


def generate(style: Style, seed: int, first_index: int, n: int) -> tuple[np.ndarray, TraceBatch]:
    """n fresh samples for global indices [first_index, first_index + n)."""
    if not isinstance(n, (int, np.integer)) or not 0 < n <= MAX_SAMPLES:
        raise UserError(f"sample count n = {n!r} must be an integer in [1, {MAX_SAMPLES}]")
    if first_index < 0:
        raise UserError(f"first index {first_index} must be >= 0")
    traces = sample_traces(style, seed, first_index, n)
    return render(style, traces), traces
