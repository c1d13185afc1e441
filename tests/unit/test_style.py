
import re

import pytest

from synthstream.errors import UserError
from synthstream.style import builtin_styles, load_style, parse_style
from synthstream.trace import codec_of

MINIMAL = {"name": "mini", "height": 32, "width": 64, "alphabet": "ab",
           "fonts": [{"file": "DejaVuSans-Bold.ttf"}], "latents": {"num_chars": [1, 2], "font_size": 20}}


def with_field(path: str, value):
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MINIMAL.items()}
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return raw


def test_builtins_are_the_five_styles():
    assert builtin_styles() == ["facebook", "facebook_fit", "facebook_wake", "lepture", "rough", "tiny", "wikipedia",
                                "wikipedia_letters"]
    for name in builtin_styles():
        assert load_style(name).name == name


def test_paper_ranges_of_the_wikipedia_prior():
    c = codec_of(load_style("wikipedia"))
    assert c.support("num_chars") == (8, 9, 10)
    assert c.support("font_size") == tuple(range(26, 32))
    assert c.support("kerning") == (1, 2)
    assert c.support("char/3") == tuple("abcdefghijklmnopqrstuvwxyz")
    assert c.addresses[:4] == ("num_chars", "font", "font_size", "kerning")
    assert c.addresses[-1] == "char/9"


def test_a_style_is_hashable_equal_by_content_and_pickles_by_its_raw_form():
    import pickle
    a, b = load_style("tiny"), load_style("tiny")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != load_style("lepture") and a.widened(1.5) != a
    again = pickle.loads(pickle.dumps(a))
    assert again == a and again.to_raw() == a.to_raw()


@pytest.mark.parametrize("path, value, fragment", [
    ("height", 5000, "height"),
    ("alphabet", "aa", "alphabet"),
    ("latents.num_chars", [3, 1], "latents.num_chars"),
    ("latents.font_size", "big", "latents.font_size"),
    ("warp.elastic_sigma", -1.0, "warp.elastic_sigma"),
    ("warp.elastic_alpah", 3.0, "warp.elastic_alpah"),
    ("ink.noise_sigma", 1e9, "ink.noise_sigma"),
    ("layout.recenter", "yes", "layout.recenter"),
    ("layout.start_x", "left", "layout.start_x"),
    ("clutter.strokes", 1.5, "clutter.strokes"),
    ("layout.char_space", 1.5, "layout.char_space"),
    ("layout.char_scale", 0, "layout.char_scale"),
    ("layout.fit_width", 1, "layout.fit_width"),
    ("layout.char_shear", 2.5, "layout.char_shear"),
    ("layout.char_shear", "steep", "layout.char_shear"),
    ("layout.char_stretch", [0.0, 1.0], "layout.char_stretch"),
    ("clutter.dashes", 1.5, "clutter.dashes"),
    ("clutter.dash_length", -1.0, "clutter.dash_length"),
    ("clutter.dash_width", 0, "clutter.dash_width"),
])
def test_bad_field_names_field_and_value(path, value, fragment):
    with pytest.raises(UserError) as e:
        parse_style(with_field(path, value), "test.toml")
    msg = str(e.value)
    assert fragment in msg and repr(value) in msg and "test.toml" in msg and "\n" not in msg


def test_per_character_warp_and_dashes_parse_and_default_to_off():
    raw = with_field("layout.char_shear", [-0.5, 0.5])
    raw["layout"]["char_stretch"] = [0.8, 1.25]
    raw["clutter"] = {"dashes": [40, 60], "dash_length": 2, "dash_width": [1.5, 2.5], "dash_angle": 0}
    s = parse_style(raw)
    assert s.params["layout"]["char_shear"] == (-0.5, 0.5) and s.params["layout"]["char_stretch"] == (0.8, 1.25)
    assert s.params["clutter"]["dashes"] == (40, 60) and s.params["clutter"]["dash_length"] == (2.0, 2.0)
    assert s.params["clutter"]["dash_width"] == (1.5, 2.5) and s.params["clutter"]["dash_angle"] == (0.0, 0.0)
    plain = parse_style(MINIMAL)
    assert plain.params["layout"]["char_shear"] == (0.0, 0.0) and plain.params["layout"]["char_stretch"] == (1.0, 1.0)
    assert plain.params["clutter"]["dashes"] == (0, 0)
    stretched = parse_style(with_field("layout.char_stretch", 1.3))
    assert stretched.widened(2.0).params["layout"]["char_stretch"] == (1.3, 1.3)   # a shape: kept when fixed


def test_missing_required_field():
    raw = dict(MINIMAL)
    del raw["alphabet"]
    with pytest.raises(UserError, match="missing required field 'alphabet'"):
        parse_style(raw)


def test_unknown_style_lists_available():
    with pytest.raises(UserError,
                       match="available: facebook, facebook_fit, facebook_wake, lepture, rough, tiny, wikipedia"):
        load_style("recaptcha")


def test_style_file_round_trip(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nheight = 32\nwidth = 64\nalphabet = "xyz"\nfonts = ["DejaVuSans-Bold.ttf"]\n'
                    '[latents]\nnum_chars = [1, 3]\nfont_size = 20\n[ink]\nnoise_sigma = [0, 5]\n')
    s = load_style(str(path))
    assert s.name == "mine" and s.max_chars == 3 and s.params["ink"]["noise_sigma"] == (0.0, 5.0)
    path.write_text("name = [")
    with pytest.raises(UserError, match="not valid TOML"):
        load_style(str(path))


def test_prior_scale_widens_nuisance_but_not_latents():
    s = load_style("wikipedia")
    assert s.widened(1.0) is s
    w = s.widened(2.0)
    assert w.params["latents"] == s.params["latents"]
    assert w.params["warp"]["shear_x_amplitude"] == (-13.5, 12.5)          # centre -0.5, half 6.5 -> 13
    assert w.params["warp"]["elastic_alpha"] == (7.0, 21.0)                # fixed 14 -> 14 * [0.5, 1.5]
    assert w.params["ink"]["background"] == (255, 255)                     # clipped to the field's bounds
    narrow = s.widened(0.5)
    assert narrow.params["warp"]["shear_x_amplitude"] == (-3.75, 2.75)
    with pytest.raises(UserError, match="prior scale"):
        s.widened(50)


def test_a_bom_is_accepted(tmp_path):
    from importlib import resources

    text = resources.files("synthstream.styles").joinpath("tiny.toml").read_text()
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_style(tmp_path / "bom.toml") == load_style("tiny")


@pytest.mark.parametrize("alphabet, char", [("AB C", " "), ("AB\u00a0", "\u00a0"), ("AB\u200b", "\u200b"),
                                            ("A\u3000", "\u3000")])
def test_characters_that_draw_nothing_are_refused_by_name(alphabet, char):
    raw = load_style("tiny").to_raw()
    with pytest.raises(UserError, match=re.escape(f"character {char!r} (U+{ord(char):04X}) draws no ink")):
        parse_style({**raw, "alphabet": alphabet})


def test_a_font_that_draws_a_character_as_nothing_is_named():
    from synthstream.fonts import blank_glyphs, find_font
    from synthstream.style import FontSpec

    path = find_font(FontSpec("DejaVuSans-Bold.ttf"))
    assert blank_glyphs(path, "AB") == "" and blank_glyphs(path, "A B") == " "


def test_a_style_path_that_is_not_a_file_says_what_it_is(tmp_path):
    import os

    (tmp_path / "dir.toml").mkdir()
    os.symlink(tmp_path / "loop.toml", tmp_path / "loop.toml")
    os.symlink(tmp_path / "gone.toml", tmp_path / "dangling.toml")
    with pytest.raises(UserError, match="is a directory"):
        load_style(tmp_path / "dir.toml")
    with pytest.raises(UserError, match="symbolic link loop"):
        load_style(tmp_path / "loop.toml")
    with pytest.raises(UserError, match="does not exist \\(a symbolic link to a missing file\\)"):
        load_style(tmp_path / "dangling.toml")
    with pytest.raises(UserError, match="'.*nothere.toml' does not exist$"):
        load_style(tmp_path / "nothere.toml")
