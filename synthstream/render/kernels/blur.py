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
def blur(src, out, tmp, sigma, shift_y, shift_x, ya=0, yb=-1):
    """out = G_sigma * src(y + shift_y, x + shift_x), via tmp; all (H, W) float32 (C-contiguous). The integer
    shift lets the caller re-centre for free. sigma <= 0 copies (shifted).

    Each output pixel is sum_k taps[k] * input, added in float32 from 0.0 in tap order, skipping the rows
    outside src in the vertical pass (the horizontal pass adds exact zeros from the border of its row
    buffer). Kernels of up to 11 taps run in one expression per pixel padded with
    zero taps to 5, 7 or 11 slots; a zero tap adds +0.0 to a non-negative sum, which changes no bit.
    Longer kernels, and the rows whose taps reach past src, add tap by tap (the same sums).

    src's rows outside [ya, yb) (yb -1: H) are zero, so the rows of tmp and out that read only them are
    zero (a sum of w * 0.0 = +0.0 terms from 0.0 is +0.0) and are written as such without their sums."""
    H, W = src.shape
    if yb < 0:
        yb = H
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
    slots = 5 if n_taps <= 5 else 7 if n_taps <= 7 else 11 if n_taps <= 11 else 0
    w = np.zeros(max(slots, 1), np.float32)  # the taps, then zeros up to the slots
    if slots:
        w[:n_taps] = taps
    fs = src.reshape(H * W)
    ft = tmp.reshape(H * W)
    fo = out.reshape(H * W)
    # One source row, shifted: row[j] = src[sy, j - r + shift_x], zero where that column is outside src
    # (and in the slots past the kernel's end). The taps reach r pixels past the shifted frame's edges
    # into src (the horizontal pass blurs src, then shifts).
    row = np.zeros(W + 2 * r + 8, np.float32)
    j_lo = max(0, r - shift_x)               # the row's entries that come from src: [j_lo, j_hi)
    j_hi = min(W + 2 * r, W + r - shift_x)
    uW = np.uint64(W)
    z = np.float32(0.0)
    u1, u2, u3, u4, u5 = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4), np.uint64(5)
    u6, u7, u8, u9, u10 = np.uint64(6), np.uint64(7), np.uint64(8), np.uint64(9), np.uint64(10)
    for y in range(H):                       # horizontal pass -> tmp (rows shifted by shift_y)
        sy = y + shift_y
        base = np.uint64(y * W)
        if not max(0, ya) <= sy < min(H, yb):     # outside src, or a zero row of it
            for i in range(W):
                ft[base + np.uint64(i)] = 0.0
            continue
        src0 = sy * W + j_lo - r + shift_x       # >= 0: the flat index of row[j_lo]
        for j in range(j_hi - j_lo):
            row[np.uint64(j_lo + j)] = fs[np.uint64(src0 + j)]
        # all taps of a pixel in one expression (registers, no read-modify-write of tmp per tap); the
        # same sum, from 0.0 in tap order; unsigned indices: no wraparound test, so the loops vectorise
        if slots == 5:
            w0, w1, w2, w3, w4 = w[0], w[1], w[2], w[3], w[4]
            for i in range(W):
                x = np.uint64(i)
                ft[base + x] = ((((z + w0 * row[x]) + w1 * row[x + u1]) + w2 * row[x + u2]) + w3 * row[x + u3]) \
                    + w4 * row[x + u4]
            continue
        if slots == 7:
            w0, w1, w2, w3, w4, w5, w6 = w[0], w[1], w[2], w[3], w[4], w[5], w[6]
            for i in range(W):
                x = np.uint64(i)
                ft[base + x] = ((((((z + w0 * row[x]) + w1 * row[x + u1]) + w2 * row[x + u2]) + w3 * row[x + u3])
                                 + w4 * row[x + u4]) + w5 * row[x + u5]) + w6 * row[x + u6]
            continue
        if slots == 11:
            w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], \
                w[9], w[10]
            for i in range(W):
                x = np.uint64(i)
                ft[base + x] = ((((((((((z + w0 * row[x]) + w1 * row[x + u1]) + w2 * row[x + u2])
                                      + w3 * row[x + u3]) + w4 * row[x + u4]) + w5 * row[x + u5])
                                    + w6 * row[x + u6]) + w7 * row[x + u7]) + w8 * row[x + u8])
                                 + w9 * row[x + u9]) + w10 * row[x + u10]
            continue
        for x in range(uW):
            ft[base + x] = 0.0
        for k in range(n_taps):              # tap-major, so the inner loop vectorises
            wk = taps[k]
            uk = np.uint64(k)
            for x in range(uW):
                ft[base + x] += wk * row[x + uk]
    b = np.empty(max(slots, 1), np.uint64)
    t_lo, t_hi = max(0, ya - shift_y), min(H, yb - shift_y)   # tmp's rows that may hold ink
    for y in range(H):                       # vertical pass, contiguous over x; rows outside add nothing
        base = np.uint64(y * W)
        if y + r < t_lo or y - r >= t_hi:    # every tap reads a zero row of tmp
            for i in range(W):
                fo[base + np.uint64(i)] = 0.0
            continue
        k0, k1 = max(0, r - y), min(n_taps, H + r - y)
        if slots and k0 == 0 and k1 == n_taps:    # the taps' rows; a zero slot reads any valid row
            for k in range(slots):
                b[k] = np.uint64((y + (k if k < n_taps else 0) - r) * W)
            b0, b1, b2, b3, b4 = b[0], b[1], b[2], b[3], b[4]
            if slots == 5:
                w0, w1, w2, w3, w4 = w[0], w[1], w[2], w[3], w[4]
                for i in range(W):
                    x = np.uint64(i)
                    fo[base + x] = ((((z + w0 * ft[b0 + x]) + w1 * ft[b1 + x]) + w2 * ft[b2 + x])
                                    + w3 * ft[b3 + x]) + w4 * ft[b4 + x]
                continue
            b5, b6 = b[5], b[6]
            if slots == 7:
                w0, w1, w2, w3, w4, w5, w6 = w[0], w[1], w[2], w[3], w[4], w[5], w[6]
                for i in range(W):
                    x = np.uint64(i)
                    fo[base + x] = ((((((z + w0 * ft[b0 + x]) + w1 * ft[b1 + x]) + w2 * ft[b2 + x])
                                      + w3 * ft[b3 + x]) + w4 * ft[b4 + x]) + w5 * ft[b5 + x]) + w6 * ft[b6 + x]
                continue
            b7, b8, b9, b10 = b[7], b[8], b[9], b[10]
            w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], \
                w[9], w[10]
            for i in range(W):
                x = np.uint64(i)
                fo[base + x] = ((((((((((z + w0 * ft[b0 + x]) + w1 * ft[b1 + x]) + w2 * ft[b2 + x])
                                      + w3 * ft[b3 + x]) + w4 * ft[b4 + x]) + w5 * ft[b5 + x])
                                    + w6 * ft[b6 + x]) + w7 * ft[b7 + x]) + w8 * ft[b8 + x])
                                 + w9 * ft[b9 + x]) + w10 * ft[b10 + x]
            continue
        for x in range(uW):
            fo[base + x] = 0.0
        for k in range(k0, k1):
            t = taps[k]
            yb = np.uint64((y + k - r) * W)
            for x in range(uW):
                fo[base + x] += t * ft[yb + x]
