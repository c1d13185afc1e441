"""Find a style's font files on this machine, by file name, without hard-coded paths.

Search order: directories in $SYNTHSTREAM_FONT_PATH (os.pathsep-separated), then the installed files of the
Python package a style names (`module`, e.g. the `captcha` package's own DroidSansMono), then the system's
font directories as matplotlib's font manager finds them (fontconfig where present, else the standard dirs).

A found file is then checked with FreeType (through Pillow, which renders the glyphs): a file FreeType
cannot open is refused naming the file, and so is a font that lacks a glyph for any character of the
style's alphabet (such characters would render as the font's empty or boxed .notdef glyph, silently).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from synthstream.errors import UserError, not_installed
from synthstream.style import FontSpec

_FONT_SUFFIXES = (".ttf", ".otf", ".ttc")


@functools.lru_cache(maxsize=1)
def _system_fonts() -> dict[str, str]:
    from matplotlib import font_manager  # imported here: it is slow and only needed once

    found: dict[str, str] = {}
    for path in sorted(font_manager.findSystemFonts(fontext="ttf")):
        found.setdefault(Path(path).name, path)
    return found


def _user_fonts() -> dict[str, str]:
    found: dict[str, str] = {}
    for d in filter(None, os.environ.get("SYNTHSTREAM_FONT_PATH", "").split(os.pathsep)):
        for path in sorted(Path(d).rglob("*")):
            if path.suffix.lower() in _FONT_SUFFIXES and path.is_file():    # a FIFO would block FreeType
                found.setdefault(path.name, str(path))
    return found


@functools.lru_cache(maxsize=8)
def _module_fonts(module: str) -> dict[str, str]:
    """The font files among a Python package's installed files (none if it is not installed)."""
    from importlib import metadata

    try:
        files = metadata.files(module) or []
    except metadata.PackageNotFoundError:
        return {}
    found: dict[str, str] = {}
    for f in sorted(files, key=str):
        if Path(str(f)).suffix.lower() in _FONT_SUFFIXES:
            found.setdefault(f.name, str(f.locate()))
    return found


def find_font(spec: FontSpec, style_name: str = "") -> str:
    """The path of a font file. Raises UserError naming the file and how to install it."""
    path = (_user_fonts().get(spec.file) or (spec.module and _module_fonts(spec.module).get(spec.file))
            or _system_fonts().get(spec.file))
    if path:
        return path
    raise not_installed("font", spec.file, spec.package, style_name, "SYNTHSTREAM_FONT_PATH", spec.module)


# A character no font maps (U+10FFFF is a Unicode noncharacter), so it always renders as .notdef.
_NEVER_MAPPED = "\U0010ffff"
_PROBE_SIZE = 48


@functools.lru_cache(maxsize=64)
def missing_glyphs(path: str, alphabet: str) -> str:
    """The characters of `alphabet` that the font at `path` has no glyph for (FreeType falls back to .notdef).

    A character is missing when it renders exactly like a never-mapped character: the same bitmap and the
    same advance. Whitespace is not checked (a real space is as empty as many fonts' .notdef). Raises
    UserError naming the file if FreeType cannot read it.
    """
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(path, _PROBE_SIZE)
    except (OSError, ValueError) as e:
        raise UserError(f"font file {path!r} cannot be read by FreeType ({str(e)[:80]}): it is corrupt or not "
                        f"a font; reinstall it or remove it") from None

    def rendering(char: str) -> tuple:
        mask = font.getmask(char)
        return mask.size, bytes(mask), font.getlength(char)

    try:
        notdef = rendering(_NEVER_MAPPED)
        return "".join(c for c in dict.fromkeys(alphabet) if not c.isspace() and rendering(c) == notdef)
    except (OSError, ValueError) as e:
        raise UserError(f"font file {path!r} cannot be rendered by FreeType ({str(e)[:80]})") from None


@functools.lru_cache(maxsize=64)
def blank_glyphs(path: str, alphabet: str) -> str:
    """The characters of `alphabet` that the font at `path` draws as nothing (no ink at all), e.g. a space."""
    from PIL import ImageFont

    font = ImageFont.truetype(path, _PROBE_SIZE)
    return "".join(c for c in dict.fromkeys(alphabet) if not any(bytes(font.getmask(c))))


def checked_font(spec: FontSpec, alphabet: str, style_name: str = "") -> str:
    """find_font, then refuse a file FreeType cannot read or one lacking glyphs for the style's alphabet."""
    path = find_font(spec, style_name)
    missing = missing_glyphs(path, alphabet)
    if missing:
        of = f"style {style_name!r}: " if style_name else ""
        raise UserError(f"{of}font {path!r} has no glyph for {len(missing)} of the alphabet's characters: "
                        f"{missing!r} ({', '.join(f'U+{ord(c):04X}' for c in missing[:8])}); choose a font "
                        f"that covers them or drop them from the alphabet")
    blank = blank_glyphs(path, alphabet)
    if blank:
        of = f"style {style_name!r}: " if style_name else ""
        raise UserError(f"{of}font {path!r} draws the alphabet's character {blank[0]!r} (U+{ord(blank[0]):04X}) "
                        f"as nothing, so its captchas would be blank there; drop it from the alphabet or choose "
                        f"another font")
    return path
