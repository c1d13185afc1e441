"""Reading a folder or bucket of images with Ray Data: `synthstream read --data DIR|URI --checkpoint C --out R`.

The driver lists the image files (a local folder, or any URI pyarrow's filesystems take: s3://, gs://,
file://...), then Ray Data maps the paths in batches over a pool of actors, each holding one `Reader`
(trainer/reader.py): an actor reads its files' bytes, decodes them and reads them in one `Reader.read` call.
Files are opened inside the actors, not by Ray Data's read tasks, so a file that cannot be opened or decoded
is one row with an `error`, never a failed task.

Results (Parquet or CSV): path, text, probability, mismatch, error (null for a good read). They are written in
chunks of `chunk` files, each time atomically replacing the results with everything read so far, and they
carry a marker (Parquet: schema metadata `synthstream.read`; CSV: a first line `# synthstream.read {...}`)
naming the checkpoint and the data. Rerunning the same command resumes: files already in the results are
skipped (bad files included: they are listed, not retried). An existing file without the marker, or one made
for another checkpoint or data, is refused, never replaced.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

import pyarrow as pa

from synthstream.errors import UserError
from synthstream.labelled import IMAGE_SUFFIXES
from synthstream.output import atomic_write

MARKER = "synthstream.read"
MAX_PIXELS = 4096 * 4096            # a decompressed image larger than this is a bad file (decompression bombs)
SCHEMA = pa.schema([("path", pa.string()), ("text", pa.string()), ("probability", pa.float64()),
                    ("mismatch", pa.bool_()), ("error", pa.string())])


class TooLarge(ValueError):
    """An image whose pixel count is over MAX_PIXELS."""


def image_from_bytes(data: bytes):
    """A decoded PIL image, its size checked before the pixels are decoded. Raises ValueError (one line)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("empty file")
    try:
        im = Image.open(io.BytesIO(data))          # reads the header only
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise TooLarge(f"image too large ({w}x{h} pixels): at most {MAX_PIXELS} pixels accepted")
        im.load()
    except TooLarge:
        raise
    except Image.DecompressionBombError as e:       # PIL refuses > 2 * MAX_IMAGE_PIXELS already in `open`
        raise TooLarge(f"image too large ({str(e).split('(')[1].split(')')[0]}): at most {MAX_PIXELS} pixels "
                       f"accepted") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        why = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(e).splitlines()[0] if str(e) else "")
        raise ValueError(f"not a readable image ({type(e).__name__}: {why[:120]})") from None
    return im


def list_images(data: str) -> tuple[object, list[str]]:
    """(pyarrow filesystem, sorted image paths on it) for a folder or a URI."""
    import pyarrow.fs as pafs

    try:
        if "://" in data:
            fs, root = pafs.FileSystem.from_uri(data)
        else:
            fs, root = pafs.LocalFileSystem(), str(Path(data).resolve())
        info = fs.get_file_info(root)
        if info.type != pafs.FileType.Directory:
            raise UserError(f"--data {data!r} is not a directory")
        files = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (OSError, pa.ArrowException) as e:
        raise UserError(f"--data {data!r} cannot be listed ({str(e).splitlines()[0][:160]})") from None
    paths = sorted(f.path for f in files if f.type == pafs.FileType.File and
                   os.path.splitext(f.path)[1].lower() in IMAGE_SUFFIXES and not os.path.basename(f.path)
                   .startswith("."))
    if not paths:
        raise UserError(f"--data {data!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return fs, paths


class ReadImages:
    """Ray Data callable class: a batch of paths -> their readings (one actor holds one reader)."""

    def __init__(self, checkpoint: str, filesystem, overrides: dict | None = None, threads: int = 1) -> None:
        import torch

        from trainer.reader import load_reader

        self.fs, self.reader = filesystem, load_reader(checkpoint, **(overrides or {}))
        self.threads, self._torch = threads, torch

    def __call__(self, batch: dict) -> dict:
        self._torch.set_num_threads(self.threads)       # (Numba's OpenMP layer may have reset it)
        paths = [str(p) for p in batch["path"]]
        errors: list[str | None] = [None] * len(paths)
        arrays, where = [], []
        for i, path in enumerate(paths):
            try:
                with self.fs.open_input_file(path) as f:
                    image = image_from_bytes(f.read())
                grey, _ = self.reader.images([image])
                arrays.append(grey[0])
                where.append(i)
            except Exception as e:  # noqa: BLE001 - any file the reader cannot take is that row's error
                errors[i] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        text, prob, mismatch = [None] * len(paths), [None] * len(paths), [None] * len(paths)
        for i, r in zip(where, self.reader.read(arrays) if arrays else []):
            text[i], prob[i], mismatch[i] = r.text, float(r.probability), r.mismatch
        return {"path": paths, "text": text, "probability": prob, "mismatch": mismatch, "error": errors}


def marker(checkpoint: str, data: str, complete: bool) -> dict:
    return {"command": "read", "checkpoint": checkpoint, "data": data, "complete": complete}


def previous(out: Path, checkpoint: str, data: str) -> pa.Table | None:
    """The rows of an earlier run of the same command at `out` (None if there is no file). Refuses a file this
    command did not write, or wrote for another checkpoint or data."""
    if not out.exists():
        return None
    table, mark = _load(out)
    if mark is None:
        raise UserError(f"--out {str(out)!r} exists and was not written by `synthstream read`; it is left as it is "
                        f"(choose another --out)")
    if (mark.get("checkpoint"), mark.get("data")) != (checkpoint, data):
        raise UserError(f"--out {str(out)!r} holds the readings of --checkpoint {mark.get('checkpoint')!r} on "
                        f"--data {mark.get('data')!r}; choose another --out to read these")
    return table


def _load(out: Path) -> tuple[pa.Table | None, dict | None]:
    try:
        if out.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(out)
            raw = (table.schema.metadata or {}).get(MARKER.encode())
            return table.cast(SCHEMA), (json.loads(raw) if raw else None)
        with open(out, encoding="utf-8") as f:
            first = f.readline()
        if not first.startswith(f"# {MARKER} "):
            return None, None
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(out, read_options=pcsv.ReadOptions(skip_rows=1),
                              convert_options=pcsv.ConvertOptions(column_types=SCHEMA, strings_can_be_null=True))
        return table.select(SCHEMA.names), json.loads(first[len(MARKER) + 3:])
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError):
        return None, None


def write(out: Path, table: pa.Table, mark: dict) -> None:
    """All rows so far, atomically replacing `out`."""
    table = table.cast(SCHEMA)
    if out.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = table.replace_schema_metadata({MARKER: json.dumps(mark)})
        atomic_write(out, lambda tmp: pq.write_table(table, tmp))
    else:
        import pyarrow.csv as pcsv

        def write_csv(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(f"# {MARKER} {json.dumps(mark)}\n".encode())
                pcsv.write_csv(table, f)

        atomic_write(out, write_csv)


def readings(checkpoint: str, fs, paths: list[str], *, actors: int, batch_size: int, actor_cpus: float = 1.0,
             overrides: dict | None = None):
    """The readings of `paths` as Arrow tables, as the actor pool finishes them (Ray must be up)."""
    import ray

    from synthstream.raydata import quiet_ray_data

    quiet_ray_data()
    logging.getLogger("ray.data").setLevel(logging.ERROR)     # (not even "progress bars disabled")
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(1, min(len(paths), 4 * actors)))
    ds = ds.map_batches(ReadImages, fn_constructor_kwargs={"checkpoint": checkpoint, "filesystem": fs,
                                                           "overrides": overrides,
                                                           "threads": max(1, int(actor_cpus))},
                        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=actor_cpus,
                        batch_format="numpy")
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield batch.select(SCHEMA.names).cast(SCHEMA)


def run(data: str, checkpoint: str, out: str | Path, *, actors: int | None = None, batch_size: int = 64,
        chunk: int = 4096, actor_cpus: float = 1.0, address: str | None = None, overrides: dict | None = None) -> dict:
    """Read every image under `data` not already in `out` (saving every `chunk` images); returns counts.
    `actors` None: as many as the cluster's CPUs hold at `actor_cpus` each."""
    from cluster.local import connect
    from trainer.checkpoint import resolve

    out = Path(out)
    data = data if "://" in data else str(Path(data).resolve())      # the marker names the folder, not the cwd
    resolve(checkpoint)                                       # a missing checkpoint is one line before Ray starts
    before = previous(out, checkpoint, data)
    fs, paths = list_images(data)
    done = set(before.column("path").to_pylist()) if before is not None else set()
    todo = [p for p in paths if p not in done]
    parts = [before if before is not None else SCHEMA.empty_table()]
    if not todo:
        return {"read": 0, "bad": 0, "skipped": len(done), "total": len(parts[0]), "bad_files": []}
    connect(address)
    if actors is None:
        import ray

        actors = max(1, int(ray.cluster_resources().get("CPU", 1) // actor_cpus))
    bad: list[tuple[str, str]] = []
    unsaved = 0
    for part in readings(checkpoint, fs, todo, actors=actors, batch_size=batch_size, actor_cpus=actor_cpus,
                         overrides=overrides):
        bad += [(p, e) for p, e in zip(part.column("path").to_pylist(), part.column("error").to_pylist())
                if e is not None]
        parts.append(part)
        unsaved += len(part)
        if unsaved >= chunk:
            write(out, pa.concat_tables(parts).sort_by("path"), marker(checkpoint, data, complete=False))
            unsaved = 0
    table = pa.concat_tables(parts).sort_by("path")
    write(out, table, marker(checkpoint, data, complete=True))
    return {"read": len(todo) - len(bad), "bad": len(bad), "skipped": len(done), "total": len(table),
            "bad_files": sorted(bad)}
