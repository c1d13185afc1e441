"""Find a style's font files on this machine, by file name, without hard-coded paths.

Search order: directories in $SYNTHSTREAM_FONT_PATH (os.pathsep-separated), then the system's font
directories as matplotlib's font manager finds them (fontconfig where present, else the standard dirs).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from synthstream.errors import UserError
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
            if path.suffix.lower() in _FONT_SUFFIXES:
                found.setdefault(path.name, str(path))
    return found


def find_font(spec: FontSpec, style_name: str = "") -> str:
    """The path of a font file. Raises UserError naming the file and how to install it."""
    path = _user_fonts().get(spec.file) or _system_fonts().get(spec.file)
    if path:
        return path
    how = f"install the Debian package {spec.package} (apt-get install {spec.package})" if spec.package else \
        "install it"
    of = f" (style {style_name!r})" if style_name else ""
    raise UserError(f"font {spec.file!r}{of} not found: {how}, or put the file in a directory listed in "
                    f"SYNTHSTREAM_FONT_PATH")
