"""Glyph compositing: place each character's bitmap (rotated, scaled, bilinear) on a coverage canvas."""

import math

import numpy as np

from synthstream.render.jit import ngjit
from synthstream.render.kernels.warp import sample_bilinear


@ngjit
def draw_glyph(canvas, pixels, off, gh, gw, top, left, angle):
    """Max-composite a glyph whose unrotated top-left is (top, left), rotated by `angle` radians about its
    centre, onto canvas (H, W). With angle 0 and integer (top, left) this is an exact copy."""
    H, W = canvas.shape
    if angle == 0.0 and top == math.floor(top) and left == math.floor(left):
        t, lf = np.int64(top), np.int64(left)
        for r in range(max(0, -t), min(gh, H - t)):
            for c in range(max(0, -lf), min(gw, W - lf)):
                a = pixels[off + r * gw + c]
                if a > canvas[t + r, lf + c]:
                    canvas[t + r, lf + c] = a
        return
    glyph = pixels[off:off + gh * gw].reshape((gh, gw))
    draw_glyph_scaled(canvas, glyph, top + 0.5 * (gh - 1), left + 0.5 * (gw - 1), angle, 1.0, 1.0)


@ngjit
def draw_glyph_scaled(canvas, glyph, cy, cx, angle, sx, sy):
    """Max-composite `glyph` (h, w) rotated by `angle` radians about its centre, then scaled by (sx, sy) along
    the canvas axes, centred at (cy, cx) in pixel-index coordinates; bilinear."""
    H, W = canvas.shape
    gh, gw = glyph.shape
    cos_a = math.cos(angle)
    sin_a = math.sin(angle)
    hy = 0.5 * sy * (abs(sin_a) * gw + abs(cos_a) * gh)
    hx = 0.5 * sx * (abs(cos_a) * gw + abs(sin_a) * gh)
    y_lo = max(0, np.int64(math.floor(cy - hy)))
    y_hi = min(H, np.int64(math.ceil(cy + hy)) + 1)
    x_lo = max(0, np.int64(math.floor(cx - hx)))
    x_hi = min(W, np.int64(math.ceil(cx + hx)) + 1)
    for y in range(y_lo, y_hi):
        ry = (y - cy) / sy
        for x in range(x_lo, x_hi):
            rx = (x - cx) / sx
            # inverse scale, then inverse rotation: destination pixel -> glyph coordinates
            u = cos_a * rx + sin_a * ry + 0.5 * (gw - 1)
            v = -sin_a * rx + cos_a * ry + 0.5 * (gh - 1)
            a = sample_bilinear(glyph, v, u)
            if a > canvas[y, x]:
                canvas[y, x] = a
