"""Reading captcha images from disk for inference and evaluation, one clear line per problem.

The pixels come from the one image reader, `synthstream.images` (regular files only, EXIF orientation, 16-bit
and float ranges, transparency on the style's background, a size bound); its names are re-exported here for
the modules that import them from this one. An image whose size differs from the style's is resized
(bilinear) to the style's width x height, and the result says so. Anything that is not a readable image is
rejected with a note instead of stopping the run. Labelled folders (labels.csv or file names) are read by
`synthstream.labelled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthstream.images import (  # noqa: F401 - re-exported names other modules import from here
    MAX_PIXELS,
    UnreadableImage,
    _wide_to_grey,
    background_level,
    fit_to,
    read_grey,
    to_grey,
)
from synthstream.labelled import IMAGE_SUFFIXES, read_labelled_folder
from synthstream.style import Style

SUFFIXES = IMAGE_SUFFIXES          # kept for callers of the old name


@dataclass
class Loaded:
    path: Path
    image: np.ndarray | None       # uint8 [H, W] at the style's size, None when rejected
    label: str | None = None
    note: str = ""                 # "resized from 120x40", or why it was rejected
    in_support: bool = True        # False when the label is a string the style can never draw


def load_image(path: Path, style: Style) -> Loaded:
    try:
        grey = read_grey(path, background_level(style))
    except UnreadableImage as e:
        return Loaded(path, None, note=str(e))
    grey, note = fit_to(grey, style.width, style.height)
    return Loaded(path, grey, note=note)


def load_paths(paths: list[str], style: Style) -> list[Loaded]:
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.append(Loaded(path, None, note="a directory (use `synthstream eval --data DIR`)"))
        else:
            out.append(load_image(path, style))
    return out


def load_labelled_dir(directory: str, style: Style) -> list[Loaded]:
    """Every image in a folder with its label (labels.csv if present, else the file name)."""
    out = []
    for path, label in read_labelled_folder(directory, "--data"):
        item = load_image(path, style)
        item.label = label
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
