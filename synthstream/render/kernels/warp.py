"""Displacement fields and the bilinear remap.

Smooth random fields are cubic B-splines through iid normals on a coarse grid (a cheap stand-in for
Gaussian-smoothed white noise). A cubic B-spline has the variance of a Gaussian with sigma = spacing / sqrt(3),
so the grid spacing is sqrt(3) sigma and the field's correlation length matches the Gaussian's. Their
amplitude follows the scipy/Simard `elastic_transform` convention, displacement = alpha * (U[-1,1] noise *
G_sigma), whose std is alpha * 0.577 / (2 sqrt(pi) sigma), so style files can quote the paper's alpha and sigma.
"""

import math

import numpy as np

from synthstream.render.jit import ngjit
from synthstream.render.rng import fill_normals

BSPLINE_STD = 151.0 / 315.0           # std of a 2-D cubic B-spline through unit normals, averaged over phase
SQRT3 = math.sqrt(3.0)
UNIFORM_STD = 1.0 / SQRT3             # std of U[-1, 1]


@ngjit
def bspline_weights(t, w):
    """Uniform cubic B-spline weights at phase t in [0, 1) into w[4]."""
    it = 1.0 - t
    w[0] = it * it * it / 6.0
    w[1] = (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0
    w[2] = (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0
    w[3] = t * t * t / 6.0


@ngjit
def field_rows(H, W, key_x, key_y, table, sigma, alpha):
    """A smooth (H, W) displacement field, both axes, with scipy-equivalent (alpha, sigma), interpolated along
    x only: the coarse grid's rows at full width, float32 (2, gh, W) (axis, coarse row, x). The two axes share
    the cells and weights of the x pass; `add_field_rows` finishes any image row from them."""
    std = alpha * UNIFORM_STD / (2.0 * math.sqrt(math.pi) * sigma)
    scale = std / BSPLINE_STD
    spacing = SQRT3 * sigma
    gh = np.int64(H / spacing) + 4
    gw = np.int64(W / spacing) + 4
    gx = np.empty(gh * gw, np.float32)
    gy = np.empty(gh * gw, np.float32)
    fill_normals(gx, key_x, table, scale)
    fill_normals(gy, key_y, table, scale)
    wx = np.empty((W, 4), np.float32)       # x weights and cells, shared by every coarse row and both axes
    ix = np.empty(W, np.uint64)             # unsigned: Numba skips the negative-index wraparound check
    for x in range(W):                      # bspline_weights' expressions inline (no array): it vectorises
        u = x / spacing
        i = np.int64(u)
        ix[x] = i
        t = u - i
        it = 1.0 - t
        wx[x, 0] = it * it * it / 6.0
        wx[x, 1] = (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0
        wx[x, 2] = (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0
        wx[x, 3] = t * t * t / 6.0
    rows = np.empty((2, gh, W), np.float32)
    one, two, three = np.uint64(1), np.uint64(2), np.uint64(3)
    if spacing < 2.0:
        # A fine grid: ix[x] - x is constant over runs of consecutive x (it changes only where ix skips or
        # stays), so within a run every read is at a fixed offset from x: contiguous loads, which vectorise
        # (no gather). The same float32 sum per pixel.
        wt = np.empty(4 * W, np.float32)    # the weights tap-major: wt[k W + x] = wx[x, k]
        for x in range(W):
            wt[x], wt[W + x], wt[2 * W + x], wt[3 * W + x] = wx[x, 0], wx[x, 1], wx[x, 2], wx[x, 3]
        run_start = np.empty(W + 1, np.int64)
        n_runs = 0
        for x in range(W):
            if x == 0 or ix[x] - ix[x - 1] != 1:
                run_start[n_runs] = x
                n_runs += 1
        run_start[n_runs] = W
        flat = rows.reshape(2 * gh * W)
        uW = np.uint64(W)
        w1_, w2_, w3_ = uW, uW + uW, uW + uW + uW
        plane = np.uint64(gh * W)
        for r in range(gh):
            out = np.uint64(r * W)
            for q in range(n_runs):
                s0, s1 = run_start[q], run_start[q + 1]
                src = np.uint64(r * gw + np.int64(ix[s0]))            # grid index of x = s0
                for j in range(s1 - s0):
                    u = np.uint64(j)
                    x = np.uint64(s0) + u
                    i = src + u
                    w0, w1, w2, w3 = wt[x], wt[w1_ + x], wt[w2_ + x], wt[w3_ + x]
                    flat[out + x] = w0 * gx[i] + w1 * gx[i + one] + w2 * gx[i + two] + w3 * gx[i + three]
                    flat[plane + out + x] = w0 * gy[i] + w1 * gy[i + one] + w2 * gy[i + two] + w3 * gy[i + three]
        return rows
    # A coarse grid: ix is constant over runs of consecutive x, so within a run the four grid values of each
    # axis are constants and the loop reads only the weights (contiguous: it vectorises). The same sums.
    wt = np.empty(4 * W, np.float32)        # the weights tap-major: wt[k W + x] = wx[x, k]
    for x in range(W):
        wt[x], wt[W + x], wt[2 * W + x], wt[3 * W + x] = wx[x, 0], wx[x, 1], wx[x, 2], wx[x, 3]
    uW = np.uint64(W)
    w1_, w2_, w3_ = uW, uW + uW, uW + uW + uW
    flat = rows.reshape(2 * gh * W)
    plane = np.uint64(gh * W)
    s0 = 0
    while s0 < W:
        s1 = s0 + 1
        while s1 < W and ix[s1] == ix[s0]:
            s1 += 1
        for r in range(gh):
            i = np.uint64(r * gw) + ix[s0]
            a0, a1, a2, a3 = gx[i], gx[i + one], gx[i + two], gx[i + three]
            b0, b1, b2, b3 = gy[i], gy[i + one], gy[i + two], gy[i + three]
            out = np.uint64(r * W)
            for x in range(np.uint64(s0), np.uint64(s1)):
                w0, w1, w2, w3 = wt[x], wt[w1_ + x], wt[w2_ + x], wt[w3_ + x]
                flat[out + x] = w0 * a0 + w1 * a1 + w2 * a2 + w3 * a3
                flat[plane + out + x] = w0 * b0 + w1 * b1 + w2 * b2 + w3 * b3
        s0 = s1
    return rows


@ngjit
def row_weights(sigma, y):
    """(iv, w0, w1, w2, w3): the coarse row and the float32 B-spline weights of image row y in the y pass
    of a field of this sigma (row y = sum_k w_k rows[:, iv + k])."""
    spacing = SQRT3 * sigma
    v = y / spacing
    iv = np.int64(v)
    t = v - iv
    it = 1.0 - t                            # bspline_weights, inlined (no array per row)
    w0 = np.float32(it * it * it / 6.0)
    w1 = np.float32((3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0)
    w2 = np.float32((-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0)
    w3 = np.float32(t * t * t / 6.0)
    return iv, w0, w1, w2, w3


@ngjit
def add_field_rows(dx, dy, rows, sigma, y, xa=0, xb=-1):
    """dx, dy (W,) += row y of the field whose `field_rows` (at this sigma) are `rows` (the y pass), over
    columns [xa, xb) (xb -1: all)."""
    iv, w0, w1, w2, w3 = row_weights(sigma, y)
    if xb < 0:
        xb = dx.shape[0]
    for x in range(np.uint64(xa), np.uint64(max(xa, xb))):     # unsigned: no wraparound test, it vectorises
        dx[x] += w0 * rows[0, iv, x] + w1 * rows[0, iv + 1, x] + w2 * rows[0, iv + 2, x] + w3 * rows[0, iv + 3, x]
        dy[x] += w0 * rows[1, iv, x] + w1 * rows[1, iv + 1, x] + w2 * rows[1, iv + 2, x] + w3 * rows[1, iv + 3, x]


@ngjit
def add_smooth_field(dx, dy, key_x, key_y, table, sigma, alpha):
    """dx, dy (H, W) += a smooth random displacement with scipy-equivalent (alpha, sigma)."""
    H, W = dx.shape
    if alpha == 0.0:
        return
    rows = field_rows(H, W, key_x, key_y, table, sigma, alpha)
    for y in range(H):
        add_field_rows(dx[y], dy[y], rows, sigma, y)


@ngjit
def shear_wave(n, amp, period, phase):
    """float32 (n,): amp sin(2 pi i / period + phase)."""
    wave = np.empty(n, np.float32)
    for i in range(n):
        wave[i] = amp * math.sin(2.0 * math.pi * i / period + phase)
    return wave


@ngjit
def add_shear(dx, dy, x_amp, x_period, x_phase, y_amp, y_period, y_phase):
    """Sinusoidal shear: dx(y) = Ax sin(2 pi y / Px + phx) along rows, dy(x) = Ay sin(2 pi x / Py + phy)."""
    H, W = dx.shape
    col = shear_wave(W, y_amp, y_period, y_phase)
    for y in range(H):
        sx = np.float32(x_amp * math.sin(2.0 * math.pi * y / x_period + x_phase))
        for x in range(W):
            dx[y, x] += sx
            dy[y, x] += col[x]


@ngjit
def sample_bilinear(src, y, x):
    """Bilinear read of src (h, w) at (y, x), zero outside; the slow path of `remap`, and glyph sampling."""
    h, w = src.shape
    fy = math.floor(y)
    fx = math.floor(x)
    ty = y - fy
    tx = x - fx
    iy = np.int64(fy)
    ix = np.int64(fx)
    acc = 0.0
    for a in range(2):
        r = iy + a
        if r < 0 or r >= h:
            continue
        wa = ty if a == 1 else 1.0 - ty
        for b in range(2):
            c = ix + b
            if c < 0 or c >= w:
                continue
            acc += wa * (tx if b == 1 else 1.0 - tx) * src[r, c]
    return acc


@ngjit
def abs_max(a):
    """max |a| of a flat float32 array without NaNs, as float64. A non-negative float32's bits, read as an
    unsigned integer, order as its value, so this is an integer max of the bits without the sign bit: it
    vectorises (a float max reduction does not, without fastmath), and it is exact."""
    bits = a.view(np.uint32)
    mask = np.uint32(0x7FFFFFFF)
    m = np.uint32(0)
    for i in range(bits.shape[0]):
        m = max(m, bits[i] & mask)
    one = np.empty(1, np.uint32)
    one[0] = m
    return np.float64(one.view(np.float32)[0])


@ngjit
def field_bound(rows):
    """(bx, by): the largest |value| of each axis of a field's `field_rows` (2, gh, W). Every pixel of the
    field is a convex combination of them (B-spline weights are >= 0 and sum to 1), so up to float32
    rounding (1e-7 relative) they bound its displacement."""
    n = rows.shape[1] * rows.shape[2]
    flat = rows.reshape(2 * n)
    return abs_max(flat[:n]), abs_max(flat[n:])


@ngjit
def reach(lo, hi, bound, n):
    """[a, b): the rows (or columns) t of [0, n) that can read inside [lo, hi) under a displacement of at
    most `bound` pixels (a read at t + d, |d| <= bound, is inside only if lo - 1 < t + d < hi); a pixel
    outside gives 0. `bound` carries a relative margin of 1e-4 and 1e-3 pixels (float32 rounding is 1e-7
    relative) and one more row each side, so no pixel that reads inside is left out."""
    b = bound * (1.0 + 1e-4) + 1e-3
    return max(0, np.int64(math.floor(lo - 1 - b))), min(n, np.int64(math.ceil(hi + b)) + 1)


@ngjit
def remap_row(padded, y, dx, dy, out, y0, y1, x0, x1, cell, frac, vals):
    """out[y] (W,) = row y of src(y + dy, x + dx), bilinear, zero outside, for one row's displacements dx, dy
    (W,). `padded` is src (H, W) inside a zero border of one pixel, flattened ((H + 2) (W + 2),); src is zero
    outside rows [y0, y1) and columns [x0, x1) (its ink box), so reads that land outside it give 0.
    cell (W,) int64, frac (2, W) float64 and vals (4, W) float32 are scratch. Three passes: where each pixel
    reads and with which weights (vectorises), the four reads of the pixels inside (a gather, scalar: its
    loads and stores could alias for all the compiler knows), the blend (vectorises). Each pixel's float64
    arithmetic is the one sequence of the scalar formula at any vector width (no fastmath, no contraction)."""
    W = out.shape[1]
    Wp = W + 2
    ylo, xlo = y0 - 1, x0 - 1
    for x in range(W):
        sy = y + dy[x]
        sx = x + dx[x]
        inside = (sy > ylo) & (sy < y1) & (sx > xlo) & (sx < x1)
        sy = sy if inside else 0.0                       # outside: read a valid cell, drop the result
        sx = sx if inside else 0.0
        fy = math.floor(sy)
        fx = math.floor(sx)
        frac[0, x] = sy - fy if inside else -1.0         # ty in [0, 1) inside, -1 marks outside
        frac[1, x] = sx - fx
        # -1 <= fy < H and -1 <= fx < W here, so all four reads fall inside the border: no bounds checks
        cell[x] = (np.int64(fy) + 1) * Wp + np.int64(fx) + 1
    one, wp_ = np.uint64(1), np.uint64(Wp)
    for x in range(W):
        if frac[0, x] < 0.0:                             # outside: the blend drops this pixel's values
            continue
        i = np.uint64(cell[x])
        vals[0, x] = padded[i]
        vals[1, x] = padded[i + one]
        vals[2, x] = padded[i + wp_]
        vals[3, x] = padded[i + wp_ + one]
    for x in range(W):
        ty = frac[0, x]
        tx = frac[1, x]
        v = ((1 - ty) * ((1 - tx) * vals[0, x] + tx * vals[1, x])
             + ty * ((1 - tx) * vals[2, x] + tx * vals[3, x]))
        out[y, x] = v if ty >= 0.0 else 0.0


@ngjit
def remap_span(padded, y, dx, dy, out, y0, y1, x0, x1, cell, frac, vals, xa, xb):
    """`remap_row` over columns [xa, xb) of row y only (the others are left alone), with unsigned column
    indices (a signed range from xa would keep Numba's wraparound tests and the loops scalar). The same
    arithmetic per pixel; over a whole row `remap_row`'s loops from 0 are a little faster."""
    Wp = out.shape[1] + 2
    ylo, xlo = y0 - 1, x0 - 1
    ua, ub = np.uint64(xa), np.uint64(max(xa, xb))  # an unsigned range: no wraparound test, the loops vectorise
    for x in range(ua, ub):
        sy = y + dy[x]
        sx = np.int64(x) + dx[x]
        inside = (sy > ylo) & (sy < y1) & (sx > xlo) & (sx < x1)
        sy = sy if inside else 0.0                       # outside: read a valid cell, drop the result
        sx = sx if inside else 0.0
        fy = math.floor(sy)
        fx = math.floor(sx)
        frac[0, x] = sy - fy if inside else -1.0         # ty in [0, 1) inside, -1 marks outside
        frac[1, x] = sx - fx
        # -1 <= fy < H and -1 <= fx < W here, so all four reads fall inside the border: no bounds checks
        cell[x] = (np.int64(fy) + 1) * Wp + np.int64(fx) + 1
    one, wp_ = np.uint64(1), np.uint64(Wp)
    for x in range(ua, ub):
        if frac[0, x] < 0.0:                             # outside: the blend drops this pixel's values
            continue
        i = np.uint64(cell[x])
        vals[0, x] = padded[i]
        vals[1, x] = padded[i + one]
        vals[2, x] = padded[i + wp_]
        vals[3, x] = padded[i + wp_ + one]
    for x in range(ua, ub):
        ty = frac[0, x]
        tx = frac[1, x]
        v = ((1 - ty) * ((1 - tx) * vals[0, x] + tx * vals[1, x])
             + ty * ((1 - tx) * vals[2, x] + tx * vals[3, x]))
        out[y, x] = v if ty >= 0.0 else 0.0


@ngjit
def remap_scratch(W):
    """The scratch of `remap_row` for rows of width W: (cell, frac, vals)."""
    return np.empty(W, np.int64), np.empty((2, W), np.float64), np.empty((4, W), np.float32)


@ngjit
def remap(src, dx, dy, out, y0, y1, x0, x1):
    """out[y, x] = src(y + dy, x + dx), bilinear, zero outside. All (H, W) float32. src is zero outside
    rows [y0, y1) and columns [x0, x1) (its ink box), so reads that land outside it are skipped."""
    H, W = src.shape
    padded = np.zeros((H + 2, W + 2), np.float32)
    padded[1:H + 1, 1:W + 1] = src
    flat = padded.reshape((H + 2) * (W + 2))
    cell, frac, vals = remap_scratch(W)
    for y in range(H):
        remap_row(flat, y, dx[y], dy[y], out, y0, y1, x0, x1, cell, frac, vals)


@ngjit
def ink_bbox(canvas, threshold):
    """(y0, y1, x0, x1) half-open bounding box of pixels above threshold; (0, 0, 0, 0) if none. Per row, one
    branch-free loop ORs each pixel's test into its column's flag and the row's (it vectorises)."""
    H, W = canvas.shape
    cols = np.zeros(W, np.uint8)
    y0, y1 = H, -1
    for y in range(H):
        row = canvas[y]
        hit = np.uint8(0)
        for x in range(W):
            m = np.uint8(row[x] > threshold)
            cols[x] |= m
            hit |= m
        if hit:
            y0 = min(y0, y)
            y1 = y
    if y1 < 0:
        return 0, 0, 0, 0
    x0, x1 = 0, W - 1
    while cols[x0] == 0:
        x0 += 1
    while cols[x1] == 0:
        x1 -= 1
    return y0, y1 + 1, x0, x1 + 1
