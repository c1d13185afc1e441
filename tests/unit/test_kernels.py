"""Kernels against small numpy references."""
import math

import numpy as np
import pytest

from synthstream.render.kernels.blur import blur, gaussian_taps
from synthstream.render.kernels.clutter import (
    draw_bezier,
    draw_dot,
    draw_ellipse,
    draw_outline,
    outline_distance,
    paint_outline,
)
from synthstream.render.kernels.compose import draw_glyph, draw_glyph_scaled, glyph_scratch
from synthstream.render.kernels.warp import (
    BSPLINE_STD,
    abs_max,
    add_field_rows,
    add_shear,
    add_smooth_field,
    field_bound,
    field_rows,
    ink_bbox,
    reach,
    remap,
    remap_scratch,
    remap_span,
    sample_bilinear,
    shear_wave,
)
from synthstream.render.params import render_params
from synthstream.render.pipeline import _draw_dashes
from synthstream.render.rng import fill_normals, normal_table
from synthstream.style import parse_style

rng = np.random.default_rng(0)


def _img(h=20, w=30):
    return rng.random((h, w)).astype(np.float32)


def test_zero_displacement_is_identity():
    src = _img()
    out = np.empty_like(src)
    z = np.zeros_like(src)
    remap(src, z, z, out, 0, 20, 0, 30)
    np.testing.assert_array_equal(out, src)


def test_integer_displacement_is_a_shift_with_zero_fill():
    src = _img()
    out = np.empty_like(src)
    remap(src, np.full_like(src, 2.0), np.full_like(src, -1.0), out, 0, 20, 0, 30)
    ref = np.zeros_like(src)
    ref[1:, :-2] = src[:-1, 2:]
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_half_pixel_displacement_averages_neighbours():
    src = _img()
    out = np.empty_like(src)
    remap(src, np.full_like(src, 0.5), np.zeros_like(src), out, 0, 20, 0, 30)
    np.testing.assert_allclose(out[:, :-1], 0.5 * (src[:, :-1] + src[:, 1:]), atol=1e-6)


def test_ink_box_skip_changes_nothing():
    src = np.zeros((20, 30), np.float32)
    src[5:12, 8:20] = _img(7, 12)
    dx = rng.normal(0, 2, src.shape).astype(np.float32)
    dy = rng.normal(0, 2, src.shape).astype(np.float32)
    a, b = np.empty_like(src), np.empty_like(src)
    remap(src, dx, dy, a, 0, 20, 0, 30)
    y0, y1, x0, x1 = ink_bbox(src, 0.0)
    assert (y0, y1, x0, x1) == (5, 12, 8, 20)
    remap(src, dx, dy, b, y0, y1, x0, x1)
    np.testing.assert_array_equal(a, b)


def test_blur_preserves_mean_and_matches_reference():
    src = np.zeros((24, 40), np.float32)
    src[6:18, 10:30] = _img(12, 20)          # zero border: nothing leaks out of the frame
    out, tmp = np.empty_like(src), np.empty_like(src)
    blur(src, out, tmp, 1.0, 0, 0)
    assert out.sum() == pytest.approx(src.sum(), rel=1e-5)
    taps = gaussian_taps(1.0).astype(np.float64)
    ref = np.apply_along_axis(lambda r: np.convolve(r, taps, "same"), 1, src.astype(np.float64))
    ref = np.apply_along_axis(lambda c: np.convolve(c, taps, "same"), 0, ref)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_blur_zero_sigma_is_a_shifted_copy():
    src = _img()
    out, tmp = np.empty_like(src), np.empty_like(src)
    blur(src, out, tmp, 0.0, 2, -3)
    np.testing.assert_array_equal(out[:-2, 3:], src[2:, :-3])
    blur(src, out, tmp, 0.7, 2, -3)          # the shift also holds with blur
    ref, _ = np.empty_like(src), None
    blur(src, ref, tmp, 0.7, 0, 0)
    np.testing.assert_allclose(out[:-2, 3:][3:-3, 3:-3], ref[2:, :-3][3:-3, 3:-3], atol=1e-6)


@pytest.mark.parametrize("sigma, alpha", [(8.0, 14.0), (2.2, 24.0), (0.6, 3.5)])
def test_smooth_field_has_the_scipy_equivalent_amplitude(sigma, alpha):
    table = normal_table()
    stds = []
    for k in range(40):
        fx, fy = np.zeros((50, 200), np.float32), np.zeros((50, 200), np.float32)
        add_smooth_field(fx, fy, np.uint64(2 * k + 1), np.uint64(2 * k + 2), table, sigma, alpha)
        stds += [fx.std(), fy.std()]
    target = alpha / math.sqrt(3) / (2 * math.sqrt(math.pi) * sigma)
    assert np.mean(stds) == pytest.approx(target, rel=0.15)
    assert BSPLINE_STD == pytest.approx(151 / 315)


def test_shear_is_a_sine_per_row_and_column():
    dx = np.zeros((10, 16), np.float32)
    dy = np.zeros((10, 16), np.float32)
    add_shear(dx, dy, 3.0, 8.0, 0.0, -2.0, 16.0, 1.0)
    y, x = np.arange(10), np.arange(16)
    np.testing.assert_allclose(dx[:, 0], 3.0 * np.sin(2 * np.pi * y / 8.0), atol=1e-5)
    np.testing.assert_allclose(dy[0], -2.0 * np.sin(2 * np.pi * x / 16.0 + 1.0), atol=1e-5)
    assert (dx == dx[:, :1]).all() and (dy == dy[:1]).all()


def test_glyph_copy_and_rotation():
    glyph = _img(5, 7)
    canvas = np.zeros((20, 30), np.float32)
    draw_glyph(canvas, glyph.ravel(), 0, 5, 7, 3.0, 4.0, 0.0)
    np.testing.assert_array_equal(canvas[3:8, 4:11], glyph)
    assert canvas.sum() == pytest.approx(glyph.sum())
    turned = np.zeros((20, 30), np.float32)
    draw_glyph(turned, glyph.ravel(), 0, 5, 7, 3.0, 4.0, 2 * math.pi)   # a full turn: same pixels
    np.testing.assert_allclose(turned, canvas, atol=1e-5)
    half = np.zeros((20, 30), np.float32)
    draw_glyph(half, glyph.ravel(), 0, 5, 7, 3.0, 4.0, math.pi)         # half a turn: flipped both ways
    np.testing.assert_allclose(half[3:8, 4:11], glyph[::-1, ::-1], atol=1e-5)


def test_scaled_glyph_stretches_along_the_canvas_axes():
    glyph = np.ones((10, 6), np.float32)
    plain = np.zeros((60, 60), np.float32)
    draw_glyph_scaled(plain, glyph, 29.5, 29.5, 0.0, 1.0, 1.0, 0.0)
    np.testing.assert_array_equal(plain[25:35, 27:33], glyph)            # scale 1: the glyph itself
    assert plain.sum() == pytest.approx(glyph.sum())
    tall = np.zeros((60, 60), np.float32)
    draw_glyph_scaled(tall, glyph, 30.0, 30.0, 0.0, 0.5, 2.0, 0.0)         # half as wide, twice as tall
    rows, cols = np.nonzero(tall > 0.5)
    assert 19 <= rows.max() - rows.min() + 1 <= 21 and 3 <= cols.max() - cols.min() + 1 <= 4
    turned = np.zeros((60, 60), np.float32)
    draw_glyph_scaled(turned, glyph, 30.0, 30.0, math.pi / 2, 2.0, 1.0, 0.0)  # a quarter turn, then 2x wide
    rows, cols = np.nonzero(turned > 0.5)
    assert 5 <= rows.max() - rows.min() + 1 <= 7 and 19 <= cols.max() - cols.min() + 1 <= 21


def test_sheared_glyph_slants_a_vertical_bar_by_the_shear():
    bar = np.ones((21, 3), np.float32)
    canvas = np.zeros((40, 60), np.float32)
    draw_glyph_scaled(canvas, bar, 20.0, 30.0, 0.0, 1.0, 1.0, 0.5)       # x += 0.5 (y - 20)
    cols = np.arange(60)
    for y in range(12, 29):                                              # rows inside the bar
        row = canvas[y].astype(np.float64)
        assert row.sum() == pytest.approx(3.0, abs=1e-5)                 # bilinear keeps each row's ink
        assert (row * cols).sum() / row.sum() == pytest.approx(30.0 + 0.5 * (y - 20), abs=1e-5)
    assert canvas[:9].max() == 0.0 and canvas[32:].max() == 0.0           # the height stays the bar's


def _sampled_per_pixel(canvas, glyph, cy, cx, angle, sx, sy, shear):
    """`draw_glyph_scaled` as a per-pixel loop: the pre-shear arithmetic (sin_a ry, cos_a ry) at shear 0."""
    gh, gw = glyph.shape
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    a_u = sin_a if shear == 0.0 else sin_a - cos_a * shear
    a_v = cos_a if shear == 0.0 else cos_a + sin_a * shear
    for y in range(canvas.shape[0]):
        ry = (y - cy) / sy
        for x in range(canvas.shape[1]):
            rx = (x - cx) / sx
            a = sample_bilinear(glyph, -sin_a * rx + a_v * ry + 0.5 * (gh - 1), cos_a * rx + a_u * ry + 0.5 * (gw - 1))
            canvas[y, x] = max(canvas[y, x], np.float32(a))


@pytest.mark.parametrize("angle, sx, sy, shear", [(0.3, 1.0, 1.0, 0.0), (-0.9, 1.3, 0.7, 0.0), (0.2, 0.8, 1.1, 0.45),
                                                  (-0.4, 1.0, 1.0, -0.6)])
def test_glyph_sampler_is_the_per_pixel_bilinear_bit_for_bit(angle, sx, sy, shear):
    glyph = _img(9, 7)
    fast = _img(30, 40) * 0.5
    slow = fast.copy()
    draw_glyph_scaled(fast, glyph, 14.3, 19.6, angle, sx, sy, shear)
    _sampled_per_pixel(slow, glyph, 14.3, 19.6, angle, sx, sy, shear)
    np.testing.assert_array_equal(fast, slow)


def test_clutter_coverage():
    canvas = np.zeros((40, 60), np.float32)
    draw_bezier(canvas, np.array([20.0, 20, 20, 20]), np.array([5.0, 20, 40, 55]), 2.0, 1, 8)
    assert canvas[20, 10:50].min() == pytest.approx(1.0) and canvas[10].max() == 0.0
    assert 0.0 <= canvas.min() and canvas.max() <= 1.0
    draw_dot(canvas, 30.0, 30.0, 3.0, 1)
    assert canvas[30, 30] == 1.0 and canvas[30, 36] == 0.0
    full = np.ones((40, 60), np.float32)
    draw_ellipse(full, 20.0, 30.0, 10.0, 15.0, 1.5, -1)      # background colour: cuts the ink
    assert full[20, 15] < 0.2 and full[10, 30] < 0.2 and full[20, 30] == 1.0 and full[0, 0] == 1.0


def _dash_params(**clutter):
    return render_params(parse_style({"name": "d", "height": 40, "width": 60, "alphabet": "a",
                                      "fonts": ["DejaVuSans-Bold.ttf"], "latents": {"num_chars": 1, "font_size": 20},
                                      "clutter": clutter}))


def test_dashes_cut_holes_into_the_ink():
    inside = 0
    for key in range(8):                                  # one horizontal dash 8 long, 2 wide, somewhere
        full = np.ones((40, 60), np.float32)
        _draw_dashes(full, np.uint64(key), _dash_params(dashes=1, dash_length=8.0, dash_width=2.0, dash_angle=0.0))
        rows, cols = np.nonzero(full < 0.5)
        assert 0.0 <= full.min() and full.max() == 1.0 and (full < 1.0).sum() < 40
        if rows.size and 0 < cols.min() and cols.max() < 59 and 0 < rows.min() and rows.max() < 39:
            inside += 1                                   # not clipped: 8 long plus a round cap at each end
            assert 1 <= rows.max() - rows.min() + 1 <= 3 and 9 <= cols.max() - cols.min() + 1 <= 11
    assert inside >= 4
    many = np.ones((40, 60), np.float32)
    _draw_dashes(many, np.uint64(7), _dash_params(dashes=50, dash_length=2.0, dash_width=2.0))
    assert 50 <= (many < 0.5).sum() < 600 and 0.0 <= many.min()
    none = np.ones((40, 60), np.float32)
    _draw_dashes(none, np.uint64(7), _dash_params())                     # the default: no dashes
    assert none.min() == 1.0


def test_outline_follows_the_moved_edge_of_the_coverage():
    y, x = np.mgrid[0:40, 0:60]
    edge = np.minimum(np.minimum(y - 10, 29 - y), np.minimum(x - 20, 39 - x))
    src = np.clip(0.5 + edge, 0, 1).astype(np.float32)        # a square: its 0.5 level line, rows 10, 29, cols 20, 39
    box = np.array([9, 31, 19, 41], np.int64)
    padded = np.pad(src, 1)                                   # the kernel reads src inside a zero border
    cut = np.ones((40, 60), np.float32)
    draw_outline(cut, padded, box, 2, -3, 1.0, -1)               # moved 2 down, 3 left, in background colour
    assert set(np.nonzero(cut[:, 25] < 0.5)[0]) == {12, 31}   # a column through the moved square
    assert set(np.nonzero(cut[20] < 0.5)[0]) == {17, 36}      # a row through it
    assert cut[21, 27] == 1.0 and cut[0, 0] == 1.0            # inside and far outside: untouched
    ink = np.zeros((40, 60), np.float32)
    draw_outline(ink, padded, box, 0, 0, 1.0, 1)                 # in ink: the same line, painted
    assert ink[10, 30] > 0.5 and ink[20, 30] == 0.0 and 0.0 <= ink.min() and ink.max() <= 1.0


def test_numba_cache_is_keyed_on_kernel_modules_only():
    from pathlib import Path

    import synthstream
    from synthstream.render.jit import kernel_sources
    package = Path(synthstream.__file__).resolve().parent
    names = {p.relative_to(package).as_posix() for p in kernel_sources()}
    assert {"render/pipeline.py", "render/rng.py", "render/kernels/warp.py", "trace.py"} <= names
    assert not names & {"cli.py", "commands.py", "bench/generator.py"}


def _ellipse_brute_force(canvas, cy, cx, ry, rx, width, sign):
    """Every pixel of the bounding box, as draw_ellipse's ring spans must reproduce."""
    half = 0.5 * width + 0.5
    for y in range(canvas.shape[0]):
        for x in range(canvas.shape[1]):
            u, v = (x - cx) / rx, (y - cy) / ry
            f = math.sqrt(u * u + v * v)
            if f == 0.0:
                continue
            a = half - abs(f - 1.0) / (math.sqrt((u / rx) ** 2 + (v / ry) ** 2) / f)
            if a > 0.0:
                canvas[y, x] = max(canvas[y, x], min(a, 1.0)) if sign > 0 else canvas[y, x] * (1.0 - min(a, 1.0))


@pytest.mark.parametrize("cy, cx, ry, rx, width", [(20.0, 30.0, 10.0, 15.0, 1.5), (3.3, 57.1, 4.0, 16.0, 1.1),
                                                    (25.5, 9.7, 16.0, 4.2, 1.6), (20.0, 30.0, 1.2, 0.9, 1.3)])
def test_ellipse_ring_spans_match_every_pixel(cy, cx, ry, rx, width):
    fast = rng.random((40, 60)).astype(np.float32)
    slow = fast.copy()
    draw_ellipse(fast, cy, cx, ry, rx, width, -1)
    _ellipse_brute_force(slow, cy, cx, ry, rx, width, -1)
    np.testing.assert_allclose(fast, slow, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_ink_bbox_matches_numpy(seed):
    r = np.random.default_rng(seed)
    canvas = np.zeros((23, 37), np.float32)
    n = int(r.integers(0, 6))
    canvas[r.integers(0, 23, n), r.integers(0, 37, n)] = r.random(n).astype(np.float32) + 0.05
    ys, xs = np.nonzero(canvas > 0.1)
    ref = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) if len(ys) else (0, 0, 0, 0)
    assert ink_bbox(canvas, 0.1) == ref


def _blur_reference(src, sigma, shift_y, shift_x):
    """The blur's definition, in numpy: rows blurred over src (zero outside it) and shifted, then columns
    blurred over the shifted frame (zero outside it); float32 sums in tap order from 0."""
    taps = gaussian_taps(sigma)
    r = (len(taps) - 1) // 2
    H, W = src.shape
    ext = np.zeros((H, W + 4 * r + 2 * abs(shift_x)), np.float32)
    off = 2 * r + abs(shift_x)
    ext[:, off:off + W] = src
    tmp = np.zeros_like(src)
    for y in range(H):
        sy = y + shift_y
        if 0 <= sy < H:
            acc = np.zeros(W, np.float32)
            for k in range(len(taps)):
                acc += taps[k] * ext[sy, off + shift_x + k - r:off + shift_x + k - r + W]
            tmp[y] = acc
    out = np.zeros_like(src)
    for y in range(H):
        for k in range(len(taps)):
            if 0 <= y + k - r < H:
                out[y] += taps[k] * tmp[y + k - r]
    return out


@pytest.mark.parametrize("sigma, shift_y, shift_x", [(0.5, 0, 0), (0.6, 2, 3), (0.7, -1, -4), (1.3, 3, -2)])
def test_blur_with_a_shift_is_exactly_its_definition(sigma, shift_y, shift_x):
    src = _img(16, 24)                       # ink up to the frame's edges: the taps reach past them
    out, tmp = np.empty_like(src), np.empty_like(src)
    blur(src, out, tmp, sigma, shift_y, shift_x)
    np.testing.assert_array_equal(out, _blur_reference(src, sigma, shift_y, shift_x))


def test_abs_max_is_the_exact_largest_magnitude():
    a = (rng.standard_normal(1001) * 3).astype(np.float32)
    assert abs_max(a) == float(np.abs(a).max())
    assert abs_max(np.zeros(5, np.float32)) == 0.0 and abs_max(np.array([-0.0, -2.5], np.float32)) == 2.5


@pytest.mark.parametrize("sigma, alpha, shear", [(6.0, 6.0, 1.5), (8.0, 14.0, 4.0), (3.0, 8.0, 0.0)])
def test_displacement_bound_keeps_every_pixel_that_reads_the_ink_box(sigma, alpha, shear):
    """`reach` over `field_bound` + the shear's amplitude: every pixel whose displaced read lands inside the ink
    box (remap's inside test) lies in the rows and columns it keeps, and the remap over them is the full one."""
    H, W = 50, 200
    table = normal_table()
    for k in range(4):
        rows = field_rows(H, W, np.uint64(k + 1), np.uint64(k + 100), table, sigma, alpha)
        wave = shear_wave(W, shear, 37.0, 0.4 * k)
        dx, dy = np.zeros((H, W), np.float32), np.zeros((H, W), np.float32)
        for y in range(H):
            add_field_rows(dx[y], dy[y], rows, sigma, y)
            dx[y] += np.float32(-shear * math.sin(0.3 * y))
            dy[y] += wave
        bx, by = field_bound(rows)
        ya, yb = reach(15, 35, by + abs_max(wave), H)
        xa, xb = reach(40, 150, bx + shear, W)
        sy = np.arange(H)[:, None] + dy.astype(np.float64)
        sx = np.arange(W)[None, :] + dx.astype(np.float64)
        reads = (sy > 14) & (sy < 35) & (sx > 39) & (sx < 150)
        ys, xs = np.nonzero(reads)
        assert ys.min() >= ya and ys.max() < yb and xs.min() >= xa and xs.max() < xb
        src = np.zeros((H, W), np.float32)
        src[15:35, 40:150] = rng.random((20, 110))
        full, part = np.zeros((H, W), np.float32), np.zeros((H, W), np.float32)
        remap(src, dx, dy, full, 15, 35, 40, 150)
        flat = np.pad(src, 1).ravel()
        cell, frac, vals = remap_scratch(W)
        for y in range(ya, yb):
            remap_span(flat, y, dx[y], dy[y], part, 15, 35, 40, 150, cell, frac, vals, xa, xb)
        np.testing.assert_array_equal(part, full)


def test_ghosts_share_one_outline_distance():
    src = np.clip(rng.random((30, 50)) * 3 - 1, 0, 1).astype(np.float32)
    padded = np.pad(src, 1)
    box = np.array(ink_bbox(src, 0.0), np.int64)
    dist = outline_distance(padded, box)
    base = rng.random((30, 50)).astype(np.float32)
    for dy, dx, width, sign in ((0, 0, 1.0, 1), (2, -3, 0.7, -1), (-4, 5, 1.3, 1)):
        a, b = base.copy(), base.copy()
        draw_outline(a, padded, box, dy, dx, width, sign)
        paint_outline(b, dist, box, dy, dx, width, sign)
        np.testing.assert_array_equal(a, b)


def test_shared_scratch_draws_the_same_pixels():
    glyph = _img(9, 7)
    fresh = _img(30, 40) * 0.5
    shared = fresh.copy()
    scratch = glyph_scratch(40)
    for angle in (0.3, -0.7):
        draw_glyph_scaled(fresh, glyph, 14.3, 19.6, angle, 1.1, 0.9, 0.1)
        draw_glyph_scaled(shared, glyph, 14.3, 19.6, angle, 1.1, 0.9, 0.1, scratch)
    np.testing.assert_array_equal(fresh, shared)
    py, px = np.array([20.0, 12, 28, 20]), np.array([5.0, 20, 40, 55])
    a, b = np.zeros((40, 60), np.float32), np.zeros((40, 60), np.float32)
    draw_bezier(a, py, px, 1.5, 1, 16)
    draw_bezier(b, py, px, 1.5, 1, 16, np.full(60, 7.0))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sigma", [0.6, 6.0, 8.0])
def test_field_rows_match_the_per_pixel_x_pass(sigma):
    """field_rows' run-wise loops (fine and coarse grids) against the B-spline x pass written per pixel (the
    images' bit-identity is checked by comparing whole renders; here to float32 rounding)."""
    H, W, alpha = 50, 200, 5.0
    table = normal_table()
    rows = field_rows(H, W, np.uint64(3), np.uint64(4), table, sigma, alpha)
    scale = alpha / math.sqrt(3.0) / (2.0 * math.sqrt(math.pi) * sigma) / BSPLINE_STD
    spacing = math.sqrt(3.0) * sigma
    gh, gw = int(H / spacing) + 4, int(W / spacing) + 4
    grids = []
    for key in (3, 4):
        g = np.empty(gh * gw, np.float32)
        fill_normals(g, np.uint64(key), table, scale)
        grids.append(g)
    for x in range(0, W, 7):
        u = x / spacing
        i = int(u)
        t = u - i
        w = [np.float32((1 - t) ** 3 / 6.0), np.float32((3 * t ** 3 - 6 * t * t + 4) / 6.0),
             np.float32((-3 * t ** 3 + 3 * t * t + 3 * t + 1) / 6.0), np.float32(t ** 3 / 6.0)]
        for axis, g in enumerate(grids):
            for r in range(gh):
                v = [g[r * gw + i + k] for k in range(4)]
                expect = w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3]
                assert rows[axis, r, x] == pytest.approx(expect, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("sigma, shift_y, ya, yb", [(0.6, 0, 12, 30), (0.5, -3, 0, 7), (1.4, 4, 33, 40), (2.5, 2, 5, 6),
                                                    (0.6, 0, 20, 20)])
def test_blur_told_the_zero_rows_is_the_same_blur(sigma, shift_y, ya, yb):
    src = np.zeros((40, 60), np.float32)
    src[ya:yb] = rng.random((yb - ya, 60))
    full, told = np.empty_like(src), np.full_like(src, 9.0)
    blur(src, full, np.empty_like(src), sigma, shift_y, 3)
    blur(src, told, np.empty_like(src), sigma, shift_y, 3, ya, yb)
    np.testing.assert_array_equal(full, told)
