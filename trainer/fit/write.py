"""A fitted style as a commented TOML file a person can read, edit and load again (`--style FILE`)."""

from __future__ import annotations

import json
from typing import Any

from synthstream.style import _FIELDS, Style

SECTIONS = ("latents", "layout", "warp", "ink", "clutter")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def style_toml(style: Style, notes: dict[str, str], header: list[str], fit_table: dict | None = None) -> str:
    """The style's TOML: every field of the render sections, each commented with `notes[dotted name]` (how the
    fit treated it), after `header` comment lines; `fit_table` (the input's [fit]) is kept so a re-fit
    treats the same fields the same way."""
    raw = style.to_raw()
    lines = [f"# {h}" for h in header]
    for key in ("name", "description", "height", "width", "alphabet"):
        lines.append(f"{key} = {_value(raw[key])}")
    note = notes.get("fonts", "")
    lines.append("fonts = [" + (f"   # {note}" if note else ""))
    lines += [f"    {_value(f)}," for f in raw["fonts"]]
    lines.append("]")
    text = {k: v for k, v in raw["text"].items() if v is not None}
    lines += ["", "[text]" + (f"   # {notes['text.case']}" if "text.case" in notes else "")]
    lines += [f"{k} = {_value(v)}" for k, v in text.items() if not (k == "sha256" and not v)]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for key in _FIELDS[section]:
            value = raw[section][key]
            if isinstance(value, list) and value[0] == value[1]:
                value = value[0]
            note = notes.get(f"{section}.{key}", "")
            lines.append(f"{key} = {_value(value)}" + (f"   # {note}" if note else ""))
    if fit_table:
        lines += ["", "[fit]"] + [f"{_key(k)} = {_value(v)}" for k, v in fit_table.items()]
    return "\n".join(lines) + "\n"
