"""The render parameters are derived from the style's field table, in its order."""
import numpy as np
import pytest

from synthstream import style as style_module
from synthstream.render import params
from synthstream.render.params import FIELDS, F, render_params
from synthstream.style import builtin_styles, load_style

# The layout the kernels were compiled against before the offsets were derived (a changed order re-numbers
# every offset; adding a field appends or inserts one here).
EXPECTED = (
    "start_x_center", "start_x", "baseline_center", "baseline", "char_rotation", "char_shear", "char_dy", "recenter",
    "char_scale", "char_stretch", "char_fill", "char_space", "char_dx", "fit_width",
    "elastic_alpha", "elastic_sigma", "fine_alpha", "fine_sigma",
    "shear_x_period", "shear_x_amplitude", "shear_y_period", "shear_y_amplitude",
    "background", "ink", "ink_opacity", "blur_sigma", "noise_sigma",
    "strokes", "stroke_width", "stroke_length", "stroke_angle", "stroke_y", "ellipses", "ellipse_width",
    "ellipse_radius", "dots", "dot_radius", "dashes", "dash_length", "dash_width", "dash_angle", "ghosts",
    "ghost_shift", "ghost_width", "ghost_dark", "drips", "drip_length", "drip_width", "drip_angle",
)


def test_fields_follow_the_style_table_in_order():
    assert FIELDS == EXPECTED
    assert [f.name.lower() for f in F] == list(FIELDS)
    assert [int(f) for f in F] == [2 * i for i in range(len(FIELDS))]
    table_order = [k for s in params.SECTIONS for k, spec in style_module._FIELDS[s].items() if spec[0] != "count"]
    assert [f for f in FIELDS if not f.endswith("_center")] == table_order


@pytest.mark.parametrize("name", builtin_styles())
def test_each_range_sits_at_its_offset(name):
    style = load_style(name)
    p = render_params(style)
    assert p.shape == (2 * len(FIELDS),) and p.dtype == np.float64
    for section in params.SECTIONS:
        for key, value in style.params[section].items():
            if key == "embolden":
                continue
            lo, hi = p[F[key.upper()]], p[F[key.upper()] + 1]
            if value == "center":
                assert (p[F[f"{key.upper()}_CENTER"]], lo, hi) == (1.0, 0.0, 0.0)
            elif isinstance(value, bool):
                assert lo == hi == float(value)
            else:
                assert (lo, hi) == (float(value[0]), float(value[1]))
                if f"{key}_center" in FIELDS:
                    assert p[F[f"{key.upper()}_CENTER"]] == 0.0


def test_a_new_table_field_gets_an_offset(monkeypatch):
    monkeypatch.setitem(style_module._FIELDS["clutter"], "sparkles", ("int", 0, 0, 8))
    names = [name for _, _, name in params._render_fields()]
    assert names[-1] == "sparkles" and names[:-1] == list(FIELDS)
