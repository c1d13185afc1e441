"""Glyph compositing: place each character's bitmap (rotated, sheared, scaled, bilinear) on a coverage canvas."""

import math

import numpy as np

from synthstream.render.jit import ngjit


@ngjit
def draw_glyph(canvas, pixels, off, gh, gw, top, left, angle, scratch=None):
    """Max-composite a glyph whose unrotated top-left is (top, left), rotated by `angle` radians about its
    centre, onto canvas (H, W). With angle 0 and integer (top, left) this is an exact copy. `scratch`: see
    `draw_glyph_scaled`."""
    H, W = canvas.shape
    if angle == 0.0 and top == math.floor(top) and left == math.floor(left):
        t, lf = np.int64(top), np.int64(left)
        c0, c1 = max(0, -lf), min(gw, W - lf)
        for r in range(max(0, -t), min(gh, H - t)):
            # branch-free, unsigned indices (no negative-index wraparound test): the loop vectorises
            src = np.uint64(off + r * gw + c0)
            dst = np.uint64(lf + c0)
            y = np.uint64(t + r)
            for j in range(c1 - c0):
                u = np.uint64(j)
                a = pixels[src + u]
                old = canvas[y, dst + u]
                canvas[y, dst + u] = a if a > old else old
        return
    glyph = pixels[off:off + gh * gw].reshape((gh, gw))
    draw_glyph_scaled(canvas, glyph, top + 0.5 * (gh - 1), left + 0.5 * (gw - 1), angle, 1.0, 1.0, 0.0, scratch)


@ngjit
def _span(lo, hi, a, b, x_lo, x_hi):
    """A superset of the integers x in [x_lo, x_hi) where lo <= a + b x <= hi (a margin of 1e-6 in value and
    2 pixels in x, far above rounding): the columns of a row that can sample inside a glyph."""
    lo -= 1e-6
    hi += 1e-6
    if abs(b) < 1e-12:
        return (x_lo, x_hi) if lo <= a <= hi else (x_lo, x_lo)
    p = (lo - a) / b
    q = (hi - a) / b
    if p > q:
        p, q = q, p
    return max(x_lo, np.int64(math.floor(max(p, -1e9))) - 2), min(x_hi, np.int64(math.ceil(min(q, 1e9))) + 3)


@ngjit
def glyph_scratch(W):
    """Scratch for `draw_glyph_scaled` on a canvas W wide, to share between glyphs: one float64 (8, W) array
    (one array to pass around, not three); `draw_glyph_scaled` carves its int64 and float32 rows from it."""
    return np.empty((8, W), np.float64)


@ngjit
def draw_glyph_scaled(canvas, glyph, cy, cx, angle, sx, sy, shear, scratch=None):
    """Max-composite `glyph` (h, w) rotated by `angle` radians about its centre, then sheared (x += shear y,
    y down), then scaled by (sx, sy) along the canvas axes, centred at (cy, cx) in pixel-index coordinates;
    bilinear (zero outside the glyph). With shear 0 every pixel's arithmetic is that of the unsheared sampler
    (sin_a - cos_a 0 is sin_a, cos_a + sin_a 0 is cos_a, exactly).

    Per row, only the columns whose sample can land inside the glyph are visited (`_span`, conservative),
    in passes as in `warp.remap_row`: where each pixel reads and with which weights (vectorises; the column
    terms cos_a rx and -sin_a rx, rx = (x - cx) / sx, are computed once per glyph), the four reads from a
    zero-bordered copy of the glyph (a gather, scalar), the blend into contiguous scratch (vectorises), the
    max onto the canvas (vectorises). Each pixel's float64 arithmetic is the sequence of
    `warp.sample_bilinear` (the four terms added in its order from 0.0; a read outside the glyph, which it
    skips, adds an exact +0.0 here) and the same comparison with the canvas, so the pixels are those of a
    per-pixel `sample_bilinear` at any vector width. `scratch` (`glyph_scratch(W)`) lets the glyphs of a canvas
    share their scratch; without it the call allocates its own."""
    H, W = canvas.shape
    gh, gw = glyph.shape
    cos_a = math.cos(angle)
    sin_a = math.sin(angle)
    hy = 0.5 * sy * (abs(sin_a) * gw + abs(cos_a) * gh)
    hx = 0.5 * sx * (abs(cos_a) * gw + abs(sin_a) * gh + abs(shear) * (abs(sin_a) * gw + abs(cos_a) * gh))
    y_lo = max(0, np.int64(math.floor(cy - hy)))
    y_hi = min(H, np.int64(math.ceil(cy + hy)) + 1)
    x_lo = max(0, np.int64(math.floor(cx - hx)))
    x_hi = min(W, np.int64(math.ceil(cx + hx)) + 1)
    if y_hi <= y_lo or x_hi <= x_lo:
        return
    gp_w = gw + 2
    gp = np.zeros((gh + 2) * gp_w, np.float32)         # the glyph inside a zero border of one pixel
    for r in range(gh):
        o = np.uint64((r + 1) * gp_w + 1)
        ur = np.uint64(r)
        for c in range(gw):                             # unsigned indices: no wraparound test
            gp[o + np.uint64(c)] = glyph[ur, np.uint64(c)]
    n = x_hi - x_lo
    if scratch is None:
        scratch = glyph_scratch(W)
    ty_, tx_, acc, cu, cv = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]  # the caller's, or fresh
    cell = scratch[5].view(np.int64)
    vals = scratch[6:8].view(np.float32).reshape((4, W))
    hu = 0.5 * (gw - 1)
    hv = 0.5 * (gh - 1)
    # rx = (x - cx) / sx depends on the column only: its products with cos_a and -sin_a once per column
    # (the same IEEE operations as per pixel, so the same values)
    for j in range(n):
        rx = (x_lo + j - cx) / sx
        cu[j] = cos_a * rx
        cv[j] = -sin_a * rx
    u_hi = np.float64(gw)
    v_hi = np.float64(gh)
    a_u = sin_a - cos_a * shear                          # ry's factors: the unsheared point is (rx - shear ry, ry)
    a_v = cos_a + sin_a * shear
    for y in range(y_lo, y_hi):
        ry = (y - cy) / sy
        # u = cos_a rx + a_u ry + hu and v = -sin_a rx + a_v ry + hv, rx = (x - cx) / sx: both affine in
        # x; a sample reads the glyph only where -1 <= u < gw and -1 <= v < gh
        su = a_u * ry + hu
        sv = a_v * ry + hv
        a0, a1 = _span(-1.0, u_hi, su - cos_a * cx / sx, cos_a / sx, x_lo, x_hi)
        b0, b1 = _span(-1.0, v_hi, sv + sin_a * cx / sx, -sin_a / sx, x_lo, x_hi)
        xs, xe = max(a0, b0), min(a1, b1)
        if xe <= xs:
            continue
        m = xe - xs
        k0 = np.uint64(xs - x_lo)
        for j in range(m):
            k = k0 + np.uint64(j)
            u = cu[k] + a_u * ry + hu                    # cos_a rx + a_u ry + hu
            v = cv[k] + a_v * ry + hv                    # -sin_a rx + a_v ry + hv
            fv = math.floor(v)
            fu = math.floor(u)
            inside = (fv >= -1.0) & (fv < v_hi) & (fu >= -1.0) & (fu < u_hi)
            ty_[j] = v - fv if inside else -1.0         # -1 marks a pixel that reads nothing
            tx_[j] = u - fu
            cell[j] = (np.int64(fv) + 1) * gp_w + np.int64(fu) + 1 if inside else 0
        one, wp_ = np.uint64(1), np.uint64(gp_w)
        for j in range(m):
            i = np.uint64(cell[j])
            vals[0, j] = gp[i]
            vals[1, j] = gp[i + one]
            vals[2, j] = gp[i + wp_]
            vals[3, j] = gp[i + wp_ + one]
        for j in range(m):                               # the blend, into contiguous scratch (vectorises)
            ty = ty_[j]
            tx = tx_[j]
            a = 0.0 + (1.0 - ty) * (1.0 - tx) * vals[0, j]
            a += (1.0 - ty) * tx * vals[1, j]
            a += ty * (1.0 - tx) * vals[2, j]
            a += ty * tx * vals[3, j]
            acc[j] = a if ty >= 0.0 else -np.inf         # reads nothing: never above the canvas
        uy, ux = np.uint64(y), np.uint64(xs)
        for j in range(m):                               # the max; unsigned indices: the loop vectorises
            x = ux + np.uint64(j)
            a = acc[j]
            old = canvas[uy, x]
            canvas[uy, x] = np.float32(a) if a > old else old
