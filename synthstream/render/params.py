"""The style's render recipe as a flat float64 vector of (lo, hi) ranges, for the kernels.

Numba's parallel loops cannot take tuples, so field F's range sits at p[F], p[F + 1] (a flag at p[F]).
The kernels index with the constants below, named after the style file's fields.
"""

from __future__ import annotations

import numpy as np

from synthstream.style import Style

FIELDS = (
    "start_x_center", "start_x", "baseline_center", "baseline", "char_rotation", "char_dy", "recenter",
    "char_scale", "char_fill", "char_space", "char_dx", "fit_width",
    "elastic_alpha", "elastic_sigma", "fine_alpha", "fine_sigma",
    "shear_x_period", "shear_x_amplitude", "shear_y_period", "shear_y_amplitude",
    "background", "ink", "ink_opacity", "blur_sigma", "noise_sigma",
    "strokes", "stroke_width", "stroke_length", "stroke_angle", "stroke_y", "ellipses", "ellipse_width",
    "ellipse_radius",
    "dots", "dot_radius", "ghosts", "ghost_shift", "ghost_width", "ghost_dark", "drips", "drip_length", "drip_width",
    "drip_angle",
)
(START_X_CENTER, START_X, BASELINE_CENTER, BASELINE, CHAR_ROTATION, CHAR_DY, RECENTER,
 CHAR_SCALE, CHAR_FILL, CHAR_SPACE, CHAR_DX, FIT_WIDTH,
 ELASTIC_ALPHA, ELASTIC_SIGMA, FINE_ALPHA, FINE_SIGMA,
 SHEAR_X_PERIOD, SHEAR_X_AMPLITUDE, SHEAR_Y_PERIOD, SHEAR_Y_AMPLITUDE,
 BACKGROUND, INK, INK_OPACITY, BLUR_SIGMA, NOISE_SIGMA,
 STROKES, STROKE_WIDTH, STROKE_LENGTH, STROKE_ANGLE, STROKE_Y, ELLIPSES, ELLIPSE_WIDTH, ELLIPSE_RADIUS,
 DOTS, DOT_RADIUS, GHOSTS, GHOST_SHIFT, GHOST_WIDTH, GHOST_DARK, DRIPS, DRIP_LENGTH, DRIP_WIDTH,
 DRIP_ANGLE) = (2 * i for i in range(len(FIELDS)))


def render_params(style: Style) -> np.ndarray:
    """float64 [2 * len(FIELDS)] from the style's layout/warp/ink/clutter sections."""
    flat: dict[str, tuple[float, float]] = {}
    for section in ("layout", "warp", "ink", "clutter"):
        for key, value in style.params[section].items():
            if key == "embolden":
                continue  # baked into the glyph atlas
            if value == "center":
                flat[f"{key}_center"], flat[key] = (1.0, 1.0), (0.0, 0.0)
            elif isinstance(value, bool):
                flat[key] = (float(value), float(value))
            else:
                if key in ("start_x", "baseline"):
                    flat[f"{key}_center"] = (0.0, 0.0)
                flat[key] = (float(value[0]), float(value[1]))
    assert set(flat) == set(FIELDS), f"render params out of sync with the style schema: {set(flat) ^ set(FIELDS)}"
    return np.array([v for f in FIELDS for v in flat[f]], np.float64)
