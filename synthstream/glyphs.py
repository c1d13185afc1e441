"""Glyph atlas: every (font, size, character) of a style rasterised once with Pillow/FreeType.

The render kernels read glyphs from flat arrays (no Python objects in the hot path):
  pixels  float32 [total]            coverage 0..1 of all bitmaps, concatenated row-major
  meta    int32   [F, S, C, 5]       offset into pixels, height, width, left bearing, top (relative to baseline)
  advance float32 [F, S, C]          pen advance in pixels
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synthstream.fonts import checked_font
from synthstream.style import Style


@dataclass(frozen=True)
class GlyphAtlas:
    pixels: np.ndarray
    meta: np.ndarray
    advance: np.ndarray


def rasterise(font_path: str, size: int, char: str, embolden: int = 0) -> tuple[np.ndarray, int, int, float]:
    """One glyph: (coverage [h, w] float32, left bearing, top relative to baseline, advance)."""
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(char, anchor="ls", stroke_width=embolden)
    w, h = max(right - left, 1), max(bottom - top, 1)
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).text((-left, -top), char, font=font, fill=255, anchor="ls", stroke_width=embolden,
                            stroke_fill=255)
    return np.asarray(im, dtype=np.float32) / 255.0, int(left), int(top), float(font.getlength(char))


@functools.lru_cache(maxsize=16)
def _atlas(font_paths: tuple[str, ...], sizes: tuple[int, ...], alphabet: str, embolden: int) -> GlyphAtlas:
    meta = np.zeros((len(font_paths), len(sizes), len(alphabet), 5), np.int32)
    advance = np.zeros((len(font_paths), len(sizes), len(alphabet)), np.float32)
    chunks, offset = [], 0
    for f, path in enumerate(font_paths):
        for s, size in enumerate(sizes):
            for c, char in enumerate(alphabet):
                bitmap, left, top, adv = rasterise(path, size, char, embolden)
                meta[f, s, c] = (offset, bitmap.shape[0], bitmap.shape[1], left, top)
                advance[f, s, c] = adv
                chunks.append(bitmap.ravel())
                offset += bitmap.size
    return GlyphAtlas(np.concatenate(chunks), meta, advance)


def glyph_atlas(style: Style) -> GlyphAtlas:
    """The style's atlas, built once per process (fonts are looked up and checked, and problems reported, here)."""
    paths = tuple(checked_font(f, style.alphabet, style.name) for f in style.fonts)
    return _atlas(paths, tuple(style.font_sizes), style.alphabet, style.params["layout"]["embolden"])
