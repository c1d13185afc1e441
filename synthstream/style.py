"""A style: a named prior over traced latents plus a render recipe, read from a TOML file.

A style file is data, validated here (every bad field is reported by its dotted name and value). Built-in
styles live in `synthstream/styles/*.toml`; a user style is any file with the same fields.

Traced latents (what a proposal network predicts) are declared by the latent codec in `synthstream/trace.py`
from this file's `[latents]`, `fonts` and `[text]` tables; everything else in the file is nuisance, drawn per
sample from a generator keyed by (seed, index), never traced.

A `Style` is immutable and hashable; it travels (to Ray actors, into checkpoints and Arrow metadata) as its
canonical raw form, `to_raw()`, and is rebuilt with `parse_style`.
"""

from __future__ import annotations

import functools
import json
import math
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from synthstream.errors import UserError

MAX_SIDE = 1024          # absurd image sizes are refused
MAX_CHARS = 32

# section -> key -> (kind, default, low bound, high bound, unit, doc). Kinds: int/float ranges ("x" or [lo, hi],
# drawn uniformly per sample), "pos" (a range or "center"), "bool", "count" (one integer, not a range).
# Code reads the first four by position (`kind, default, lo, hi, *_`); docs/styles.md is generated from all six
# (`python -m synthstream.stylesdoc`).
_FIELDS: dict[str, dict[str, tuple[str, Any, float, float, str, str]]] = {
    "latents": {
        "num_chars": ("int", None, 1, MAX_CHARS, "characters",
                      "string length (traced: the network predicts it); a `words` prior keeps the word tuples "
                      "whose total length lies in it"),
        "font_size": ("int", None, 4, 256, "px", "font size (traced), at most twice the image height"),
        "kerning": ("int", 0, -64, 64, "px", "extra pen advance between characters (traced)"),
    },
    "layout": {
        "start_x": ("pos", "center", -MAX_SIDE, MAX_SIDE, "px",
                    'left edge of the text, or "center" to centre its box horizontally'),
        "baseline": ("pos", "center", -MAX_SIDE, MAX_SIDE, "px",
                     'baseline height from the top, or "center" to centre the text box vertically'),
        "char_rotation": ("float", 0.0, -90, 90, "degrees", "rotation of each character"),
        "char_shear": ("float", 0.0, -2, 2, "factor",
                       "horizontal shear of each rotated glyph about its centre, x' = x + k y (y down: k > 0 "
                       "moves its bottom right); 0: none"),
        "char_dy": ("int", 0, -MAX_SIDE, MAX_SIDE, "px", "vertical jitter of each character"),
        "recenter": ("bool", False, 0, 1, "", "move the ink's bounding box back to the centre after warping"),
        "embolden": ("count", 0, 0, 4, "px", "outline added to every glyph (FreeType stroke)"),
        "char_scale": ("float", 1.0, 0.1, 4, "factor", "size of each character (its glyph and its advance)"),
        "char_stretch": ("float", 1.0, 0.1, 4, "factor", "width of each character's glyph (not its advance)"),
        "char_fill": ("float", 0.0, 0, MAX_SIDE, "px",
                      "> 0: stretch each rotated glyph's ink to a cell one advance wide and this tall "
                      "(ImageCaptcha's look)"),
        "char_space": ("float", 0.0, 0, 1, "probability", "a blank advance before each character"),
        "char_dx": ("int", 0, -MAX_SIDE, MAX_SIDE, "px", "pen shift after each character"),
        "fit_width": ("bool", False, 0, 1, "", "squeeze text wider than the image to its width"),
    },
    "warp": {
        "elastic_alpha": ("float", 0.0, 0, 1000, "scipy alpha",
                          "strength of a smooth random displacement field (scipy's `elastic_transform` "
                          "convention: displacement std = alpha 0.577 / (2 sqrt(pi) sigma) px); 0: none"),
        "elastic_sigma": ("float", 8.0, 0.5, 256, "px", "smoothness of that field (Gaussian width)"),
        "fine_alpha": ("float", 0.0, 0, 1000, "scipy alpha",
                       "a second, finer displacement field (hairy stroke edges); 0: none"),
        "fine_sigma": ("float", 2.0, 0.5, 256, "px", "smoothness of the fine field"),
        "shear_x_period": ("float", 10.0, 1, 10000, "px per cycle",
                           "rows per cycle of the horizontal wave dx(y) = A sin(2 pi y / P + phase)"),
        "shear_x_amplitude": ("float", 0.0, -100, 100, "px", "A of that wave; 0: none"),
        "shear_y_period": ("float", 10.0, 1, 10000, "px per cycle",
                           "columns per cycle of the vertical wave dy(x) = A sin(2 pi x / P + phase)"),
        "shear_y_amplitude": ("float", 0.0, -100, 100, "px", "A of that wave; 0: none"),
    },
    "ink": {
        "background": ("int", 255, 0, 255, "grey level", "background colour (0 black, 255 white)"),
        "ink": ("int", 0, 0, 255, "grey level", "text and stroke colour"),
        "ink_opacity": ("float", 1.0, 0, 1, "fraction", "how far ink covers the background (1: opaque)"),
        "blur_sigma": ("float", 0.0, 0, 8, "px", "Gaussian blur after warping"),
        "noise_sigma": ("float", 0.0, 0, 128, "grey levels", "Gaussian pixel noise (standard deviation)"),
    },
    "clutter": {
        "strokes": ("int", 0, 0, 64, "per image", "anti-aliased bent strokes in ink"),
        "stroke_width": ("float", 1.0, 0.1, 32, "px", "stroke width"),
        "stroke_length": ("float", 60.0, 1, 4096, "px", "stroke length (bent by up to 0.4 of it)"),
        "stroke_angle": ("float", [-180.0, 180.0], -360, 360, "degrees", "stroke direction from horizontal"),
        "stroke_y": ("float", [0.0, 1.0], 0, 1, "fraction of height", "stroke start height"),
        "ellipses": ("int", 0, 0, 64, "per image", "ellipse outlines in background colour"),
        "ellipse_width": ("float", 1.0, 0.1, 32, "px", "outline width"),
        "ellipse_radius": ("float", 10.0, 1, 4096, "px", "radius, drawn separately for each axis"),
        "dots": ("int", 0, 0, 512, "per image", "ink dots"),
        "dot_radius": ("float", 1.0, 0.1, 32, "px", "dot radius"),
        "dashes": ("int", 0, 0, 512, "per image", "short straight dashes in background colour (they cut the text)"),
        "dash_length": ("float", 2.0, 0, 4096, "px", "length of a dash's centre line (round caps add half its width)"),
        "dash_width": ("float", 2.0, 0.1, 32, "px", "dash width"),
        "dash_angle": ("float", [-180.0, 180.0], -360, 360, "degrees", "dash direction from horizontal"),
        "ghosts": ("int", 0, 0, 8, "per image",
                   "the text's outline, shifted, in background colour (cuts white lines into the letters)"),
        "ghost_shift": ("float", 2.0, 0, 64, "px", "how far, in a uniform direction (rounded)"),
        "ghost_width": ("float", 1.0, 0.1, 8, "px", "outline width"),
        "ghost_dark": ("float", 0.0, 0, 1, "probability", "an outline is drawn in ink instead (a doubled edge)"),
        "drips": ("int", 0, 0, 64, "per image", "short strokes hanging from the lowest ink of a random text column"),
        "drip_length": ("float", 10.0, 1, 4096, "px", "drip length"),
        "drip_width": ("float", 1.0, 0.1, 32, "px", "drip width"),
        "drip_angle": ("float", [60.0, 120.0], -360, 360, "degrees", "drip direction; 90 hangs straight down"),
    },
}
# Fixed values that widening a style's nuisance prior leaves alone: colours and the characters' shape.
_KEPT_WHEN_FIXED = ("background", "ink", "ink_opacity", "char_scale", "char_stretch", "char_fill", "char_space")
# [text]: the string prior (synthstream/text.py). kind "choice" takes one of the listed strings.
_TEXT_CHOICES = {"prior": ("chars", "words"), "case": ("lower", "upper", "as-is")}
_TEXT_DEFAULTS = {"prior": "chars", "words": 2, "word_length": [1, MAX_CHARS], "word_list": None,
                  "case": "lower", "not_first": "", "doubled_ends": True, "count_duplicates": False, "sha256": ""}
# "fit": how `synthstream fit` may change the style (trainer/fit/space.py reads and checks it); not part of the style
_TOP = {"name", "description", "height", "width", "alphabet", "fonts", "text", "fit", *_FIELDS}


def field_table() -> dict[str, dict[str, tuple[str, Any, float, float, str, str]]]:
    """The section fields as (kind, default, lo, hi, unit, doc), in file order (docs/styles.md is made from it)."""
    return {section: {key: (*spec[:4], *(*spec[4:], "", "")[:2]) for key, spec in fields.items()}
            for section, fields in _FIELDS.items()}


@dataclass(frozen=True)
class FontSpec:
    file: str                 # file name searched for on the system, e.g. "FreeMonoBoldOblique.ttf"
    package: str = ""         # Debian package that ships it, named in the error when it is missing
    module: str = ""          # or a Python package (a dependency) whose installed files include it


@dataclass(frozen=True, eq=False)
class Style:
    """A validated style. `params[section][key]` holds (lo, hi) ranges, "center" or a bool; `params["text"]`
    the string prior's settings. Equal and hashed by its canonical raw form."""

    name: str
    height: int
    width: int
    alphabet: str
    fonts: tuple[FontSpec, ...]
    params: dict[str, dict[str, Any]]
    description: str = ""
    source: str = field(default="", compare=False)    # where it was read from, for messages

    @functools.cached_property
    def canonical(self) -> str:
        """The raw form as sorted JSON: the style's identity."""
        return json.dumps(self.to_raw(), sort_keys=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Style) and self.canonical == other.canonical

    def __hash__(self) -> int:
        return hash(self.canonical)

    def __reduce__(self):
        return parse_style, (self.to_raw(), self.source)

    def latent_range(self, key: str) -> tuple[int, int]:
        lo, hi = self.params["latents"][key]
        return int(lo), int(hi)

    @property
    def max_chars(self) -> int:
        return self.latent_range("num_chars")[1]

    @property
    def font_sizes(self) -> list[int]:
        lo, hi = self.latent_range("font_size")
        return list(range(lo, hi + 1))

    def widened(self, scale: float) -> Style:
        """The same style with every nuisance range widened `scale` times about its centre (clipped to the
        field's bounds); a fixed magnitude v (a warp strength, a blur) becomes [v (1 - (scale - 1) / 2),
        v (1 + (scale - 1) / 2)], while fixed colours and character shapes stay fixed. Traced latents keep their
        supports (the network's heads depend on them). scale 1 is the style itself."""
        if not 0.1 <= scale <= 10:
            raise UserError(f"prior scale {scale!r} must be in [0.1, 10]")
        if scale == 1:
            return self
        raw = self.to_raw()
        for section in ("layout", "warp", "ink", "clutter"):
            for key, (kind, _, lo_bound, hi_bound, *_) in _FIELDS[section].items():
                value = raw[section][key]
                if kind not in ("int", "float", "pos") or not isinstance(value, list):
                    continue
                lo, hi = value
                if lo == hi and key in _KEPT_WHEN_FIXED:
                    continue
                centre, half = (lo + hi) / 2, (hi - lo) / 2
                half = half * scale if half > 0 else abs(centre) * (scale - 1) / 2
                new = [max(lo_bound, centre - half), min(hi_bound, centre + half)]
                if kind in ("int", "pos"):
                    new = [int(round(new[0])), int(round(new[1]))]
                if key.endswith("sigma") and section == "warp":
                    new = [max(new[0], 0.5), max(new[1], 0.5)]
                raw[section][key] = new if new[0] <= new[1] else [lo, hi]
        raw["description"] = f"{self.description} (nuisance prior widened x{scale:g})"
        return parse_style(raw, f"{self.source} x{scale:g}")

    def to_raw(self) -> dict:
        """The style as a plain, JSON-able dict in the file's own layout: `parse_style(s.to_raw())` gives
        the style back. Travels to remote actors, schema metadata and checkpoints."""
        raw: dict = {"name": self.name, "description": self.description, "height": self.height,
                     "width": self.width, "alphabet": self.alphabet,
                     "fonts": [{"file": f.file, "package": f.package, **({"module": f.module} if f.module else {})}
                               for f in self.fonts]}
        for section, values in self.params.items():
            raw[section] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
        if raw["text"]["word_list"] is not None:
            file, package = raw["text"]["word_list"]
            raw["text"]["word_list"] = {"file": file, "package": package}
        return raw


def builtin_styles() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("synthstream.styles").iterdir() if p.name.endswith(".toml"))


def load_style(name_or_path: str | Path) -> Style:
    """A built-in style by name, or a style file by path. Raises UserError naming what is wrong."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise UserError(f"style file {text!r} {_not_a_file(path)}")
        try:
            raw_text, source = path.read_text(encoding="utf-8-sig"), str(path)    # a BOM (Windows editors) is fine
        except UnicodeDecodeError as e:
            raise UserError(f"style file {text!r} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                            f"{e.start})") from None
        except OSError as e:
            raise UserError(f"style file {text!r} cannot be read ({e.strerror})") from None
    else:
        available = builtin_styles()
        if text not in available:
            raise UserError(f"unknown style {text!r}; available: {', '.join(available)} (or a path to a .toml file)")
        raw_text = resources.files("synthstream.styles").joinpath(f"{text}.toml").read_text()
        source = f"builtin:{text}"
    try:
        raw = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"style {source}: not valid TOML: {e}") from None
    return parse_style(raw, source)


def _not_a_file(path: Path) -> str:
    """Why `path` is not a style file, for "style file 'x' ...": missing, a folder, a link loop, a FIFO."""
    try:
        path.stat()
    except FileNotFoundError:
        return "does not exist" + (" (a symbolic link to a missing file)" if path.is_symlink() else "")
    except OSError as e:
        return f"cannot be read ({e.strerror}{': a symbolic link loop' if e.errno == 40 else ''})"
    return "is a directory; give the .toml file" if path.is_dir() else "is not a regular file"


def parse_style(raw: dict, source: str = "<dict>") -> Style:
    """Validate a style dict (as read from TOML)."""

    def bad(field_name: str, value: Any, why: str) -> UserError:
        return UserError(f"style {source}: field {field_name} = {value!r}: {why}")

    unknown = set(raw) - _TOP
    if unknown:
        k = sorted(unknown)[0]
        raise bad(k, raw[k], f"unknown field; known: {', '.join(sorted(_TOP))}")
    for req in ("name", "height", "width", "alphabet", "fonts", "latents"):
        if req not in raw:
            raise UserError(f"style {source}: missing required field {req!r}")
    name = raw["name"]
    if not isinstance(name, str) or not name.isidentifier():
        raise bad("name", name, "must be an identifier-like string")
    for side in ("height", "width"):
        v = raw[side]
        if not isinstance(v, int) or isinstance(v, bool) or not 8 <= v <= MAX_SIDE:
            raise bad(side, v, f"must be an integer in [8, {MAX_SIDE}]")
    alphabet = raw["alphabet"]
    if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
        raise bad("alphabet", alphabet, "must be a non-empty string of distinct characters")
    if len(alphabet) > 127:
        raise bad("alphabet", alphabet, "at most 127 characters")
    blank = [c for c in alphabet if c.isspace() or not c.isprintable() or unicodedata.category(c) in ("Cf", "Zs")]
    if blank:
        raise bad("alphabet", alphabet, f"character {blank[0]!r} (U+{ord(blank[0]):04X}) draws no ink, so its "
                  f"captchas would be blank where it is; remove it")
    fonts_raw = raw["fonts"]
    if not isinstance(fonts_raw, list) or not fonts_raw:
        raise bad("fonts", fonts_raw, "must be a non-empty list of {file = ..., package = ...} tables")
    fonts = []
    for i, f in enumerate(fonts_raw):
        if isinstance(f, str):
            f = {"file": f}
        if not isinstance(f, dict) or not isinstance(f.get("file"), str) or set(f) - {"file", "package", "module"}:
            raise bad(f"fonts[{i}]", f, "must be a table with 'file' (and optional 'package' or 'module')")
        fonts.append(FontSpec(file=f["file"], package=str(f.get("package", "")), module=str(f.get("module", ""))))

    params: dict[str, dict[str, Any]] = {}
    for section, spec in _FIELDS.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise bad(section, given, "must be a table")
        extra = set(given) - set(spec)
        if extra:
            k = sorted(extra)[0]
            raise bad(f"{section}.{k}", given[k], f"unknown field; known: {', '.join(spec)}")
        out = {}
        for key, (kind, default, lo_bound, hi_bound, *_) in spec.items():
            fname = f"{section}.{key}"
            value = given.get(key, default)
            if value is None:
                raise UserError(f"style {source}: missing required field {fname!r}")
            out[key] = _parse_value(fname, value, kind, lo_bound, hi_bound, bad)
        params[section] = out

    params["text"] = _parse_text(raw.get("text", {}), bad)
    s_lo, s_hi = params["latents"]["font_size"]
    if s_hi > raw["height"] * 2:
        raise bad("latents.font_size", [s_lo, s_hi], f"font far taller than the image height {raw['height']}")
    for key in ("elastic_sigma", "fine_sigma"):
        if params["warp"][key][0] <= 0:
            raise bad(f"warp.{key}", params["warp"][key], "must be > 0")
    style = Style(name=name, height=raw["height"], width=raw["width"], alphabet=alphabet, fonts=tuple(fonts),
                  params=params, description=str(raw.get("description", "")), source=source)
    if params["text"]["prior"] == "words":
        from synthstream.text import text_prior  # reads the word list; pins its digest into the style
        params["text"]["sha256"] = text_prior(style).digest
    return style


def _parse_text(given: Any, bad) -> dict[str, Any]:
    """The [text] table: which string prior, and its settings (see synthstream/text.py)."""
    if not isinstance(given, dict):
        raise bad("text", given, "must be a table")
    extra = set(given) - set(_TEXT_DEFAULTS)
    if extra:
        k = sorted(extra)[0]
        raise bad(f"text.{k}", given[k], f"unknown field; known: {', '.join(_TEXT_DEFAULTS)}")
    out = {**_TEXT_DEFAULTS, **given}
    for key, choices in _TEXT_CHOICES.items():
        if out[key] not in choices:
            raise bad(f"text.{key}", out[key], f"must be one of {', '.join(map(repr, choices))}")
    out["words"] = _parse_value("text.words", out["words"], "count", 1, 4, bad)
    out["word_length"] = _parse_value("text.word_length", out["word_length"], "int", 1, MAX_CHARS, bad)
    if not isinstance(out["not_first"], str):
        raise bad("text.not_first", out["not_first"], "must be a string of the letters no word may start with")
    if not isinstance(out["doubled_ends"], bool):
        raise bad("text.doubled_ends", out["doubled_ends"], "must be true or false")
    if not isinstance(out["count_duplicates"], bool):
        raise bad("text.count_duplicates", out["count_duplicates"], "must be true or false")
    if out["prior"] != "words":
        for key in ("not_first", "doubled_ends", "count_duplicates"):
            if out[key] != _TEXT_DEFAULTS[key]:
                raise bad(f"text.{key}", out[key], "only a 'words' prior reads a word list")
    if not isinstance(out["sha256"], str):
        raise bad("text.sha256", out["sha256"], "must be a hex string")
    wl = out["word_list"]
    if out["prior"] == "words":
        if isinstance(wl, str):
            wl = {"file": wl}
        if not isinstance(wl, dict) or not isinstance(wl.get("file"), str) or set(wl) - {"file", "package"}:
            raise bad("text.word_list", wl, "must be a table with 'file' (a path or a name in /usr/share/dict) "
                      "and optional 'package'")
        out["word_list"] = (wl["file"], str(wl.get("package", "")))
    elif wl is not None:
        raise bad("text.word_list", wl, "only a 'words' prior takes a word list")
    return out


def _parse_value(fname: str, value: Any, kind: str, lo_bound: float, hi_bound: float, bad) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad(fname, value, "must be true or false")
        return value
    if kind == "pos" and value == "center":
        return "center"
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int) or not lo_bound <= value <= hi_bound:
            raise bad(fname, value, f"must be an integer in [{lo_bound}, {hi_bound}]")
        return value
    pair = value if isinstance(value, list) else [value, value]
    want_int = kind in ("int", "pos")
    ok_types = (int,) if want_int else (int, float)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, ok_types) for v in pair):
        what = "an integer or [lo, hi] of integers" if want_int else "a number or [lo, hi]"
        if kind == "pos":
            what += ' or "center"'
        raise bad(fname, value, f"must be {what}")
    lo, hi = pair
    if lo > hi:
        raise bad(fname, value, "lo must not exceed hi")
    if lo < lo_bound or hi > hi_bound or (isinstance(lo, float) and not math.isfinite(lo)) or (
            isinstance(hi, float) and not math.isfinite(hi)):
        raise bad(fname, value, f"must lie within [{lo_bound}, {hi_bound}]")
    return (int(lo), int(hi)) if want_int else (float(lo), float(hi))
