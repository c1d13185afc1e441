import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from synthstream.errors import UserError
from synthstream.generate import compile_kernels, generate, render
from synthstream.render.jit import get_threads, set_threads
from synthstream.style import builtin_styles, load_style, parse_style

DIGEST = """
import hashlib, sys
from synthstream.generate import generate
from synthstream.style import load_style
s = load_style(sys.argv[1])
im, tr = generate(s, 42, 1000, 64)
h = hashlib.sha256(im.tobytes())
for f in ("keys", "num_chars", "font", "font_size", "kerning", "chars"):
    h.update(getattr(tr, f).tobytes())
print(h.hexdigest())
"""


def digest(style_name: str) -> str:
    im, tr = generate(load_style(style_name), 42, 1000, 64)
    h = hashlib.sha256(im.tobytes())
    for f in ("keys", "num_chars", "font", "font_size", "kerning", "chars"):
        h.update(getattr(tr, f).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", builtin_styles())
def test_same_seed_and_index_give_identical_bytes_across_processes_and_threads(name):
    here = digest(name)
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", DIGEST, name], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == here, f"{name}: process with {threads} thread(s) rendered different bytes"


def test_batches_do_not_depend_on_how_the_range_is_split():
    style = load_style("facebook")
    whole, t_whole = generate(style, 7, 100, 24)
    a, ta = generate(style, 7, 100, 10)
    b, tb = generate(style, 7, 110, 14)
    np.testing.assert_array_equal(whole, np.concatenate([a, b]))
    assert t_whole.texts() == ta.texts() + tb.texts()


@pytest.mark.parametrize("make", [lambda: load_style("wikipedia"), lambda: _warped()], ids=["wikipedia", "warped"])
def test_thread_count_does_not_change_images(make):
    style = make()
    before = get_threads()
    try:
        set_threads(1)
        one, _ = generate(style, 3, 0, 16)
        set_threads(2)
        two, _ = generate(style, 3, 0, 16)
    finally:
        set_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("name", builtin_styles())
def test_rerendering_a_trace_reproduces_its_image(name):
    style = load_style(name)
    images, traces = generate(style, 11, 500, 12)
    picked = traces.take([7, 2, 9])
    np.testing.assert_array_equal(render(style, picked), images[[7, 2, 9]])


def test_images_look_like_captchas():
    for name in builtin_styles():
        style = load_style(name)
        images, traces = generate(style, 0, 0, 32)
        assert images.shape == (32, style.height, style.width) and images.dtype == np.uint8
        assert len(set(traces.texts())) >= 8   # tiny has 20 strings in all
        assert images.std(axis=(1, 2)).min() > 10, f"{name}: a blank image"
        ink = (images < np.median(images, axis=(1, 2), keepdims=True) - 40).mean(axis=(1, 2))
        assert 0.02 < ink.mean() < 0.5, f"{name}: ink share {ink.mean():.3f}"
    other, _ = generate(load_style("wikipedia"), 1, 0, 4)
    same_seed, _ = generate(load_style("wikipedia"), 0, 0, 4)
    assert not np.array_equal(other, same_seed)


@pytest.mark.parametrize("n", [0, -3, 2**40])
def test_bad_batch_size(n):
    with pytest.raises(UserError, match="sample count n = "):
        generate(load_style("tiny"), 0, 0, n)


def _ink_columns(style, n=16) -> np.ndarray:
    """Per image: the first and last column holding ink (the images of `_spaced` have no clutter)."""
    images, _ = generate(style, 5, 0, n)
    cols = images.min(axis=1) < 128
    return np.array([[np.argmax(c), len(c) - 1 - np.argmax(c[::-1])] for c in cols])


def _spaced(width=240, **layout):
    raw = {"name": "spaced", "height": 40, "width": width, "alphabet": "ABMW", "fonts": ["DejaVuSans-Bold.ttf"],
           "latents": {"num_chars": 4, "font_size": 24}, "layout": {"start_x": 4, "baseline": 30, **layout}}
    return parse_style(raw, "test")


def test_blanks_pen_shifts_and_the_squeeze_move_the_text():
    plain = _ink_columns(_spaced())
    blanks = _ink_columns(_spaced(char_space=1.0))                       # a blank advance before every letter
    assert (blanks[:, 1] - plain[:, 1] > 40).all()
    shifted = _ink_columns(_spaced(char_dx=-6))                          # each pen step 6 px shorter
    assert (np.abs(plain[:, 1] - shifted[:, 1] - 18) <= 1).all()
    squeezed = _ink_columns(_spaced(width=120, char_space=1.0, char_scale=1.5, fit_width=True))
    assert (squeezed[:, 1] < 120).all() and (squeezed[:, 1] - squeezed[:, 0] > 80).all()
    big = _ink_columns(_spaced(char_scale=1.5))
    assert (big[:, 1] - big[:, 0] > 1.3 * (plain[:, 1] - plain[:, 0])).all()


def test_filled_cells_make_every_letter_as_tall_as_the_cell():
    style = _spaced(char_fill=30, baseline="center")
    images, _ = generate(style, 5, 0, 8)
    rows = (images.min(axis=2) < 128).sum(axis=1)                        # rows holding ink, per image
    assert (np.abs(rows - 30) <= 2).all()


def _marked(**clutter):
    raw = {"name": "marked", "height": 50, "width": 160, "alphabet": "ABMW", "fonts": ["DejaVuSans-Bold.ttf"],
           "latents": {"num_chars": 4, "font_size": 28}, "layout": {"start_x": 8, "baseline": 32},
           "clutter": clutter}
    return parse_style(raw, "test")


def test_ghost_outlines_and_dashes_cut_ghosts_double_the_letters_and_drips_hang_from_them():
    plain, _ = generate(_marked(), 3, 0, 8)
    for cutter, least in ((_marked(ghosts=1, ghost_shift=3.0), 20), (_marked(dashes=60, dash_length=3.0), 5)):
        cut, _ = generate(cutter, 3, 0, 8)
        assert (cut >= plain).all()                                         # background colour: only cuts ink
        assert ((cut > plain.astype(int) + 100).sum(axis=(1, 2)) > least).all()
    doubled, _ = generate(_marked(ghosts=1, ghost_shift=3.0, ghost_dark=1.0), 3, 0, 8)
    assert (doubled <= plain).all()                                         # in ink: only adds it
    assert ((doubled < plain.astype(int) - 100).sum(axis=(1, 2)) > 20).all()
    dripped, _ = generate(_marked(drips=6, drip_length=12.0, drip_angle=90.0), 3, 0, 8)
    assert (dripped <= plain).all()
    for before, after in zip(plain, dripped):
        text = before < 128
        added_rows, added_cols = np.nonzero(after < before.astype(int) - 100)
        assert added_rows.max() >= np.nonzero(text.any(axis=1))[0].max() + 8        # they hang below the text
        for r, c in zip(added_rows, added_cols):                   # each below ink of its own column (+- 2)
            assert text[:r + 2, max(0, c - 2):c + 3].any()


def _warped():
    """`_marked` with dashes and each character's own shear and stretch."""
    raw = _marked(dashes=[20, 40]).to_raw()
    raw["layout"].update(char_shear=[-0.5, 0.5], char_stretch=[0.8, 1.3])
    return parse_style(raw, "test")


def test_a_warped_image_renders_again_from_its_trace_and_moves_every_letter():
    style = _warped()
    images, traces = generate(style, 9, 100, 16)
    np.testing.assert_array_equal(render(style, traces.take([5, 0, 11])), images[[5, 0, 11]])
    unwarped, _ = generate(_marked(dashes=[20, 40]), 9, 100, 16)
    assert (images != unwarped).any(axis=(1, 2)).all()                      # every image's letters move


@pytest.mark.parametrize("kwargs, error", [
    ({"seed": 1.5}, TypeError), ({"first_index": 1.5}, TypeError), ({"n": 2.0}, TypeError),
    ({"seed": True}, TypeError), ({"style": 3}, TypeError), ({"first_index": 2**63 - 1}, UserError),
    ({"first_index": 2**63 - 2}, UserError), ({"seed": 2**63}, UserError), ({"first_index": -1}, UserError),
])
def test_api_arguments_are_checked_not_truncated(kwargs, error):
    args = {"style": load_style("tiny"), "seed": 0, "first_index": 0, "n": 3, **kwargs}
    with pytest.raises(error):
        generate(**args)


def test_api_takes_a_style_name_and_the_last_indices():
    by_name, traces = generate(style="tiny", seed=1, first_index=2**63 - 3, n=3)
    by_style, _ = generate(load_style("tiny"), 1, 2**63 - 3, 3)
    assert (by_name == by_style).all() and int(traces.indices[-1]) == 2**63 - 1


def test_set_up_compiles_every_builtin_style():
    # cluster/setup.sh calls this so that no later process compiles the kernels (docs/benchmarks.md)
    assert compile_kernels() == builtin_styles()


def test_read_only_columns_render_with_the_one_compiled_kernel():
    """An Arrow column's `to_numpy()` is read-only, a Numba type of its own: re-rendering a batch's rows must
    not compile a second copy of the render kernel (tens of seconds of a core)."""
    import dataclasses

    from synthstream.render.pipeline import render_batch_kernel

    style = load_style("tiny")
    images, traces = generate(style, 3, 0, 4)
    compiled = list(render_batch_kernel.signatures)
    keys = traces.keys.copy()
    keys.setflags(write=False)
    np.testing.assert_array_equal(render(style, dataclasses.replace(traces, keys=keys)), images)
    assert render_batch_kernel.signatures == compiled
