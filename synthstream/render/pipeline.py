"""The per-sample render program and its batch driver.

For one sample: lay out glyphs (latents: font, size, kerning, characters; nuisance: position, rotation,
jitter) -> coverage canvas -> displacement (elastic + fine + sinusoidal shear) -> bilinear remap ->
re-centre -> Gaussian blur -> clutter (strokes, ellipses, dots) -> grey levels + pixel noise -> uint8.
Every nuisance draw is a pure function of the sample key (see rng.py), so the batch driver can `prange`
over samples and the result does not depend on the thread count.
"""

import math

import numpy as np
from numba import prange

from synthstream.render.jit import ngjit, ngjit_parallel
from synthstream.render.kernels.blur import blur
from synthstream.render.kernels.clutter import draw_bezier, draw_dot, draw_ellipse
from synthstream.render.kernels.compose import draw_glyph
from synthstream.render.kernels.warp import add_shear, add_smooth_field, ink_bbox, remap
from synthstream.render.params import (BACKGROUND, BASELINE, BASELINE_CENTER, BLUR_SIGMA, CHAR_DY,
                                       CHAR_ROTATION, DOT_RADIUS, DOTS, ELASTIC_ALPHA, ELASTIC_SIGMA,
                                       ELLIPSE_RADIUS, ELLIPSE_WIDTH, ELLIPSES, FINE_ALPHA, FINE_SIGMA, INK,
                                       INK_OPACITY, NOISE_SIGMA, RECENTER, SHEAR_X_AMPLITUDE, SHEAR_X_PERIOD,
                                       SHEAR_Y_AMPLITUDE, SHEAR_Y_PERIOD, START_X, START_X_CENTER,
                                       STROKE_ANGLE, STROKE_LENGTH, STROKE_WIDTH, STROKE_Y, STROKES)
from synthstream.render.rng import (STREAM_CLUTTER, STREAM_ELASTIC, STREAM_FINE, STREAM_INK, STREAM_LAYOUT,
                                    STREAM_NOISE, STREAM_SHEAR, hash2, randint, uniform_range)

_S16 = np.uint64(16)
_MASK16 = np.uint64(0xFFFF)


@ngjit
def _draw_text(canvas, key, n_chars, chars, font_i, size_i, kerning, pixels, meta, advance, p):
    """Glyphs onto the coverage canvas (H, W)."""
    H, W = canvas.shape
    k = hash2(key, STREAM_LAYOUT)
    lefts = np.empty(n_chars, np.int64)
    tops = np.empty(n_chars, np.int64)
    pen = 0.0
    x_min, x_max, y_min, y_max = 1 << 30, -(1 << 30), 1 << 30, -(1 << 30)
    for i in range(n_chars):
        m = meta[font_i, size_i, chars[i]]
        lefts[i] = np.int64(math.floor(pen + 0.5)) + m[3]
        tops[i] = m[4] + randint(k, 16 + 2 * i, p[CHAR_DY], p[CHAR_DY + 1])
        pen += advance[font_i, size_i, chars[i]] + kerning
        x_min, x_max = min(x_min, lefts[i]), max(x_max, lefts[i] + m[2])
        y_min, y_max = min(y_min, tops[i]), max(y_max, tops[i] + m[1])
    if p[START_X_CENTER] != 0.0:
        x0 = (W - (x_max - x_min)) // 2 - x_min
    else:
        x0 = randint(k, 0, p[START_X], p[START_X + 1])
    if p[BASELINE_CENTER] != 0.0:
        y0 = (H - (y_max - y_min)) // 2 - y_min
    else:
        y0 = randint(k, 1, p[BASELINE], p[BASELINE + 1])
    for i in range(n_chars):
        m = meta[font_i, size_i, chars[i]]
        angle = uniform_range(k, 17 + 2 * i, p[CHAR_ROTATION], p[CHAR_ROTATION + 1]) * (math.pi / 180.0)
        draw_glyph(canvas, pixels, m[0], m[1], m[2], tops[i] + y0, lefts[i] + x0, angle)


@ngjit
def _add_displacement(dx, dy, k, table, p, alpha_field, sigma_field):
    """(dx, dy) += one smooth random displacement whose alpha and sigma are drawn from the style's ranges."""
    alpha = uniform_range(k, 0, p[alpha_field], p[alpha_field + 1])
    sigma = uniform_range(k, 1, p[sigma_field], p[sigma_field + 1])
    add_smooth_field(dx, hash2(k, 2), table, sigma, alpha)
    add_smooth_field(dy, hash2(k, 3), table, sigma, alpha)


@ngjit
def _warp(canvas, warped, key, table, p):
    """warped = canvas under elastic + fine + shear displacement. Returns False (and leaves warped alone)
    when the style has no warp."""
    H, W = canvas.shape
    has_elastic = p[ELASTIC_ALPHA + 1] > 0.0
    has_fine = p[FINE_ALPHA + 1] > 0.0
    has_shear = p[SHEAR_X_AMPLITUDE] != 0.0 or p[SHEAR_X_AMPLITUDE + 1] != 0.0 or \
        p[SHEAR_Y_AMPLITUDE] != 0.0 or p[SHEAR_Y_AMPLITUDE + 1] != 0.0
    if not (has_elastic or has_fine or has_shear):
        return False
    dx = np.zeros((H, W), np.float32)
    dy = np.zeros((H, W), np.float32)
    if has_elastic:
        _add_displacement(dx, dy, hash2(key, STREAM_ELASTIC), table, p, ELASTIC_ALPHA, ELASTIC_SIGMA)
    if has_fine:
        _add_displacement(dx, dy, hash2(key, STREAM_FINE), table, p, FINE_ALPHA, FINE_SIGMA)
    if has_shear:
        k = hash2(key, STREAM_SHEAR)
        add_shear(dx, dy,
                  uniform_range(k, 0, p[SHEAR_X_AMPLITUDE], p[SHEAR_X_AMPLITUDE + 1]),
                  uniform_range(k, 1, p[SHEAR_X_PERIOD], p[SHEAR_X_PERIOD + 1]),
                  uniform_range(k, 2, 0.0, 2.0 * math.pi),
                  uniform_range(k, 3, p[SHEAR_Y_AMPLITUDE], p[SHEAR_Y_AMPLITUDE + 1]),
                  uniform_range(k, 4, p[SHEAR_Y_PERIOD], p[SHEAR_Y_PERIOD + 1]),
                  uniform_range(k, 5, 0.0, 2.0 * math.pi))
    y0, y1, x0, x1 = ink_bbox(canvas, 0.0)
    remap(canvas, dx, dy, warped, y0, y1, x0, x1)
    return True


@ngjit
def _draw_clutter(canvas, key, p):
    H, W = canvas.shape
    k = hash2(key, STREAM_CLUTTER)
    py = np.empty(4, np.float64)
    px = np.empty(4, np.float64)
    j = 0
    for _ in range(randint(k, j, p[STROKES], p[STROKES + 1])):
        y0 = H * uniform_range(k, j + 1, p[STROKE_Y], p[STROKE_Y + 1])
        x0 = uniform_range(k, j + 2, 0.0, W)
        length = uniform_range(k, j + 3, p[STROKE_LENGTH], p[STROKE_LENGTH + 1])
        theta = uniform_range(k, j + 4, p[STROKE_ANGLE], p[STROKE_ANGLE + 1]) * (math.pi / 180.0)
        ty, tx = math.sin(theta), math.cos(theta)
        for c in range(4):  # control points along the chord, bent sideways
            bend = 0.0 if c == 0 or c == 3 else uniform_range(k, j + 5 + c, -0.4, 0.4) * length
            py[c] = y0 + ty * length * c / 3.0 + tx * bend
            px[c] = x0 + tx * length * c / 3.0 - ty * bend
        draw_bezier(canvas, py, px, uniform_range(k, j + 9, p[STROKE_WIDTH], p[STROKE_WIDTH + 1]), 1, 16)
        j += 10
    j = 1000
    for _ in range(randint(k, j, p[ELLIPSES], p[ELLIPSES + 1])):
        draw_ellipse(canvas, uniform_range(k, j + 1, 0.0, H), uniform_range(k, j + 2, 0.0, W),
                     uniform_range(k, j + 3, p[ELLIPSE_RADIUS], p[ELLIPSE_RADIUS + 1]),
                     uniform_range(k, j + 4, p[ELLIPSE_RADIUS], p[ELLIPSE_RADIUS + 1]),
                     uniform_range(k, j + 5, p[ELLIPSE_WIDTH], p[ELLIPSE_WIDTH + 1]), -1)
        j += 6
    j = 2000
    for _ in range(randint(k, j, p[DOTS], p[DOTS + 1])):
        draw_dot(canvas, uniform_range(k, j + 1, 0.0, H), uniform_range(k, j + 2, 0.0, W),
                 uniform_range(k, j + 3, p[DOT_RADIUS], p[DOT_RADIUS + 1]), 1)
        j += 4


@ngjit
def _to_grey(canvas, out, key, table, p):
    """out uint8 (H, W) = background + (ink - background) * opacity * coverage + noise."""
    H, W = canvas.shape
    k = hash2(key, STREAM_INK)
    bg = uniform_range(k, 0, p[BACKGROUND], p[BACKGROUND + 1])
    ink = uniform_range(k, 1, p[INK], p[INK + 1])
    contrast = (ink - bg) * uniform_range(k, 2, p[INK_OPACITY], p[INK_OPACITY + 1])
    noise = uniform_range(k, 3, p[NOISE_SIGMA], p[NOISE_SIGMA + 1])
    kn = hash2(key, STREAM_NOISE)
    flat_c = canvas.reshape(H * W)
    flat_o = out.reshape(H * W)
    h = np.uint64(0)
    for i in range(H * W):
        v = bg + contrast * flat_c[i]
        if noise > 0.0:
            if i & 3 == 0:
                h = hash2(kn, i >> 2)
            v += noise * table[(h >> (_S16 * np.uint64(i & 3))) & _MASK16]
        v = math.floor(v + 0.5)
        flat_o[i] = np.uint8(0 if v < 0.0 else (255 if v > 255.0 else v))


@ngjit
def render_one(out, key, n_chars, chars, font_i, size_i, kerning, pixels, meta, advance, table, p):
    """Render one sample into out (H, W) uint8."""
    H, W = out.shape
    canvas = np.zeros((H, W), np.float32)
    _draw_text(canvas, key, n_chars, chars, font_i, size_i, kerning, pixels, meta, advance, p)
    warped = np.empty((H, W), np.float32)
    if _warp(canvas, warped, key, table, p):
        src, final = warped, canvas     # reuse the buffer we no longer need
    else:
        src, final = canvas, warped
    shift_y, shift_x = 0, 0
    if p[RECENTER] != 0.0:
        y0, y1, x0, x1 = ink_bbox(src, 0.1)
        if y1 > y0:
            shift_y = (y0 + y1 - H) // 2
            shift_x = (x0 + x1 - W) // 2
    tmp = np.empty((H, W), np.float32)
    blur(src, final, tmp, max(uniform_range(hash2(key, STREAM_INK), 4, p[BLUR_SIGMA], p[BLUR_SIGMA + 1]), 0.0),
         shift_y, shift_x)
    _draw_clutter(final, key, p)
    _to_grey(final, out, key, table, p)


@ngjit_parallel
def render_batch_kernel(out, keys, num_chars, chars, font, size_idx, kerning, pixels, meta, advance, table, p):
    """out (n, H, W) uint8; one sample per prange iteration."""
    for i in prange(out.shape[0]):
        render_one(out[i], keys[i], num_chars[i], chars[i], font[i], size_idx[i], kerning[i],
                   pixels, meta, advance, table, p)
