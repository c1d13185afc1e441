"""Sample grids: synthetic tiles with their labels, optionally beside real captchas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_H = 14
PAD = 4


def load_real(directory: str | Path, limit: int, background: float = 255.0,
              skipped=None) -> list[tuple[np.ndarray, str]]:
    """Up to `limit` real captchas (grey uint8 by `synthstream.images`, label from labels.csv or the file
    name), sorted by name.

    Files that cannot be read as images are skipped: each is passed to `skipped(path, why)`, by default
    one `synthstream: skipped ...` line on stderr. A folder with no readable image is one UserError.
    """
    from synthstream.errors import UserError
    from synthstream.images import UnreadableImage, read_grey
    from synthstream.labelled import read_labelled_folder

    items, problems = [], []
    for path, label in read_labelled_folder(directory, "--real"):
        if len(items) == limit:
            break
        try:
            items.append((read_grey(path, background), label))
        except UnreadableImage as e:
            problems.append((path, str(e)))
    if not items:
        path, why = problems[0]
        more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
        raise UserError(f"--real {str(directory)!r} holds no readable image ({path.name}: {why}{more})")
    for path, why in problems:
        (skipped or _note_skipped)(path, why)
    return items


def _note_skipped(path: Path, why: str) -> None:
    import sys
    print(f"synthstream: skipped --real file {str(path)!r}: {why}", file=sys.stderr)


def make_grid(tiles: list[tuple[np.ndarray, str]], columns: int,
              real: list[tuple[np.ndarray, str]] = ()) -> Image.Image:
    """A grid PNG: each tile with its label underneath. With `real`, each row is real | synthetic."""
    if real:
        rows = []
        for i in range(max(len(real), (len(tiles) + columns - 1) // columns)):
            rows.append(([real[i]] if i < len(real) else [None]) + list(tiles[i * columns:(i + 1) * columns]))
    else:
        rows = [list(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    all_tiles = [t for r in rows for t in r if t is not None]
    th = max(t[0].shape[0] for t in all_tiles)
    tw = max(t[0].shape[1] for t in all_tiles)
    ncol = max(len(r) for r in rows)
    sheet = Image.new("L", (ncol * (tw + PAD) + PAD, len(rows) * (th + LABEL_H + PAD) + PAD), 200)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile is None:
                continue
            img, label = tile
            x, y = PAD + c * (tw + PAD), PAD + r * (th + LABEL_H + PAD)
            sheet.paste(Image.fromarray(img), (x, y))
            tag = f"real: {label}" if real and c == 0 else label
            draw.text((x + 2, y + th + 1), tag, fill=0, font=font)
    return sheet
