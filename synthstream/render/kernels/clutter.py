"""Anti-aliased clutter on a coverage canvas: cubic Bezier strokes, ellipse outlines, dots, shifted outlines
of the text.

Coverage of a pixel at distance d from a curve of width w is clamp(w/2 + 1/2 - d, 0, 1). `sign` +1 paints ink
(max), -1 paints background (multiplies the coverage by 1 - a), which is how the Facebook ellipses cut letters.
"""

import math

import numpy as np

from synthstream.render.jit import ngjit


@ngjit
def _painted(old, a, paint, sign):
    """What canvas pixel `old` becomes under coverage a (clamped to 1) where `paint` and a > 0 hold, else old:
    sign +1 paints ink (the max), -1 background (old (1 - a)). Branch-free, so loops that call it vectorise."""
    a = min(a, 1.0)
    new = (np.float32(a) if a > old else old) if sign > 0 else np.float32(old * (1.0 - a))
    return new if paint & (a > 0.0) else old


@ngjit
def draw_segment(canvas, y0, x0, y1, x1, width, sign, acc):
    """A straight anti-aliased segment with round caps. Every pixel of its box is computed and the covered
    ones selected (no branch per pixel), so each row's loop vectorises. `acc` is float64 scratch of at least
    the canvas' width."""
    H, W = canvas.shape
    half = 0.5 * width + 0.5
    ylo = max(0, np.int64(math.floor(min(y0, y1) - half)))
    yhi = min(H, np.int64(math.ceil(max(y0, y1) + half)) + 1)
    xlo = max(0, np.int64(math.floor(min(x0, x1) - half)))
    xhi = min(W, np.int64(math.ceil(max(x0, x1) + half)) + 1)
    vy = y1 - y0
    vx = x1 - x0
    vv = vy * vy + vx * vx
    reach2 = half * half * (1.0 + 1e-9)     # pixels farther than this get no coverage
    n = max(0, xhi - xlo)
    for y in range(ylo, yhi):
        # each pixel's coverage into contiguous scratch (-inf where it gets none), then the paint over
        # unsigned column indices (no wraparound test): both loops vectorise
        for j in range(n):
            x = xlo + j
            t = min(1.0, max(0.0, ((y - y0) * vy + (x - x0) * vx) / vv)) if vv > 0.0 else 0.0
            dy = y - (y0 + t * vy)
            dx = x - (x0 + t * vx)
            d2 = dy * dy + dx * dx
            acc[j] = half - math.sqrt(d2) if d2 < reach2 else -np.inf
        uy, ux = np.uint64(y), np.uint64(xlo)
        for j in range(n):
            u = ux + np.uint64(j)
            canvas[uy, u] = _painted(canvas[uy, u], acc[j], True, sign)


@ngjit
def draw_bezier(canvas, py, px, width, sign, segments, acc=None):
    """Cubic Bezier through control points py[4], px[4], as `segments` straight pieces. `acc`: float64 scratch
    at least the canvas' width, for curves to share (else allocated)."""
    prev_y, prev_x = py[0], px[0]
    if acc is None:
        acc = np.empty(canvas.shape[1], np.float64)
    for s in range(1, segments + 1):
        t = s / segments
        it = 1.0 - t
        b0, b1, b2, b3 = it * it * it, 3.0 * it * it * t, 3.0 * it * t * t, t * t * t
        y = b0 * py[0] + b1 * py[1] + b2 * py[2] + b3 * py[3]
        x = b0 * px[0] + b1 * px[1] + b2 * px[2] + b3 * px[3]
        draw_segment(canvas, prev_y, prev_x, y, x, width, sign, acc)
        prev_y, prev_x = y, x


@ngjit
def _ellipse_span(canvas, y, v, x0, x1, cx, rx, ry, half, sign, acc):
    n = max(0, x1 - x0)
    for j in range(n):                      # coverage into contiguous scratch, -inf where none (vectorises)
        u = (x0 + j - cx) / rx
        f = math.sqrt(u * u + v * v)
        g = math.sqrt((u / rx) ** 2 + (v / ry) ** 2) / f
        d = abs(f - 1.0) / g
        acc[j] = half - d if f != 0.0 else -np.inf
    uy, ux = np.uint64(y), np.uint64(x0)
    for j in range(n):                      # the paint, unsigned column indices (vectorises)
        k = ux + np.uint64(j)
        canvas[uy, k] = _painted(canvas[uy, k], acc[j], True, sign)


@ngjit
def draw_ellipse(canvas, cy, cx, ry, rx, width, sign):
    """Axis-aligned ellipse outline; distance to it ~ |f - 1| / |grad f| with f the normalised radius.
    |grad f| <= max(1/rx, 1/ry) =: gmax, so pixels with |f - 1| >= half * gmax get no coverage: each row
    visits only the (one or two) x spans of the ring around f = 1, plus a pixel of margin."""
    H, W = canvas.shape
    half = 0.5 * width + 0.5
    ylo = max(0, np.int64(math.floor(cy - ry - half)))
    yhi = min(H, np.int64(math.ceil(cy + ry + half)) + 1)
    xlo = max(0, np.int64(math.floor(cx - rx - half)))
    xhi = min(W, np.int64(math.ceil(cx + rx + half)) + 1)
    c = half * max(1.0 / rx, 1.0 / ry)
    acc = np.empty(max(0, xhi - xlo) + 4, np.float64)   # scratch for a span (at most the box, + margin)
    for y in range(ylo, yhi):
        v = (y - cy) / ry
        hi = (1.0 + c) ** 2 - v * v
        if hi <= 0.0:
            continue
        outer = rx * math.sqrt(hi)
        lo = (1.0 - c) ** 2 - v * v if c < 1.0 else -1.0
        inner = rx * math.sqrt(lo) if lo > 0.0 else 0.0
        a0 = max(xlo, np.int64(math.floor(cx - outer)) - 1)
        a1 = min(xhi, np.int64(math.ceil(cx - inner)) + 2)
        b0 = max(xlo, np.int64(math.floor(cx + inner)) - 1)
        b1 = min(xhi, np.int64(math.ceil(cx + outer)) + 2)
        if a1 >= b0:                         # the spans touch: one span, so no pixel is painted twice
            _ellipse_span(canvas, y, v, a0, max(a1, b1), cx, rx, ry, half, sign, acc)
        else:
            _ellipse_span(canvas, y, v, a0, a1, cx, rx, ry, half, sign, acc)
            _ellipse_span(canvas, y, v, b0, b1, cx, rx, ry, half, sign, acc)


@ngjit
def draw_dot(canvas, cy, cx, radius, sign):
    """A filled anti-aliased disc."""
    H, W = canvas.shape
    ylo = max(0, np.int64(math.floor(cy - radius - 1)))
    yhi = min(H, np.int64(math.ceil(cy + radius + 1)) + 1)
    xlo = max(0, np.int64(math.floor(cx - radius - 1)))
    xhi = min(W, np.int64(math.ceil(cx + radius + 1)) + 1)
    for y in range(ylo, yhi):
        for j in range(max(0, xhi - xlo)):  # branch-free, unsigned column indices: the loop vectorises
            x = xlo + j
            ux = np.uint64(x)
            d = math.sqrt((y - cy) ** 2 + (x - cx) ** 2)
            canvas[y, ux] = _painted(canvas[y, ux], radius + 0.5 - d, True, sign)


@ngjit
def draw_outline(canvas, padded, box, dy, dx, width, sign):
    """The 0.5 level line of a coverage src (H, W), moved by whole pixels (dy, dx), as a line `width` wide;
    distance to it ~ |c - 0.5| / |grad c| (gradient by central differences), painted on the pixels of partial
    coverage only (the anti-aliased edge band). `padded` (H + 2, W + 2) holds src inside a zero border of
    one pixel; `box` (y0, y1, x0, x1) bounds src's ink, so only pixels of the moved box are visited.
    `outline_distance` then `paint_outline`: several outlines of one src share the distances."""
    paint_outline(canvas, outline_distance(padded, box), box, dy, dx, width, sign)


@ngjit
def outline_distance(padded, box):
    """dist (y1 - y0, x1 - x0) float64 over src's ink box (y0, y1, x0, x1): |c - 0.5| / |grad c| at the
    pixels of partial coverage whose gradient is not ~0 (those an outline paints), +inf elsewhere. `padded`
    (H + 2, W + 2), C-contiguous, holds src inside a zero border of one pixel, so the neighbours need no
    bounds checks. Each row is one branch-free loop over unsigned flat indices (it vectorises); a pixel's
    arithmetic is the same at any vector width."""
    Wp = padded.shape[1]
    flat = padded.reshape(padded.shape[0] * Wp)
    h, w = box[1] - box[0], box[3] - box[2]
    dist = np.empty((h, w), np.float64)
    one, two = np.uint64(1), np.uint64(2)
    for r in range(h):
        mid = np.uint64((box[0] + r + 1) * Wp + box[2])     # padded[py, box[2] + j] = flat[mid + j]
        up = mid - np.uint64(Wp) + one
        dn = mid + np.uint64(Wp) + one
        ur = np.uint64(r)
        for i in range(w):
            j = np.uint64(i)
            c = np.float64(flat[mid + j + one])      # float64 before subtracting (a float32 difference can round)
            gy = 0.5 * (np.float64(flat[dn + j]) - np.float64(flat[up + j]))
            gx = 0.5 * (np.float64(flat[mid + j + two]) - np.float64(flat[mid + j]))
            g = math.sqrt(gy * gy + gx * gx)
            dist[ur, j] = abs(c - 0.5) / g if (c > 0.0) & (c < 1.0) & (g > 1e-3) else np.inf
    return dist


@ngjit
def paint_outline(canvas, dist, box, dy, dx, width, sign):
    """The outline whose `outline_distance` over src's ink box `box` is `dist`, moved by whole pixels (dy,
    dx), `width` wide: coverage half - dist (-inf, never painted, where dist is +inf). Per row one branch-free
    loop over unsigned indices (it vectorises)."""
    H, W = canvas.shape
    half = 0.5 * width + 0.5
    xa, xb = max(0, box[2] + dx), min(W, box[3] + dx)
    if xb <= xa:
        return
    for y in range(max(0, box[0] + dy), min(H, box[1] + dy)):
        # canvas pixel (y, xa + j) reads src (y - dy, xa - dx + j): dist[y - dy - y0, xa - dx - x0 + j]
        ur, uc = np.uint64(y - dy - box[0]), np.uint64(xa - dx - box[2])
        uy, ux = np.uint64(y), np.uint64(xa)
        for i in range(xb - xa):
            j = np.uint64(i)
            canvas[uy, ux + j] = _painted(canvas[uy, ux + j], half - dist[ur, uc + j], True, sign)
