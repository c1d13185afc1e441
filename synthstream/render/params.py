"""The style's render recipe as a flat float64 vector of (lo, hi) ranges, for the kernels.

Numba's parallel loops cannot take tuples, so field F's range sits at p[F], p[F + 1] (a flag at p[F]).
Everything here is derived from the style's field table (`synthstream.style._FIELDS`, sections layout, warp,
ink, clutter, in their order): a "pos" field (a range or "center") gives two fields, `<key>_center` (a flag)
then `<key>`; a "count" field (one integer, e.g. `embolden`, baked into the glyph atlas) gives none. The
kernels index with `F.<FIELD>` (an IntEnum, which Numba folds into a constant), so adding a render field is
one line of the field table plus its use in a kernel.
"""

from __future__ import annotations

import enum

import numpy as np

from synthstream.style import _FIELDS, Style

SECTIONS = ("layout", "warp", "ink", "clutter")


def _render_fields() -> tuple[tuple[str, str, str], ...]:
    """(section, key, name) of every slot pair, in order; name is key or `<key>_center`."""
    out = []
    for section in SECTIONS:
        for key, spec in _FIELDS[section].items():
            kind = spec[0]
            if kind == "count":
                continue
            if kind == "pos":
                out.append((section, key, f"{key}_center"))
            out.append((section, key, key))
    return tuple(out)


_SLOTS = _render_fields()
FIELDS: tuple[str, ...] = tuple(name for _, _, name in _SLOTS)
F = enum.IntEnum("F", {name.upper(): 2 * i for i, name in enumerate(FIELDS)})
F.__doc__ = "Offset of each render field's (lo, hi) pair in `render_params`' vector."


def render_params(style: Style) -> np.ndarray:
    """float64 [2 * len(FIELDS)] from the style's layout/warp/ink/clutter sections."""
    out = np.empty(2 * len(FIELDS), np.float64)
    for i, (section, key, name) in enumerate(_SLOTS):
        value = style.params[section][key]
        if name != key:                                  # the `<key>_center` flag of a "pos" field
            lo = hi = float(value == "center")
        elif value == "center":
            lo = hi = 0.0
        elif isinstance(value, bool):
            lo = hi = float(value)
        else:
            lo, hi = float(value[0]), float(value[1])
        out[2 * i], out[2 * i + 1] = lo, hi
    return out
