"""The batch API: (style, seed, first index, n) -> uint8 images [n, H, W] and their traces.

`render(style, traces)` re-renders any traces (nuisance from each trace's key), which is what inference
uses; `generate` = `sample_traces` + `render`. Neither runs per-sample Python.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from synthstream.errors import UserError
from synthstream.glyphs import glyph_atlas
from synthstream.limits import MAX_INDEX, MAX_SAMPLES, MAX_SEED
from synthstream.render.params import render_params
from synthstream.render.pipeline import render_batch_kernel
from synthstream.render.rng import normal_table
from synthstream.style import Style, builtin_styles, load_style
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
    keys, num_chars, chars, font, kerning = (_writeable(a) for a in (traces.keys, traces.num_chars, traces.chars,
                                                                      traces.font, traces.kerning))
    render_batch_kernel(out, keys, num_chars, chars, font, size_idx, kerning, atlas.pixels, atlas.meta,
                        atlas.advance, _normal_table(), render_params(style))
    return out


def _writeable(a: np.ndarray) -> np.ndarray:
    """`a`, or a C-contiguous writeable copy: Numba compiles a kernel per argument type, read-only arrays
    (an Arrow column's `to_numpy()`, re-rendering a batch's rows) being a type of their own, so one would
    compile a second copy of the render kernel (~11 s of a core in each fresh cache)."""
    return np.require(a, requirements=("C", "W"))


def generate(style: Style | str, seed: int, first_index: int, n: int) -> tuple[np.ndarray, TraceBatch]:
    """n fresh samples for global indices [first_index, first_index + n). `style` is a Style, or a built-in
    style's name or a style file's path. Non-integers (1.5, True, "3") are a TypeError, never truncated."""
    if isinstance(style, (str, Path)):
        style = load_style(style)
    elif not isinstance(style, Style):
        raise TypeError(f"style must be a Style or a style name or path, not {type(style).__name__}")
    for name, value in (("seed", seed), ("first_index", first_index), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, not {type(value).__name__} ({value!r})")
    if not 0 < n <= MAX_SAMPLES:
        raise UserError(f"sample count n = {n!r} must be an integer in [1, {MAX_SAMPLES}]")
    if not 0 <= seed < MAX_SEED:
        raise UserError(f"seed {seed} must be in [0, 2**63)")
    if not 0 <= first_index <= MAX_INDEX - n:
        raise UserError(f"first index {first_index} must be in [0, 2**63 - n] (the last index is "
                        f"first_index + n - 1 < 2**63)")
    traces = sample_traces(style, int(seed), int(first_index), int(n))
    return render(style, traces), traces


def compile_kernels() -> list[str]:
    """Render one image of every built-in style: this compiles the Numba kernels into their on-disk cache
    (synthstream/render/jit.py) once, at set-up. Every process that renders afterwards (each generator actor, a
    Train worker's validation set, a test) loads them in under a second instead of compiling them for ~35 s
    of a core each, all at once on a first run. Returns the styles rendered."""
    names = builtin_styles()
    for name in names:
        generate(name, 0, 0, 1)
    return names
