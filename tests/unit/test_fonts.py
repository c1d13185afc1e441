import shutil

import pytest

from synthstream.errors import UserError
from synthstream.fonts import find_font
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
