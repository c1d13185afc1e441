"""Would float32 make the remap faster? Its three passes (synthstream/render/kernels/warp.py, `remap_span`) timed
as the renderer runs them (float64 where each pixel reads and in the blend) and with those two passes in
float32 (8 lanes instead of 4), on one pinned core, a 60x160 field of N(0, 2) displacements:

    python benchmarks/remap_float32.py [--json F]

Prints a table (microseconds per 60x160 image, best of 5 x 1,000) and, with --json, writes it. The result is in
docs/performance.md ("What is left"): the gather between the two passes dominates, float32 saves ~1.3 us.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthstream.render.jit import ngjit  # noqa: E402

H, W = 60, 160


@ngjit
def where_f64(dx, dy, y, cell, frac, Wp, y0, y1, x0, x1):
    """The renderer's first pass (float64)."""
    ylo, xlo = y0 - 1, x0 - 1
    for x in range(dx.shape[0]):
        sy = y + dy[x]
        sx = x + dx[x]
        inside = (sy > ylo) & (sy < y1) & (sx > xlo) & (sx < x1)
        sy = sy if inside else 0.0
        sx = sx if inside else 0.0
        fy = math.floor(sy)
        fx = math.floor(sx)
        frac[0, x] = sy - fy if inside else -1.0
        frac[1, x] = sx - fx
        cell[x] = (np.int64(fy) + 1) * Wp + np.int64(fx) + 1


@ngjit
def where_f32(dx, dy, y, cell, frac, Wp, y0, y1, x0, x1):
    """The first pass in float32 (every literal and bound float32, so nothing promotes to float64)."""
    ylo, yhi = np.float32(y0 - 1), np.float32(y1)
    xlo, xhi = np.float32(x0 - 1), np.float32(x1)
    yf, zero, minus = np.float32(y), np.float32(0.0), np.float32(-1.0)
    for x in range(np.uint64(0), np.uint64(dx.shape[0])):
        sy = yf + dy[x]
        sx = np.float32(x) + dx[x]
        inside = (sy > ylo) & (sy < yhi) & (sx > xlo) & (sx < xhi)
        sy = sy if inside else zero
        sx = sx if inside else zero
        fy = np.floor(sy)
        fx = np.floor(sx)
        frac[0, x] = sy - fy if inside else minus
        frac[1, x] = sx - fx
        cell[x] = (np.int64(fy) + 1) * Wp + np.int64(fx) + 1


@ngjit
def gather(padded, cell, frac, vals, Wp):
    """The second pass: four reads per pixel inside (scalar)."""
    one, wp_ = np.uint64(1), np.uint64(Wp)
    for x in range(cell.shape[0]):
        if frac[0, x] < 0.0:
            continue
        i = np.uint64(cell[x])
        vals[0, x] = padded[i]
        vals[1, x] = padded[i + one]
        vals[2, x] = padded[i + wp_]
        vals[3, x] = padded[i + wp_ + one]


@ngjit
def blend_f64(frac, vals, out):
    for x in range(out.shape[0]):
        ty, tx = frac[0, x], frac[1, x]
        v = (1 - ty) * ((1 - tx) * vals[0, x] + tx * vals[1, x]) + ty * ((1 - tx) * vals[2, x] + tx * vals[3, x])
        out[x] = v if ty >= 0.0 else 0.0


@ngjit
def blend_f32(frac, vals, out):
    one, zero = np.float32(1.0), np.float32(0.0)
    for x in range(out.shape[0]):
        ty, tx = frac[0, x], frac[1, x]
        v = (one - ty) * ((one - tx) * vals[0, x] + tx * vals[1, x]) + ty * ((one - tx) * vals[2, x] + tx * vals[3, x])
        out[x] = v if ty >= zero else zero


@ngjit
def image(kind, n, dx, dy, padded, cell, f64, f32, vals, out):
    """`n` images of one pass: 0 where (f64), 1 where (f32), 2 gather, 3 blend (f64), 4 blend (f32)."""
    Wp = W + 2
    for _ in range(n):
        for y in range(H):
            if kind == 0:
                where_f64(dx[y], dy[y], y, cell, f64, Wp, 0, H, 0, W)
            elif kind == 1:
                where_f32(dx[y], dy[y], y, cell, f32, Wp, 0, H, 0, W)
            elif kind == 2:
                gather(padded, cell, f64, vals, Wp)
            elif kind == 3:
                blend_f64(f64, vals, out)
            else:
                blend_f32(f32, vals, out)


PASSES = ["where each pixel reads, float64", "where each pixel reads, float32", "gather (four reads)",
          "blend, float64", "blend, float32"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = np.random.default_rng(0)
    dx, dy = (rng.normal(0, 2, (H, W)).astype(np.float32) for _ in range(2))
    padded = rng.random((H + 2) * (W + 2)).astype(np.float32)
    cell = np.zeros(W, np.int64)
    f64, f32 = np.zeros((2, W)), np.zeros((2, W), np.float32)
    vals, out = np.zeros((4, W), np.float32), np.zeros(W, np.float32)
    image(0, 1, dx, dy, padded, cell, f64, f32, vals, out)          # cells and weights for the gather
    rows = []
    for kind, name in enumerate(PASSES):
        image(kind, 1, dx, dy, padded, cell, f64, f32, vals, out)   # compile
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            image(kind, 1000, dx, dy, padded, cell, f64, f32, vals, out)
            best = min(best, time.perf_counter() - t0)
        rows.append({"pass": name, "us_per_image": best / 1000 * 1e6})
    print(f"| pass ({H}x{W}, one pinned core) | us per image |\n|---|---:|")
    for r in rows:
        print(f"| {r['pass']} | {r['us_per_image']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"height": H, "width": W, "passes": rows}, indent=1))


if __name__ == "__main__":
    main()
