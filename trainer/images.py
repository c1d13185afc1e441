"""Reading captcha images from disk for inference and evaluation, one clear line per problem.

Images are converted to grey ("L"). An image whose size differs from the style's is resized (bilinear) to
the style's width x height, and the result says so; anything that is not a readable image is rejected.
Labels come from file names (without the extension) or from a labels.csv (file,label) in the folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthstream.errors import UserError
from synthstream.style import Style

SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


@dataclass
class Loaded:
    path: Path
    image: np.ndarray | None       # uint8 [H, W] at the style's size, None when rejected
    label: str | None = None
    note: str = ""                 # "resized from 120x40", or why it was rejected
    in_support: bool = True        # False when the label is a string the style can never draw


def load_image(path: Path, style: Style) -> Loaded:
    try:
        with Image.open(path) as im:
            im.load()
            grey = im.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        why = "not an image" if isinstance(e, UnidentifiedImageError) else f"unreadable ({str(e)[:80]})"
        return Loaded(path, None, note=why)
    note = ""
    if grey.size != (style.width, style.height):
        note = f"resized from {grey.size[0]}x{grey.size[1]} to {style.width}x{style.height}"
        grey = grey.resize((style.width, style.height), Image.BILINEAR)
    return Loaded(path, np.asarray(grey, dtype=np.uint8), note=note)


def load_paths(paths: list[str], style: Style) -> list[Loaded]:
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            out.append(Loaded(path, None, note="no such file"))
        elif path.is_dir():
            out.append(Loaded(path, None, note="a directory (use `synthstream eval --data DIR`)"))
        else:
            out.append(load_image(path, style))
    return out


def load_labelled_dir(directory: str, style: Style) -> list[Loaded]:
    """Every image in a folder with its label (labels.csv if present, else the file name)."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"--data {directory!r} is not a directory")
    labels: dict[str, str] = {}
    csv_path = d / "labels.csv"
    if csv_path.exists():
        with csv_path.open(newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 2 and row[0] != "file":
                    labels[row[0]] = row[1]
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise UserError(f"--data {directory!r} holds no images ({', '.join(SUFFIXES)})")
    out = []
    for path in files:
        item = load_image(path, style)
        item.label = labels.get(path.name, path.stem)
        if item.image is not None:
            why = outside_support(item.label, style)
            if why:
                item.in_support, item.note = False, why
        out.append(item)
    return out


def outside_support(label: str, style: Style) -> str:
    """Why the style can never produce this label ("" if it can)."""
    bad = sorted(set(c for c in label if c not in style.alphabet))
    lo, hi = style.latent_range("num_chars")
    if bad:
        return f"label {label!r} has characters outside the style's alphabet: {''.join(bad)!r}"
    if not lo <= len(label) <= hi:
        return f"label {label!r} has {len(label)} characters; the style draws {lo}-{hi}"
    return ""
