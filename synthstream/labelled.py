"""Labelled folders (one image per captcha plus its label): the one place that writes and reads them.

Layout: `000000.png, 000001.png, ...` and `labels.csv` (UTF-8, header `file,label`, one row per image, quoted
by the csv module where a label needs it). A folder without labels.csv takes each label from the file name
(without the extension), so a folder of real captchas named after their answers reads as is.

Writing is all-or-nothing: everything goes into a hidden temporary sibling folder that is renamed into place
only when complete, so a full disk or an interrupt leaves the destination as it was.
Reading reports problems instead of guessing: a labels.csv that is not UTF-8, a row with the wrong number of
columns, a row naming a file that is not there, or the same file twice is one UserError naming the rows.
Labels are returned verbatim (any character a file name may hold); escaping is the job of whoever prints them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from synthstream.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
LABELS_FILE = "labels.csv"
HEADER = ("file", "label")
MAX_ROWS_NAMED = 5             # bad rows named in the one error line; the rest are counted


def write_labelled_folder(out: str | Path, images: Sequence[np.ndarray] | np.ndarray, texts: Sequence[str]) -> Path:
    """Write `images` (uint8 [H, W] each) as 000000.png, ... with labels.csv into the folder `out`.

    `out` must not exist or be an empty folder. The files are written into a temporary sibling folder and
    renamed into place when all are complete; on any failure nothing is left behind and UserError says why.
    """
    from PIL import Image

    from synthstream.output import atomic_dir

    out = Path(out)
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} labels")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {str(out)!r} exists and is not an empty folder")

    def fill(tmp: Path) -> None:
        rows = []
        for i, (image, text) in enumerate(zip(images, texts)):
            name = f"{i:06d}.png"
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp / name, format="PNG")
            rows.append((name, text))
        with (tmp / LABELS_FILE).open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(HEADER)
            writer.writerows(rows)

    atomic_dir(out, fill)
    return out


def image_files(directory: Path) -> list[Path]:
    """The image files of a folder (by suffix, hidden files left out), sorted by name."""
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir())


def folder_images(directory: Path, flag: str) -> list[Path]:
    """The folder's image files (image_files); one UserError naming `flag` for a missing or image-less folder."""
    if not directory.is_dir():
        raise UserError(f"{flag} {str(directory)!r} is not a directory")
    files = image_files(directory)
    if not files:
        raise UserError(f"{flag} {str(directory)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_labelled_folder(directory: str | Path, flag: str = "--data") -> list[tuple[Path, str]]:
    """(path, label) for every image file in the folder, sorted by name.

    Labels come from labels.csv when the folder has one (an image it does not list takes its file name),
    else from the file names. Raises UserError (one line, naming `flag`) for a missing folder, a folder
    without images, a labels.csv that is not UTF-8 or has bad rows.
    """
    d = Path(directory)
    files = folder_images(d, flag)
    csv_path = d / LABELS_FILE
    if csv_path.exists() and not csv_path.is_file():        # a folder or FIFO by that name is not ignored
        raise UserError(f"{str(csv_path)!r} is not a regular file; the labels must be a CSV file (or absent, "
                        f"to take labels from the file names)")
    labels = read_labels_csv(csv_path, {p.name for p in files}) if csv_path.exists() else {}
    return [(p, labels.get(p.name, p.stem)) for p in files]


def read_labels_csv(csv_path: Path, known_files: Iterable[str]) -> dict[str, str]:
    """file -> label from a labels.csv; every bad row is named (by its 1-based line number) in one UserError."""
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = csv_path.read_bytes()[:e.start].count(b"\n") + 1
        raise UserError(f"{str(csv_path)!r} is not UTF-8 (byte 0x{e.object[e.start]:02x} on line {line}): "
                        f"save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"cannot read {str(csv_path)!r}: {e.strerror}") from None
    known = set(known_files)
    labels: dict[str, str] = {}
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise UserError(f"{str(csv_path)!r} is not a valid CSV file (line {reader.line_num}: {e})") from None
    for i, (line, row) in enumerate(rows):
        if i == 0 and tuple(c.strip().lower() for c in row) == HEADER:
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue                                           # blank line
        if len(row) != 2:
            problems.append(f"row {line}: expected 2 columns (file,label), got {len(row)}")
        elif row[0] not in known:
            problems.append(f"row {line}: no image file {row[0]!r} in the folder")
        elif row[0] in labels:
            problems.append(f"row {line}: {row[0]!r} is labelled twice")
        else:
            labels[row[0]] = row[1]
    if problems:
        more = f"; and {len(problems) - MAX_ROWS_NAMED} more" if len(problems) > MAX_ROWS_NAMED else ""
        raise UserError(f"{str(csv_path)!r}: {'; '.join(problems[:MAX_ROWS_NAMED])}{more} "
                        f"(fix or delete those rows)")
    return labels
