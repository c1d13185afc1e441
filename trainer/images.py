"""Reading captcha images from disk for inference and evaluation, one clear line per problem.

Every image becomes grey uint8 the way the style would have drawn it: 16-bit and 32-bit greyscale are scaled
by their value range (not clipped at 255), anything with transparency (RGBA, LA, palette or greyscale with a
transparent colour) is composited on the style's background level, palette and colour images go through
their luma. An image whose size differs from the style's is resized (bilinear) to the style's width x height,
and the result says so. Anything that is not a readable image, or has more than MAX_PIXELS pixels (refused
from its header, before any pixel is decoded), is rejected with a note instead of stopping the run.
Labelled folders (labels.csv or file names) are read by `synthstream.labelled`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from synthstream.labelled import IMAGE_SUFFIXES, read_labelled_folder
from synthstream.style import Style

SUFFIXES = IMAGE_SUFFIXES          # kept for callers of the old name
MAX_PIXELS = 4096 * 4096           # a captcha is ~10^4 pixels; this bounds the memory one file can take


@dataclass
class Loaded:
    path: Path
    image: np.ndarray | None       # uint8 [H, W] at the style's size, None when rejected
    label: str | None = None
    note: str = ""                 # "resized from 120x40", or why it was rejected
    in_support: bool = True        # False when the label is a string the style can never draw


class UnreadableImage(ValueError):
    """A file that cannot be used as an image; the message is the one-line reason."""


def background_level(style: Style) -> float:
    """The grey level a style paints behind the text (the centre of its `ink.background` range)."""
    lo, hi = style.params["ink"]["background"]
    return (float(lo) + float(hi)) / 2


def read_grey(path: Path, background: float = 255.0, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file as grey uint8 [H, W] (see the module doc). Raises UnreadableImage with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own bound is lower
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UnreadableImage(f"too large ({w}x{h} pixels; at most {max_pixels} are read)")
                im.load()
                return to_grey(im, background)
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        raise UnreadableImage("not an image") from None
    except Image.DecompressionBombError as e:
        raise UnreadableImage(f"too large ({str(e)[:80]})") from None
    except IsADirectoryError:
        raise UnreadableImage("a directory") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise UnreadableImage(f"unreadable ({(str(e) or type(e).__name__)[:80]})") from None


def to_grey(im: Image.Image, background: float = 255.0) -> np.ndarray:
    """A decoded PIL image as grey uint8 [H, W]: by value range, transparency composited on `background`."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_to_grey(np.asarray(im))
    has_alpha = "A" in im.mode or "a" in im.mode or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")              # honours palette alpha and tRNS colour keys
        luma = np.asarray(rgba.convert("L"), dtype=np.float32)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        grey = luma * alpha + np.float32(background) * (1.0 - alpha)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")                 # palette, 1-bit, CMYK, YCbCr, ...
    return np.asarray(im.convert("L"), dtype=np.uint8)


def _wide_to_grey(a: np.ndarray) -> np.ndarray:
    """16/32-bit integer or float grey to uint8, scaled by the range its values can take."""
    if a.dtype.kind == "f":
        a = a.astype(np.float64)
        scale = 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else 1.0     # floats in 0..1 or in 0..255
        return np.clip(np.rint(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8)
    top = int(a.max(initial=0))
    if a.dtype.itemsize == 2 or 255 < top <= 65535:
        full = 65535.0            # 16-bit (Pillow opens 16-bit PNGs as I;16, or as I with values < 65536)
    elif top <= 255:
        full = 255.0              # 8-bit values held in a 32-bit image
    else:
        full = float(2 ** 31 - 1)
    return np.clip(np.rint(a.astype(np.float64) * (255.0 / full)), 0, 255).astype(np.uint8)


def load_image(path: Path, style: Style) -> Loaded:
    try:
        grey = read_grey(path, background_level(style))
    except UnreadableImage as e:
        return Loaded(path, None, note=str(e))
    note = ""
    h, w = grey.shape
    if (w, h) != (style.width, style.height):
        note = f"resized from {w}x{h} to {style.width}x{style.height}"
        grey = np.asarray(Image.fromarray(grey).resize((style.width, style.height), Image.BILINEAR), np.uint8)
    return Loaded(path, grey, note=note)


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
