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
    n_taps = taps.shape[0]
    r = (n_taps - 1) // 2
    # One source row, shifted: row[j] = src[sy, j - r + shift_x], zero where that column is outside src.
    # The taps reach r pixels past the shifted frame's edges into src (the horizontal pass blurs src, then
    # shifts); the zero-filled rest of the row stands for the columns outside src.
    row = np.zeros(W + 2 * r, np.float32)
    j_lo = max(0, r - shift_x)               # the row's entries that come from src: [j_lo, j_hi)
    j_hi = min(W + 2 * r, W + r - shift_x)
    for y in range(H):                       # horizontal pass -> tmp (rows shifted by shift_y)
        sy = y + shift_y
        if not 0 <= sy < H:
            for x in range(W):
                tmp[y, x] = 0.0
            continue
        for j in range(j_lo, j_hi):
            row[j] = src[sy, j - r + shift_x]
        for x in range(W):
            tmp[y, x] = 0.0
        for k in range(n_taps):              # tap-major, so the inner loop vectorises; the zero border adds
            w = taps[k]                      # exact zeros where the old edge loop skipped a tap
            for x in range(W):
                tmp[y, x] += w * row[x + k]
    for y in range(H):                       # vertical pass, contiguous over x; rows outside add nothing
        for x in range(W):
            out[y, x] = 0.0
        for k in range(max(0, r - y), min(n_taps, H + r - y)):
            t = taps[k]
            yy = y + k - r
            for x in range(W):
                out[y, x] += t * tmp[yy, x]
