import shutil

import pytest

from synthstream.errors import UserError
from synthstream.fonts import find_font, missing_glyphs
from synthstream.glyphs import glyph_atlas, rasterise
from synthstream.style import FontSpec, builtin_styles, load_style, parse_style


@pytest.mark.parametrize("name", builtin_styles())
def test_every_builtin_font_is_found(name):
    style = load_style(name)
    for spec in style.fonts:
        assert find_font(spec, name).endswith(spec.file)
    atlas = glyph_atlas(style)
    assert atlas.meta.shape == (len(style.fonts), len(style.font_sizes), len(style.alphabet), 5)
    assert (atlas.meta[..., 1] > 0).all() and atlas.pixels.max() == pytest.approx(1.0)


def test_missing_font_names_file_and_package():
    with pytest.raises(UserError) as e:
        find_font(FontSpec("NoSuchFont-Bold.ttf", "fonts-nosuch"), "mine")
    msg = str(e.value)
    assert "NoSuchFont-Bold.ttf" in msg and "apt-get install fonts-nosuch" in msg and "SYNTHSTREAM_FONT_PATH" in msg


def test_a_font_from_a_python_packages_files():
    found = find_font(FontSpec("DroidSansMono.ttf", module="captcha"), "lepture")
    assert found.endswith("captcha/data/DroidSansMono.ttf")
    with pytest.raises(UserError, match=r"install the Python package nosuch \(pip install nosuch\)"):
        find_font(FontSpec("DroidSansMono.ttf", module="nosuch"), "mine")


def test_font_path_env_adds_a_folder(tmp_path, monkeypatch):
    shutil.copy(find_font(FontSpec("DejaVuSans-Bold.ttf")), tmp_path / "MyCaptchaFont.ttf")
    monkeypatch.setenv("SYNTHSTREAM_FONT_PATH", str(tmp_path))
    style = parse_style({"name": "mine", "height": 32, "width": 64, "alphabet": "ab",
                         "fonts": ["MyCaptchaFont.ttf"], "latents": {"num_chars": 1, "font_size": 20}})
    assert glyph_atlas(style).pixels.size > 0


def test_glyph_metrics_put_x_height_letters_on_the_baseline():
    path = find_font(FontSpec("DejaVuSans-Bold.ttf"))
    bitmap, left, top, advance = rasterise(path, 30, "x")
    assert top < 0 and top + bitmap.shape[0] <= 1   # 'x' sits on the baseline
    assert advance > bitmap.shape[1] * 0.8


def _style_with(font_file: str, alphabet: str):
    return parse_style({"name": "mine", "height": 32, "width": 64, "alphabet": alphabet,
                        "fonts": [font_file], "latents": {"num_chars": 1, "font_size": 20}})


def test_a_font_lacking_glyphs_is_refused_naming_the_characters():
    # DejaVu Sans has Latin, Greek and Cyrillic but no CJK ideographs and no Devanagari
    with pytest.raises(UserError) as e:
        glyph_atlas(_style_with("DejaVuSans-Bold.ttf", "ABΩЖ中क"))
    msg = str(e.value)
    assert msg.count("\n") == 0
    assert "DejaVuSans-Bold.ttf" in msg and "no glyph for 2 of the alphabet's characters: '中क'" in msg
    assert "U+4E2D, U+0915" in msg


def test_missing_glyphs_checks_every_builtin_font_and_ignores_spaces():
    for name in builtin_styles():
        style = load_style(name)
        for spec in style.fonts:
            assert missing_glyphs(find_font(spec), style.alphabet) == ""
    assert missing_glyphs(find_font(FontSpec("DejaVuSans-Bold.ttf")), "a b\u00a0c") == ""


@pytest.mark.parametrize("content", [b"this is not a font", b"\x00\x01\x00\x00" + b"\x00" * 200, "truncated"])
def test_a_corrupt_font_file_is_one_line_naming_it(tmp_path, monkeypatch, content):
    if content == "truncated":
        content = open(find_font(FontSpec("DejaVuSans-Bold.ttf")), "rb").read()[:4000]
    (tmp_path / "Broken.ttf").write_bytes(content)
    monkeypatch.setenv("SYNTHSTREAM_FONT_PATH", str(tmp_path))
    with pytest.raises(UserError) as e:
        glyph_atlas(_style_with("Broken.ttf", "AB"))
    msg = str(e.value)
    assert msg.count("\n") == 0 and str(tmp_path / "Broken.ttf") in msg and "FreeType" in msg
