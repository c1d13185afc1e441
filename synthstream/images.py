"""The one image reader: every path that loads a user's image file (infer, eval, fidelity, sample --real, the
Python API) goes through `read_grey`, so they all see the same pixels.

Every image becomes grey uint8 the way a style would have drawn it:
- only regular files are opened (a FIFO or device named `x.png` would block the reader forever);
- the EXIF orientation of a photo is applied as image viewers do (PIL's `ImageOps.exif_transpose`);
- 16-bit and 32-bit greyscale are scaled by their value range (not clipped at 255); a float image with NaN
  pixels is refused (there is no honest grey for them);
- anything with transparency (RGBA, LA, palette or greyscale with a transparent colour) is composited on the
  style's background level; palette and colour images go through their luma;
- more than MAX_PIXELS pixels is refused from the header, before any pixel is decoded.
A file that cannot be used raises UnreadableImage, whose message is the one-line reason. `fit_to` resizes
(bilinear) to a style's width x height and says so. No torch here: this is the data layer.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from synthstream.errors import UserError
from synthstream.labelled import IMAGE_SUFFIXES, folder_images

MAX_PIXELS = 4096 * 4096           # a captcha is ~10^4 pixels; this bounds the memory one file can take
SUFFIXES = IMAGE_SUFFIXES
_EXIF_ORIENTATION = 0x0112


class UnreadableImage(ValueError):
    """A file that cannot be used as an image; the message is the one-line reason."""


def background_level(style) -> float:
    """The grey level a style paints behind the text (the centre of its `ink.background` range)."""
    lo, hi = style.params["ink"]["background"]
    return (float(lo) + float(hi)) / 2


def open_regular(path: str | Path):
    """A binary file object for `path`, refusing (UnreadableImage) anything but a regular file. Opened
    non-blocking first, so a FIFO is refused instead of waiting for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except IsADirectoryError:
        raise UnreadableImage("a directory") from None
    except FileNotFoundError:
        raise UnreadableImage("no such file") from None
    except OSError as e:
        raise UnreadableImage(f"cannot be opened ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket")
        raise UnreadableImage(f"not a regular file ({kind})")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_grey(path: str | Path, background: float = 255.0, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file as grey uint8 [H, W] (see the module doc). Raises UnreadableImage with the reason."""
    with open_regular(path) as f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own bound is lower
                with Image.open(f) as im:
                    w, h = im.size
                    if w * h > max_pixels:
                        raise UnreadableImage(f"too large ({w}x{h} pixels; at most {max_pixels} are read)")
                    im.load()
                    return to_grey(upright(im), background)
        except UnreadableImage:
            raise
        except UnidentifiedImageError:
            raise UnreadableImage("not an image") from None
        except Image.DecompressionBombError as e:
            raise UnreadableImage(f"too large ({str(e)[:80]})") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
            raise UnreadableImage(f"unreadable ({(str(e) or type(e).__name__)[:80]})") from None


def upright(im: Image.Image) -> Image.Image:
    """The image as a viewer shows it: its EXIF orientation (1-8) applied."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):        # a damaged EXIF block: the pixels as stored
        return im
    return ImageOps.exif_transpose(im) if orientation not in (1, None) else im


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
    """16/32-bit integer or float grey to uint8, scaled by the range its values can take. NaN is refused."""
    if a.dtype.kind == "f":
        a = a.astype(np.float64)
        nan = int(np.isnan(a).sum())
        if nan:
            raise UnreadableImage(f"{nan} of its {a.size} pixels are NaN (not a number)")
        scale = 255.0 if np.max(a, initial=0.0) <= 1.0 else 1.0     # floats in 0..1 or in 0..255
        return np.clip(np.rint(a * scale), 0, 255).astype(np.uint8)
    top = int(a.max(initial=0))
    if a.dtype.itemsize == 2 or 255 < top <= 65535:
        full = 65535.0            # 16-bit (Pillow opens 16-bit PNGs as I;16, or as I with values < 65536)
    elif top <= 255:
        full = 255.0              # 8-bit values held in a 32-bit image
    else:
        full = float(2 ** 31 - 1)
    return np.clip(np.rint(a.astype(np.float64) * (255.0 / full)), 0, 255).astype(np.uint8)


def array_to_grey(a: np.ndarray, background: float = 255.0) -> np.ndarray:
    """A numpy image as grey uint8 [H, W]: grey [H, W] of any integer or float depth, or uint8 colour [H, W, 3|4]
    (alpha composited on `background`)."""
    if a.ndim == 2 and a.dtype == np.uint8:
        return a
    if a.ndim == 3 and a.shape[2] in (3, 4) and a.dtype == np.uint8:
        return to_grey(Image.fromarray(a, "RGB" if a.shape[2] == 3 else "RGBA"), background)
    if a.ndim == 2 and a.dtype.kind in "uif":
        return _wide_to_grey(a)
    raise UnreadableImage(f"array of shape {a.shape} and dtype {a.dtype}: give grey [H, W] or uint8 colour "
                          f"[H, W, 3|4]")


def fit_to(grey: np.ndarray, width: int, height: int) -> tuple[np.ndarray, str]:
    """The image at width x height (bilinear), and a note when it had to be resized ("" otherwise)."""
    h, w = grey.shape
    if (w, h) == (width, height):
        return grey, ""
    resized = np.asarray(Image.fromarray(grey).resize((width, height), Image.BILINEAR), np.uint8)
    return resized, f"resized from {w}x{h} to {width}x{height}"


def read_folder(directory: str | Path, flag: str, background: float = 255.0, limit: int | None = None,
                skipped: Callable[[Path, str], None] | None = None) -> list[tuple[Path, np.ndarray]]:
    """(path, grey) for the first `limit` readable image files of a folder, sorted by name.

    An unreadable file goes to `skipped(path, why)`; without `skipped` it is one UserError naming it (a set
    whose statistics are reported is not silently thinned). A folder without images is one UserError."""
    files = folder_images(Path(directory), flag)
    out = []
    for path in files:
        if limit is not None and len(out) == limit:
            break
        try:
            out.append((path, read_grey(path, background)))
        except UnreadableImage as e:
            if skipped is None:
                raise UserError(f"{flag}: {str(path)!r} is not a readable image ({e}); remove it") from None
            skipped(path, str(e))
    return out
