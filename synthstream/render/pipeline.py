"""The per-sample render program and its batch driver.

For one sample: lay out glyphs (latents: font, size, kerning, characters; nuisance: position, rotation,
shear, stretch, jitter, per-character size, blanks, squeeze) -> coverage canvas -> displacement (elastic + fine
+ sinusoidal shear) -> bilinear remap -> re-centre -> Gaussian blur -> marks that follow the text (ghost
outlines, drips) -> clutter (strokes, ellipses, dots, dashes) -> grey levels + pixel noise -> uint8.
Every nuisance draw is a pure function of the sample key (see rng.py), so the batch driver can `prange`
over samples and the result does not depend on the thread count.
"""

import math

import numpy as np
from numba import prange

from synthstream.render.jit import ngjit, ngjit_parallel
from synthstream.render.kernels.blur import blur
from synthstream.render.kernels.clutter import (
    draw_bezier,
    draw_dot,
    draw_ellipse,
    draw_segment,
    outline_distance,
    paint_outline,
)
from synthstream.render.kernels.compose import draw_glyph, draw_glyph_scaled, glyph_scratch
from synthstream.render.kernels.warp import (
    abs_max,
    add_field_rows,
    field_bound,
    field_rows,
    ink_bbox,
    reach,
    remap_row,
    remap_scratch,
    remap_span,
    shear_wave,
)
from synthstream.render.params import F
from synthstream.render.rng import (
    AXIS_X,
    AXIS_Y,
    STREAM_BLUR,
    STREAM_CHAR,
    STREAM_CLUTTER,
    STREAM_DASH,
    STREAM_DOT,
    STREAM_DRIP,
    STREAM_ELASTIC,
    STREAM_ELLIPSE,
    STREAM_FINE,
    STREAM_GHOST,
    STREAM_INK,
    STREAM_LAYOUT,
    STREAM_NOISE,
    STREAM_SHEAR,
    STREAM_STROKE,
    fill_normals,
    randint,
    stream_key,
    substream,
    uniform_range,
)

# The draws (counters) of each stream or sub-stream, by name.
LAYOUT_START_X, LAYOUT_BASELINE, LAYOUT_SPACE_P = 0, 1, 2
CHAR_JITTER_Y, CHAR_ANGLE, CHAR_SCALE_DRAW, CHAR_FILL_DRAW, CHAR_BLANK, CHAR_DX_DRAW = 0, 1, 2, 3, 4, 5
CHAR_SHEAR_DRAW, CHAR_STRETCH_DRAW = 6, 7
FIELD_ALPHA, FIELD_SIGMA = 0, 1
SHEAR_X_AMP, SHEAR_X_PER, SHEAR_X_PHASE, SHEAR_Y_AMP, SHEAR_Y_PER, SHEAR_Y_PHASE = 0, 1, 2, 3, 4, 5
INK_BACKGROUND, INK_LEVEL, INK_ALPHA, INK_NOISE = 0, 1, 2, 3
BLUR_SIGMA_DRAW = 0
N_STROKES, N_ELLIPSES, N_DOTS, N_GHOSTS, N_DRIPS, N_DASHES = 0, 1, 2, 3, 4, 5
STROKE_Y0, STROKE_X0, STROKE_LEN, STROKE_THETA, STROKE_BEND, STROKE_W = 0, 1, 2, 3, 4, 6   # BEND: 2 draws
ELLIPSE_CY, ELLIPSE_CX, ELLIPSE_RY, ELLIPSE_RX, ELLIPSE_W = 0, 1, 2, 3, 4
DOT_CY, DOT_CX, DOT_R = 0, 1, 2
DASH_CY, DASH_CX, DASH_LEN, DASH_THETA, DASH_W = 0, 1, 2, 3, 4
GHOST_SHIFT_DRAW, GHOST_DIRECTION, GHOST_W, GHOST_SIGN = 0, 1, 2, 3
DRIP_X, DRIP_LEN, DRIP_THETA, DRIP_BEND, DRIP_W = 0, 1, 2, 3, 5   # BEND: 2 draws


@ngjit
def _ink_box(glyph):
    """(r0, r1, c0, c1): the rows and columns of `glyph` (h, w) holding ink; the whole bitmap if none."""
    gh, gw = glyph.shape
    r0, r1, c0, c1 = ink_bbox(glyph, 0.0)
    if r1 <= r0:
        return 0, gh, 0, gw
    return r0, r1, c0, c1


@ngjit
def _draw_text(canvas, key, n_chars, chars, font_i, size_i, kerning, pixels, meta, advance, p, scratch):
    """Glyphs onto the coverage canvas (H, W). Each character gets a box (top, left, height, width) relative
    to the text's origin: its glyph scaled by `char_scale` about the baseline, or with `char_fill` a cell
    one advance wide and char_fill pixels tall, centred on the text's middle line, that the rotated glyph's
    ink is stretched to fill. Blanks (`char_space`) and pen shifts (`char_dx`) move the pen; `fit_width`
    squeezes text whose advances exceed the image width; then the text is placed and the glyphs drawn, each
    rotated, sheared (`char_shear`) and stretched (`char_stretch`) in its box (`_draw_char`). `scratch`:
    `glyph_scratch(W)`."""
    H, W = canvas.shape
    k = stream_key(key, STREAM_LAYOUT)
    fill = p[F.CHAR_FILL + 1] > 0.0
    space_p = uniform_range(k, LAYOUT_SPACE_P, p[F.CHAR_SPACE], p[F.CHAR_SPACE + 1])
    lefts = np.empty(n_chars, np.float64)
    tops = np.empty(n_chars, np.float64)
    widths = np.empty(n_chars, np.float64)
    heights = np.empty(n_chars, np.float64)
    angles = np.empty(n_chars, np.float64)
    shears = np.empty(n_chars, np.float64)
    stretches = np.empty(n_chars, np.float64)
    ink = np.empty((n_chars, 4), np.int64)
    pen, cells = 0.0, 0.0
    for i in range(n_chars):
        s = substream(key, STREAM_CHAR, i)
        m = meta[font_i, size_i, chars[i]]
        scale = uniform_range(s, CHAR_SCALE_DRAW, p[F.CHAR_SCALE], p[F.CHAR_SCALE + 1])
        step = advance[font_i, size_i, chars[i]] * scale
        if space_p > 0.0 and uniform_range(s, CHAR_BLANK, 0.0, 1.0) < space_p:
            pen += step
            cells += step
        angles[i] = uniform_range(s, CHAR_ANGLE, p[F.CHAR_ROTATION], p[F.CHAR_ROTATION + 1]) * (math.pi / 180.0)
        shears[i] = _drawn_or(s, CHAR_SHEAR_DRAW, p, F.CHAR_SHEAR, 0.0)
        stretches[i] = _drawn_or(s, CHAR_STRETCH_DRAW, p, F.CHAR_STRETCH, 1.0)
        jitter = randint(s, CHAR_JITTER_Y, p[F.CHAR_DY], p[F.CHAR_DY + 1])
        if fill:
            ink[i, 0], ink[i, 1], ink[i, 2], ink[i, 3] = _ink_box(pixels[m[0]:m[0] + m[1] * m[2]].reshape((m[1], m[2])))
            heights[i] = uniform_range(s, CHAR_FILL_DRAW, p[F.CHAR_FILL], p[F.CHAR_FILL + 1]) * scale
            widths[i] = step
            lefts[i] = pen
            tops[i] = -0.5 * heights[i] + jitter
        else:
            heights[i], widths[i] = m[1] * scale, m[2] * scale
            lefts[i] = np.float64(math.floor(pen + 0.5)) + m[3] * scale
            tops[i] = m[4] * scale + jitter
        pen += step + kerning + randint(s, CHAR_DX_DRAW, p[F.CHAR_DX], p[F.CHAR_DX + 1])
        cells += step
    squeeze = W / cells if p[F.FIT_WIDTH] != 0.0 and cells > W else 1.0
    x_min, x_max, y_min, y_max = 1e30, -1e30, 1e30, -1e30
    for i in range(n_chars):
        lefts[i] *= squeeze
        widths[i] *= squeeze
        x_min, x_max = min(x_min, lefts[i]), max(x_max, lefts[i] + widths[i])
        y_min, y_max = min(y_min, tops[i]), max(y_max, tops[i] + heights[i])
    if p[F.START_X_CENTER] != 0.0:
        x0 = np.float64(math.floor((W - (x_max - x_min)) / 2)) - x_min
    else:
        x0 = randint(k, LAYOUT_START_X, p[F.START_X], p[F.START_X + 1]) * squeeze
    if p[F.BASELINE_CENTER] != 0.0:
        y0 = np.float64(math.floor((H - (y_max - y_min)) / 2)) - y_min
    else:
        y0 = np.float64(randint(k, LAYOUT_BASELINE, p[F.BASELINE], p[F.BASELINE + 1]))
    for i in range(n_chars):
        m = meta[font_i, size_i, chars[i]]
        glyph = pixels[m[0]:m[0] + m[1] * m[2]].reshape((m[1], m[2]))
        if fill:
            glyph = glyph[ink[i, 0]:ink[i, 1], ink[i, 2]:ink[i, 3]]
        _draw_char(canvas, glyph, pixels, m[0], tops[i] + y0, lefts[i] + x0, heights[i], widths[i], angles[i],
                   shears[i], stretches[i], fill, scratch)


@ngjit
def _drawn_or(s, draw, p, field, off):
    """Draw `draw` of sub-stream `s` from the range at p[field], or `off` without a draw when the range is
    [off, off]: a feature that is off costs nothing and moves nothing."""
    lo, hi = p[field], p[field + 1]
    return off if lo == off and hi == off else uniform_range(s, draw, lo, hi)


@ngjit
def _draw_char(canvas, glyph, pixels, off, top, left, height, width, angle, shear, stretch, fill, scratch):
    """One glyph into its box (top, left, height, width), rotated, sheared and stretched (its width x `stretch`)
    about the box's centre: with `fill` scaled so that the rotated, sheared glyph fills the box, else by the
    box's size over the glyph's (`draw_glyph` where that is 1 and nothing shears or stretches it). `off`: where
    the unfilled glyph starts in `pixels`; `scratch`: `glyph_scratch(W)`."""
    gh, gw = glyph.shape
    cy = top + 0.5 * (height - 1.0)
    cx = left + 0.5 * (width - 1.0)
    if fill:
        c, sn = abs(math.cos(angle)), abs(math.sin(angle))
        wide = c * gw + sn * gh + abs(shear) * (sn * gw + c * gh)
        draw_glyph_scaled(canvas, glyph, cy, cx, angle, width / wide * stretch, height / (sn * gw + c * gh), shear,
                          scratch)
    elif width == gw and height == gh and shear == 0.0 and stretch == 1.0:
        draw_glyph(canvas, pixels, off, gh, gw, top, left, angle, scratch)
    else:
        draw_glyph_scaled(canvas, glyph, cy, cx, angle, width / gw * stretch, height / gh, shear, scratch)


@ngjit
def _field(key, purpose, table, p, alpha_field, sigma_field, H, W):
    """One smooth random displacement (both axes), alpha and sigma drawn from the style's ranges:
    (rows, sigma) for `add_field_rows`; no rows when alpha is 0."""
    k = stream_key(key, purpose)
    alpha = uniform_range(k, FIELD_ALPHA, p[alpha_field], p[alpha_field + 1])
    sigma = uniform_range(k, FIELD_SIGMA, p[sigma_field], p[sigma_field + 1])
    if alpha == 0.0:
        return np.empty((2, 0, W), np.float32), sigma
    return field_rows(H, W, substream(key, purpose, AXIS_X), substream(key, purpose, AXIS_Y), table, sigma,
                      alpha), sigma


@ngjit
def _warp(padded, warped, dx, dy, key, table, p):
    """warped (H, W) = the canvas (inside `padded`'s one-pixel zero border) under one displacement field,
    elastic + fine + shear, built row by row into dx, dy (W,) and remapped at once. Returns (moved, ya, yb):
    moved False (warped left alone) when the style has no warp; warped's rows outside [ya, yb) are zero."""
    H, W = warped.shape
    has_elastic = p[F.ELASTIC_ALPHA + 1] > 0.0
    has_fine = p[F.FINE_ALPHA + 1] > 0.0
    has_shear = p[F.SHEAR_X_AMPLITUDE] != 0.0 or p[F.SHEAR_X_AMPLITUDE + 1] != 0.0 or \
        p[F.SHEAR_Y_AMPLITUDE] != 0.0 or p[F.SHEAR_Y_AMPLITUDE + 1] != 0.0
    if not (has_elastic or has_fine or has_shear):
        return False, 0, H
    if has_elastic:
        e_rows, e_sigma = _field(key, STREAM_ELASTIC, table, p, F.ELASTIC_ALPHA, F.ELASTIC_SIGMA, H, W)
        has_elastic = e_rows.shape[1] > 0
    if has_fine:
        f_rows, f_sigma = _field(key, STREAM_FINE, table, p, F.FINE_ALPHA, F.FINE_SIGMA, H, W)
        has_fine = f_rows.shape[1] > 0
    if has_shear:
        k = stream_key(key, STREAM_SHEAR)
        x_amp = uniform_range(k, SHEAR_X_AMP, p[F.SHEAR_X_AMPLITUDE], p[F.SHEAR_X_AMPLITUDE + 1])
        x_period = uniform_range(k, SHEAR_X_PER, p[F.SHEAR_X_PERIOD], p[F.SHEAR_X_PERIOD + 1])
        x_phase = uniform_range(k, SHEAR_X_PHASE, 0.0, 2.0 * math.pi)
        shear_dy = shear_wave(W, uniform_range(k, SHEAR_Y_AMP, p[F.SHEAR_Y_AMPLITUDE], p[F.SHEAR_Y_AMPLITUDE + 1]),
                              uniform_range(k, SHEAR_Y_PER, p[F.SHEAR_Y_PERIOD], p[F.SHEAR_Y_PERIOD + 1]),
                              uniform_range(k, SHEAR_Y_PHASE, 0.0, 2.0 * math.pi))
    y0, y1, x0, x1 = ink_bbox(padded, 0.0)
    if y1 <= y0:                                          # no ink: nothing to move
        warped[:] = 0.0
        return True, 0, 0
    y0, y1, x0, x1 = y0 - 1, y1 - 1, x0 - 1, x1 - 1       # padded -> canvas coordinates
    ya, yb, xa, xb = 0, H, 0, W
    if not has_fine:
        # the largest displacement of each axis bounds which rows and columns can read the ink box; the
        # others read nothing (0), so neither their field nor their remap is computed (a fine field's bound,
        # many pixels, would skip little for its cost)
        bx, by = 0.0, 0.0
        if has_elastic:
            bx, by = field_bound(e_rows)
        if has_shear:
            bx += abs(x_amp)
            by += abs_max(shear_dy)
        ya, yb = reach(y0, y1, by, H)
        xa, xb = reach(x0, x1, bx, W)
        warped[:] = 0.0
    flat = padded.reshape(padded.shape[0] * padded.shape[1])
    cell, frac, vals = remap_scratch(W)
    ua, ub = np.uint64(xa), np.uint64(xb)               # unsigned columns: the row loops vectorise
    for y in range(ya, yb):
        for x in range(ua, ub):
            dx[x] = 0.0
            dy[x] = 0.0
        if has_elastic:
            add_field_rows(dx, dy, e_rows, e_sigma, y, xa, xb)
        if has_fine:
            add_field_rows(dx, dy, f_rows, f_sigma, y, xa, xb)
        if has_shear:
            sx = np.float32(x_amp * math.sin(2.0 * math.pi * y / x_period + x_phase))
            for x in range(ua, ub):
                dx[x] += sx
                dy[x] += shear_dy[x]
        if xa == 0 and xb == W:
            remap_row(flat, y, dx, dy, warped, y0, y1, x0, x1, cell, frac, vals)
        else:
            remap_span(flat, y, dx, dy, warped, y0, y1, x0, x1, cell, frac, vals, xa, xb)
    return True, ya, yb


@ngjit
def _bent_chord(py, px, s, y0, x0, length, degrees, bend_draw, bend):
    """The 4 Bezier control points (into py, px) of a chord of `length` from (y0, x0) at `degrees`, the inner
    two moved sideways by up to `bend` x length (draws `bend_draw` and `bend_draw` + 1 of sub-stream `s`)."""
    theta = degrees * (math.pi / 180.0)
    ty, tx = math.sin(theta), math.cos(theta)
    for c in range(4):
        side = 0.0 if c == 0 or c == 3 else uniform_range(s, bend_draw + c - 1, -bend, bend) * length
        py[c] = y0 + ty * length * c / 3.0 + tx * side
        px[c] = x0 + tx * length * c / 3.0 - ty * side


@ngjit
def _draw_text_marks(canvas, text, padded, shift_y, shift_x, key, p, acc, ya=0, yb=-1):
    """Marks that follow the text: ghosts (the outline of `text`, the warped text's coverage before the
    re-centring shift, moved by whole pixels in a random direction and drawn in background colour, so it
    cuts white lines into the letters, or with probability `ghost_dark` in ink, a doubled letter's edge),
    then drips (short ink strokes hanging from the lowest ink of a random text column). Drawn before the
    other clutter, so neither follows a stroke. `padded` (H + 2, W + 2), zero on its one-pixel border, is
    scratch for the ghosts' copy of `text`, `acc` float64 (W,) for the drips'; text's rows outside [ya, yb)
    (yb -1: H) are zero."""
    H, W = canvas.shape
    k = stream_key(key, STREAM_CLUTTER)
    n_ghosts = randint(k, N_GHOSTS, p[F.GHOSTS], p[F.GHOSTS + 1])
    n_drips = randint(k, N_DRIPS, p[F.DRIPS], p[F.DRIPS + 1])
    if n_ghosts + n_drips == 0:
        return
    if yb < 0:
        yb = H
    box = np.empty(4, np.int64)
    box[0], box[1], box[2], box[3] = ink_bbox(text[ya:yb], 0.0)     # the zero rows need no test
    if box[1] <= box[0]:
        return
    box[0] += ya
    box[1] += ya
    if n_ghosts > 0:
        padded[1:H + 1, 1:W + 1] = text
        dist = outline_distance(padded, box)            # shared by the ghosts
    for i in range(n_ghosts):
        s = substream(key, STREAM_GHOST, i)
        r = uniform_range(s, GHOST_SHIFT_DRAW, p[F.GHOST_SHIFT], p[F.GHOST_SHIFT + 1])
        a = uniform_range(s, GHOST_DIRECTION, 0.0, 2.0 * math.pi)
        dark = uniform_range(s, GHOST_SIGN, 0.0, 1.0) < uniform_range(s, GHOST_SIGN + 1, p[F.GHOST_DARK],
                                                                       p[F.GHOST_DARK + 1])
        paint_outline(canvas, dist, box, np.int64(round(r * math.sin(a))) - shift_y,
                      np.int64(round(r * math.cos(a))) - shift_x,
                      uniform_range(s, GHOST_W, p[F.GHOST_WIDTH], p[F.GHOST_WIDTH + 1]), 1 if dark else -1)
    py = np.empty(4, np.float64)
    px = np.empty(4, np.float64)
    for i in range(n_drips):
        s = substream(key, STREAM_DRIP, i)
        x0 = uniform_range(s, DRIP_X, box[2] - shift_x, box[3] - shift_x)
        col = min(max(np.int64(x0), 0), W - 1)
        y0 = -1.0
        for y in range(H - 1, -1, -1):
            if canvas[y, col] > 0.5:
                y0 = y + 0.5
                break
        if y0 < 0.0:
            continue
        _bent_chord(py, px, s, y0, x0, uniform_range(s, DRIP_LEN, p[F.DRIP_LENGTH], p[F.DRIP_LENGTH + 1]),
                    uniform_range(s, DRIP_THETA, p[F.DRIP_ANGLE], p[F.DRIP_ANGLE + 1]), DRIP_BEND, 0.15)
        draw_bezier(canvas, py, px, uniform_range(s, DRIP_W, p[F.DRIP_WIDTH], p[F.DRIP_WIDTH + 1]), 1, 8, acc)


@ngjit
def _draw_clutter(canvas, key, p, acc):
    """Strokes, then ellipses, then dots, then dashes; each one from its own sub-stream. `acc`: float64 (W,)
    scratch."""
    H, W = canvas.shape
    k = stream_key(key, STREAM_CLUTTER)
    py = np.empty(4, np.float64)
    px = np.empty(4, np.float64)
    for i in range(randint(k, N_STROKES, p[F.STROKES], p[F.STROKES + 1])):
        s = substream(key, STREAM_STROKE, i)
        y0 = H * uniform_range(s, STROKE_Y0, p[F.STROKE_Y], p[F.STROKE_Y + 1])
        x0 = uniform_range(s, STROKE_X0, 0.0, W)
        _bent_chord(py, px, s, y0, x0, uniform_range(s, STROKE_LEN, p[F.STROKE_LENGTH], p[F.STROKE_LENGTH + 1]),
                    uniform_range(s, STROKE_THETA, p[F.STROKE_ANGLE], p[F.STROKE_ANGLE + 1]), STROKE_BEND, 0.4)
        draw_bezier(canvas, py, px, uniform_range(s, STROKE_W, p[F.STROKE_WIDTH], p[F.STROKE_WIDTH + 1]), 1, 16, acc)
    for i in range(randint(k, N_ELLIPSES, p[F.ELLIPSES], p[F.ELLIPSES + 1])):
        s = substream(key, STREAM_ELLIPSE, i)
        draw_ellipse(canvas, uniform_range(s, ELLIPSE_CY, 0.0, H), uniform_range(s, ELLIPSE_CX, 0.0, W),
                     uniform_range(s, ELLIPSE_RY, p[F.ELLIPSE_RADIUS], p[F.ELLIPSE_RADIUS + 1]),
                     uniform_range(s, ELLIPSE_RX, p[F.ELLIPSE_RADIUS], p[F.ELLIPSE_RADIUS + 1]),
                     uniform_range(s, ELLIPSE_W, p[F.ELLIPSE_WIDTH], p[F.ELLIPSE_WIDTH + 1]), -1)
    for i in range(randint(k, N_DOTS, p[F.DOTS], p[F.DOTS + 1])):
        s = substream(key, STREAM_DOT, i)
        draw_dot(canvas, uniform_range(s, DOT_CY, 0.0, H), uniform_range(s, DOT_CX, 0.0, W),
                 uniform_range(s, DOT_R, p[F.DOT_RADIUS], p[F.DOT_RADIUS + 1]), 1)
    _draw_dashes(canvas, key, p, acc)


@ngjit
def _draw_dashes(canvas, key, p, acc=None):
    """Short straight dashes in background colour (they cut the text, strokes and dots), centred uniformly on
    the image, each from its own sub-stream; no draw at all when the style has none."""
    if p[F.DASHES + 1] <= 0.0:
        return
    H, W = canvas.shape
    if acc is None:
        acc = np.empty(W, np.float64)              # draw_segment's scratch
    for i in range(randint(stream_key(key, STREAM_CLUTTER), N_DASHES, p[F.DASHES], p[F.DASHES + 1])):
        s = substream(key, STREAM_DASH, i)
        cy, cx = uniform_range(s, DASH_CY, 0.0, H), uniform_range(s, DASH_CX, 0.0, W)
        half = 0.5 * uniform_range(s, DASH_LEN, p[F.DASH_LENGTH], p[F.DASH_LENGTH + 1])
        theta = uniform_range(s, DASH_THETA, p[F.DASH_ANGLE], p[F.DASH_ANGLE + 1]) * (math.pi / 180.0)
        ty, tx = half * math.sin(theta), half * math.cos(theta)
        draw_segment(canvas, cy - ty, cx - tx, cy + ty, cx + tx,
                     uniform_range(s, DASH_W, p[F.DASH_WIDTH], p[F.DASH_WIDTH + 1]), -1, acc)


@ngjit
def _to_grey(canvas, out, key, table, p, normals):
    """out uint8 (H, W) = background + (ink - background) * opacity * coverage + noise; `normals` (H, W)
    float32 is scratch for the pixel noise."""
    H, W = canvas.shape
    k = stream_key(key, STREAM_INK)
    bg = uniform_range(k, INK_BACKGROUND, p[F.BACKGROUND], p[F.BACKGROUND + 1])
    ink = uniform_range(k, INK_LEVEL, p[F.INK], p[F.INK + 1])
    contrast = (ink - bg) * uniform_range(k, INK_ALPHA, p[F.INK_OPACITY], p[F.INK_OPACITY + 1])
    noise = uniform_range(k, INK_NOISE, p[F.NOISE_SIGMA], p[F.NOISE_SIGMA + 1])
    flat_c = canvas.reshape(H * W)
    flat_o = out.reshape(H * W)
    flat_z = normals.reshape(H * W)
    if noise > 0.0:
        fill_normals(flat_z, stream_key(key, STREAM_NOISE), table, 1.0)
        for i in range(H * W):
            v = math.floor(bg + contrast * flat_c[i] + noise * flat_z[i] + 0.5)
            flat_o[i] = np.uint8(min(max(v, 0.0), 255.0))
    else:                       # no noise: the same sums without the (exactly zero) noise term
        for i in range(H * W):
            v = math.floor(bg + contrast * flat_c[i] + 0.5)
            flat_o[i] = np.uint8(min(max(v, 0.0), 255.0))


@ngjit
def render_one(out, key, n_chars, chars, font_i, size_i, kerning, pixels, meta, advance, table, p,
               padded, buf_a, buf_b, buf_c, row_a, row_b, glyphs, acc):
    """Render one sample into out (H, W) uint8, using the caller's scratch: padded (H + 2, W + 2),
    buf_a, buf_b and buf_c (H, W), row_a and row_b (W,), all float32, `glyph_scratch(W)` and acc float64
    (W,) (their contents do not matter)."""
    H, W = out.shape
    padded[:] = 0.0
    canvas = padded[1:H + 1, 1:W + 1]
    _draw_text(canvas, key, n_chars, chars, font_i, size_i, kerning, pixels, meta, advance, p, glyphs)
    moved, ya, yb = _warp(padded, buf_a, row_a, row_b, key, table, p)   # buf_a's rows outside [ya, yb): zero
    if not moved:
        buf_a[:] = canvas
    src = buf_a
    final = buf_b
    shift_y, shift_x = 0, 0
    if p[F.RECENTER] != 0.0:
        y0, y1, x0, x1 = ink_bbox(src, 0.1)
        if y1 > y0:
            shift_y = (y0 + y1 - H) // 2
            shift_x = (x0 + x1 - W) // 2
    sigma = uniform_range(stream_key(key, STREAM_BLUR), BLUR_SIGMA_DRAW, p[F.BLUR_SIGMA], p[F.BLUR_SIGMA + 1])
    blur(src, final, buf_c, max(sigma, 0.0), shift_y, shift_x, ya, yb)
    _draw_text_marks(final, src, padded, shift_y, shift_x, key, p, acc, ya, yb)
    _draw_clutter(final, key, p, acc)
    _to_grey(final, out, key, table, p, buf_c)


SAMPLES_PER_CHUNK = 8   # scratch is allocated once per chunk of samples


@ngjit_parallel
def render_batch_kernel(out, keys, num_chars, chars, font, size_idx, kerning, pixels, meta, advance, table, p):
    """out (n, H, W) uint8; chunks of samples per prange iteration, each chunk with its own scratch."""
    n, H, W = out.shape
    for c in prange((n + SAMPLES_PER_CHUNK - 1) // SAMPLES_PER_CHUNK):
        padded = np.empty((H + 2, W + 2), np.float32)
        buf_a = np.empty((H, W), np.float32)
        buf_b = np.empty((H, W), np.float32)
        buf_c = np.empty((H, W), np.float32)
        row_a = np.empty(W, np.float32)
        row_b = np.empty(W, np.float32)
        glyphs = glyph_scratch(W)
        acc = np.empty(W, np.float64)
        for i in range(c * SAMPLES_PER_CHUNK, min(n, (c + 1) * SAMPLES_PER_CHUNK)):
            render_one(out[i], keys[i], num_chars[i], chars[i], font[i], size_idx[i], kerning[i],
                       pixels, meta, advance, table, p, padded, buf_a, buf_b, buf_c, row_a, row_b, glyphs, acc)
