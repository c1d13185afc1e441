"""Separable Gaussian blur with zero padding (coverage outside the image is background)."""

import math

import numpy as np

from synthstream.render.jit import ngjit


@ngjit
def gaussian_taps(sigma):
    """Normalised taps of radius ceil(3 sigma)."""
    r = max(1, np.int64(math.ceil(3.0 * sigma)))
    taps = np.empty(2 * r + 1, np.float32)
    s = 0.0
    for i in range(-r, r + 1):
        v = math.exp(-0.5 * (i / sigma) ** 2)
        taps[i + r] = v
        s += v
    for i in range(2 * r + 1):
        taps[i] = taps[i] / s
    return taps


@ngjit
def blur(src, out, tmp, sigma, shift_y, shift_x):
    """out = G_sigma * src(y + shift_y, x + shift_x), via tmp; all (H, W) float32. The integer shift lets the
    caller re-centre for free. sigma <= 0 copies (shifted)."""
    H, W = src.shape
    if sigma <= 0.0:
        for y in range(H):
            sy = y + shift_y
            for x in range(W):
                sx = x + shift_x
                out[y, x] = src[sy, sx] if 0 <= sy < H and 0 <= sx < W else 0.0
        return
    taps = gaussian_taps(sigma)
    r = (taps.shape[0] - 1) // 2
    x_in_lo = max(0, r - shift_x)            # for x in [x_in_lo, x_in_hi) every tap is inside the row
    x_in_hi = max(x_in_lo, min(W, W - r - shift_x))
    for y in range(H):                       # horizontal pass -> tmp (rows shifted by shift_y)
        sy = y + shift_y
        t = tmp[y]
        for x in range(W):
            t[x] = 0.0
        if not 0 <= sy < H:
            continue
        row = src[sy]
        n_in = x_in_hi - x_in_lo
        t_in = t[x_in_lo:x_in_hi]
        for k in range(2 * r + 1):           # tap-major over views, so the inner loop vectorises
            w = taps[k]
            src_in = row[x_in_lo + shift_x + k - r:]
            for x in range(n_in):
                t_in[x] += w * src_in[x]
        for x in range(W):                   # the few edge pixels, with bounds checks
            if x_in_lo <= x < x_in_hi:
                continue
            acc = np.float32(0.0)
            for k in range(-r, r + 1):
                sx = x + shift_x + k
                if 0 <= sx < W:
                    acc += taps[k + r] * row[sx]
            t[x] = acc
    for y in range(H):                       # vertical pass, contiguous over x
        o = out[y]
        for x in range(W):
            o[x] = 0.0
        for k in range(-r, r + 1):
            yy = y + k
            if 0 <= yy < H:
                t = taps[k + r]
                row = tmp[yy]
                for x in range(W):
                    o[x] += t * row[x]
