"""What `synthstream fit` may change in a style, and the unit cube it searches.

A style file's optional `[fit]` table says it (every key optional):

    [fit]
    fixed = ["warp.elastic_sigma", "ink.background"]   # never changed
    free = ["clutter.dots"]                             # fitted although the file does not set it
    bounds = { "warp.elastic_alpha" = [0, 20] }         # the search envelope of a field
    widen = 2.0                                         # default envelope: each set range widened this much
    fonts = "installed"                                 # candidates: the style's own (default), "installed",
                                                        # a folder of .ttf/.otf files, or a list of file names
    keep_widths = true                                  # ranges keep their widths: only their centres move

Fitted: every field of `[latents]` (but `num_chars`: the text prior and alphabet are the user's), `[layout]`,
`[warp]`, `[ink]` and `[clutter]` that the file sets, plus `free`, less `fixed`; the fonts (which of the
candidates) when there are several; `text.case` for a words prior. A range `[lo, hi]` is searched as its centre
and half-width inside the envelope (with `keep_widths`: its centre only, inside the envelope, its width the
start's, clipped to the field's legal bounds: the fit moves the nuisance but cannot narrow it), a single value
as one number, a count or a bool as a choice. The envelope of a field is `bounds`, else its own range widened
`widen` times about its centre (a single value v: v (1 +- (widen - 1) / 2)), clipped to the field's legal
bounds and the image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from synthstream.errors import UserError
from synthstream.style import _FIELDS, Style, parse_style

SECTIONS = ("latents", "layout", "warp", "ink", "clutter")
NEVER_FITTED = ("latents.num_chars",)          # the text prior's lengths: the user's
FONT_SUFFIXES = (".ttf", ".otf")
MAX_FONT_CANDIDATES = 16
CASES = ("lower", "upper", "as-is")
_FIT_KEYS = {"fixed", "free", "bounds", "widen", "fonts", "keep_widths"}


@dataclass(frozen=True)
class Param:
    """One searched quantity. kind: "value" (1 cube dim), "range" (2: centre, half-width), "shift" (1: the centre,
    in the envelope, of a range of fixed half-width `half`, clipped to the field's legal bounds `legal`), "choice"
    (categorical over `choices`)."""

    name: str                 # dotted field name, "fonts:<file>" or "text.case"
    kind: str
    lo: float = 0.0           # the envelope (value, range)
    hi: float = 0.0
    integer: bool = False
    choices: tuple = ()
    half: float = 0.0         # a shift's half-width and the field's legal bounds
    legal: tuple = (-math.inf, math.inf)

    @property
    def dims(self) -> int:
        return {"value": 1, "range": 2, "shift": 1, "choice": 0}[self.kind]


@dataclass(frozen=True)
class Space:
    """The searched parameters of one style, and the map between the cube and styles."""

    base: dict                # the starting style's raw form (to_raw), what is not fitted comes from here
    params: tuple[Param, ...]
    fonts: tuple[dict, ...]   # font candidates, {file, package[, module]}
    fixed: tuple[str, ...]
    source: str = ""

    @property
    def continuous(self) -> list[Param]:
        return [p for p in self.params if p.kind != "choice"]

    @property
    def categorical(self) -> list[Param]:
        return [p for p in self.params if p.kind == "choice"]

    @property
    def n_continuous(self) -> int:
        return sum(p.dims for p in self.params)

    def decode(self, u: list[float], k: list[int]) -> Style:
        """The style at cube point u (floats in [0, 1]) with choices k (indices)."""
        raw = _copy(self.base)
        u_iter = iter(np.clip(np.asarray(u, float), 0.0, 1.0))
        font_on: list[bool] = []
        k_iter = iter(k)
        for p in self.params:
            if p.kind == "choice":
                value = p.choices[int(next(k_iter))]
                if p.name.startswith("fonts:"):
                    font_on.append(bool(value))
                elif p.name == "text.case":
                    raw["text"]["case"] = value
                else:
                    section, key = p.name.split(".")
                    raw[section][key] = value
                continue
            section, key = p.name.split(".")
            if p.kind == "value":
                v = p.lo + next(u_iter) * (p.hi - p.lo)
                raw[section][key] = _num(v, p.integer)
            elif p.kind == "shift":
                centre = p.lo + next(u_iter) * (p.hi - p.lo)
                lo = _num(max(centre - p.half, p.legal[0]), p.integer)
                raw[section][key] = [lo, max(lo, _num(min(centre + p.half, p.legal[1]), p.integer))]
            else:
                c, w = next(u_iter), next(u_iter)
                centre = p.lo + c * (p.hi - p.lo)
                half = w * min(centre - p.lo, p.hi - centre)
                lo, hi = _num(centre - half, p.integer), _num(centre + half, p.integer)
                raw[section][key] = [lo, max(lo, hi)]
        if font_on:
            chosen = [f for f, on in zip(self.fonts, font_on) if on] or [self.fonts[0]]
            raw["fonts"] = [dict(f) for f in chosen]
        return parse_style(raw, f"{self.source} (fitted)")

    def encode(self, style: Style) -> tuple[list[float], list[int]]:
        """The cube point and choices of a style (fields outside the envelope are clipped into it)."""
        raw = style.to_raw()
        files = {f["file"] for f in raw["fonts"]}
        u: list[float] = []
        k: list[int] = []
        for p in self.params:
            if p.kind == "choice":
                if p.name.startswith("fonts:"):
                    value = p.name[6:] in files
                elif p.name == "text.case":
                    value = raw["text"]["case"]
                else:
                    section, key = p.name.split(".")
                    value = raw[section][key]
                    value = value[0] if isinstance(value, list) else value
                k.append(p.choices.index(value) if value in p.choices else 0)
                continue
            section, key = p.name.split(".")
            lo, hi = _as_range(raw[section][key], p)
            width = max(p.hi - p.lo, 1e-12)
            if p.kind == "value":
                u.append(float(np.clip(((lo + hi) / 2 - p.lo) / width, 0, 1)))
            elif p.kind == "shift":                    # the centre of the unclipped side
                centre = hi - p.half if lo <= p.legal[0] else lo + p.half if hi >= p.legal[1] else (lo + hi) / 2
                u.append(float(np.clip((centre - p.lo) / width, 0, 1)))
            else:
                centre = min(max((lo + hi) / 2, p.lo), p.hi)
                room = min(centre - p.lo, p.hi - centre)
                u += [float(np.clip((centre - p.lo) / width, 0, 1)),
                      float(np.clip((hi - lo) / 2 / room, 0, 1)) if room > 1e-12 else 0.0]
        return u, k

    def describe(self) -> dict[str, str]:
        """Field -> how the fit treats it, for the comments of the written style."""
        out = {p.name: (f"fitted among {', '.join(map(str, p.choices))}" if p.kind == "choice" else
                        f"centre fitted within [{_fmt(p.lo)}, {_fmt(p.hi)}], width kept" if p.kind == "shift" else
                        f"fitted within [{_fmt(p.lo)}, {_fmt(p.hi)}]") for p in self.params}
        out.update({name: "fixed" for name in self.fixed})
        return out


def _copy(raw: dict) -> dict:
    return {k: ({kk: (list(vv) if isinstance(vv, list) else vv) for kk, vv in v.items()} if isinstance(v, dict)
                else [dict(f) for f in v] if k == "fonts" else v) for k, v in raw.items()}


def _num(v: float, integer: bool) -> float | int:
    return int(round(v)) if integer else round(float(v), 4)


def _fmt(v: float) -> str:
    return f"{v:g}"


def _as_range(value: Any, p: Param) -> tuple[float, float]:
    if value == "center":          # a centred position: the envelope's middle
        return (p.lo + p.hi) / 2, (p.lo + p.hi) / 2
    if isinstance(value, list):
        return float(value[0]), float(value[1])
    return float(value), float(value)


# -- reading the [fit] table and building the space ---------------------------------------------------------

def read_style_file(name_or_path: str | Path) -> tuple[dict, str]:
    """The raw TOML of a style (built-in name or path) and its source, to read the fields it sets and its
    [fit] table; `load_style` checks the same file first, so errors here are its errors."""
    from synthstream.style import builtin_styles, load_style

    load_style(name_or_path)                           # one checked place for every problem of the style itself
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        return tomllib.loads(Path(text).read_text(encoding="utf-8")), text
    assert text in builtin_styles()
    return tomllib.loads(resources.files("synthstream.styles").joinpath(f"{text}.toml").read_text()), \
        f"builtin:{text}"


def build_space(raw_file: dict, source: str, extra_fixed: tuple[str, ...] = ()) -> Space:
    """The search space of a style file (its raw TOML, with the optional [fit] table)."""
    style = parse_style(raw_file, source)
    spec = raw_file.get("fit", {})

    def bad(key: str, value: Any, why: str) -> UserError:
        return UserError(f"style {source}: field fit.{key} = {value!r}: {why}")

    if not isinstance(spec, dict):
        raise UserError(f"style {source}: field fit = {spec!r}: must be a table")
    unknown = set(spec) - _FIT_KEYS
    if unknown:
        k = sorted(unknown)[0]
        raise bad(k, spec[k], f"unknown field; known: {', '.join(sorted(_FIT_KEYS))}")
    known = {f"{s}.{k}" for s in SECTIONS for k in _FIELDS[s]} | {"fonts", "text.case"}
    lists = {}
    for key in ("fixed", "free"):
        value = spec.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(key, value, 'must be a list of dotted field names, e.g. ["warp.elastic_alpha"]')
        for name in value:
            if name not in known:
                raise bad(key, value, f"{name!r} is not a field of the style (e.g. 'warp.elastic_alpha')")
        lists[key] = value
    for name in extra_fixed:
        if name not in known:
            raise UserError(f"--fixed: {name!r} is not a field of the style (e.g. 'warp.elastic_alpha')")
    widen = spec.get("widen", 2.0)
    if isinstance(widen, bool) or not isinstance(widen, (int, float)) or not 1 <= widen <= 10:
        raise bad("widen", widen, "must be a number in [1, 10]")
    keep_widths = spec.get("keep_widths", False)
    if not isinstance(keep_widths, bool):
        raise bad("keep_widths", keep_widths, "must be true or false")
    bounds = spec.get("bounds", {})
    if not isinstance(bounds, dict):
        raise bad("bounds", bounds, 'must be a table, e.g. { "warp.elastic_alpha" = [0, 20] }')
    for name, b in bounds.items():
        if name not in known or name in ("fonts", "text.case"):
            raise bad("bounds", {name: b}, f"{name!r} is not a numeric field of the style")
        if (not isinstance(b, list) or len(b) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                           for v in b) or not b[0] < b[1]):
            raise bad("bounds", {name: b}, "must be [lo, hi] with lo < hi")

    fixed = set(lists["fixed"]) | set(extra_fixed) | set(NEVER_FITTED)
    chosen = [f"{s}.{k}" for s in SECTIONS for k in raw_file.get(s, {}) if k in _FIELDS[s]]
    chosen += [n for n in lists["free"] if n not in chosen and "." in n and n.split(".")[0] in SECTIONS]
    raw = style.to_raw()
    params: list[Param] = []
    for name in chosen:
        if name in fixed:
            continue
        section, key = name.split(".")
        kind, _, lo_b, hi_b, *_ = _FIELDS[section][key]
        value = raw[section][key]
        if kind == "bool":
            params.append(Param(name, "choice", choices=(False, True)))
            continue
        if kind == "count":
            lo, hi = bounds.get(name, [0, max(2, 2 * value)])
            params.append(Param(name, "choice", choices=tuple(range(int(max(lo, lo_b)), int(min(hi, hi_b)) + 1))))
            continue
        if value == "center" and name not in bounds:
            continue                                        # a centred position stays centred
        if kind == "pos":
            hi_b = min(hi_b, raw["width"] if key == "start_x" else raw["height"])
            lo_b = max(lo_b, -raw["width"] // 4 if key == "start_x" else 0)
        if name == "latents.font_size":
            hi_b = min(hi_b, 2 * raw["height"])
        env = bounds.get(name) or _envelope(value, widen, kind, raw, key)
        lo, hi = max(float(env[0]), lo_b), min(float(env[1]), hi_b)
        if hi <= lo:
            continue                                        # nothing to search (e.g. a zero at its bound)
        ranged = isinstance(value, list) and value[0] != value[1]
        integer = kind in ("int", "pos")
        if ranged and keep_widths:
            params.append(Param(name, "shift", lo, hi, integer=integer, half=(value[1] - value[0]) / 2,
                                legal=(lo_b, hi_b)))
            continue
        params.append(Param(name, "range" if ranged else "value", lo, hi, integer=integer))
    if "text.case" not in fixed and raw["text"]["prior"] == "words":
        params.append(Param("text.case", "choice", choices=CASES))
    fonts = tuple(_font_candidates(spec.get("fonts"), style, source)) if "fonts" not in fixed else ()
    if len(fonts) > 1:
        params += [Param(f"fonts:{f['file']}", "choice", choices=(False, True)) for f in fonts]
    else:
        fonts = ()
    if not params:
        raise UserError(f"style {source}: nothing to fit (every field it sets is fixed); set fields or list them "
                        f"in fit.free")
    return Space(base=raw, params=tuple(params), fonts=fonts, fixed=tuple(sorted(fixed)), source=source)


def _envelope(value: Any, widen: float, kind: str, raw: dict, key: str) -> tuple[float, float]:
    if value == "center":
        side = raw["width"] if key == "start_x" else raw["height"]
        return 0.0, float(side)
    lo, hi = (value if isinstance(value, list) else [value, value])
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    half = half * widen if half > 0 else abs(centre) * (widen - 1) / 2
    if kind in ("int", "pos"):
        half = max(half, 1.0)
    return centre - half, centre + half


def _font_candidates(value: Any, style: Style, source: str) -> list[dict]:
    """The fonts the fit chooses among: dicts as a style's `fonts` list holds them."""
    own = [{"file": f.file, "package": f.package, **({"module": f.module} if f.module else {})} for f in style.fonts]
    if value is None:
        return own
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
        files = value
    elif value == "installed":
        from synthstream.fonts import _system_fonts
        files = sorted(_system_fonts())
    elif isinstance(value, str) and Path(value).is_dir():
        folder = str(Path(value).resolve())
        paths = os.environ.get("SYNTHSTREAM_FONT_PATH", "")
        if folder not in paths.split(os.pathsep):          # find_font looks there (Ray workers inherit it)
            os.environ["SYNTHSTREAM_FONT_PATH"] = os.pathsep.join(filter(None, [paths, folder]))
        files = sorted(p.name for p in Path(folder).rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    else:
        raise UserError(f"style {source}: field fit.fonts = {value!r}: must be \"installed\", a folder of font "
                        f"files or a list of font file names")
    out = list(own)
    for file in files:
        if any(f["file"] == file for f in out):
            continue
        if _usable(file, style):
            out.append({"file": file, "package": ""})
        if len(out) >= MAX_FONT_CANDIDATES:
            break
    return out


def _usable(file: str, style: Style) -> bool:
    """A font file found here that draws every character of the alphabet."""
    from synthstream.fonts import checked_font
    from synthstream.style import FontSpec

    try:
        checked_font(FontSpec(file=file), style.alphabet, style.name)
        return True
    except UserError:
        return False


def cube_distance(a: list[float], b: list[float]) -> float:
    return math.dist(a, b) / max(1.0, math.sqrt(len(a)))
