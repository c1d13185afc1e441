"""Where a training run's artefacts live: a local (or NFS) folder, or a pyarrow filesystem URI (`s3://`,
`gs://`, `file://`). The driver writes every artefact through this, so a run on a cluster leaves its report,
curve, metrics and final checkpoint in the same place Ray Train keeps its checkpoints.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from synthstream.errors import RunFailed, UserError, out_of_space


class RunStorage:
    """One run's folder. `local` is the local path when the folder is on this machine's filesystem."""

    def __init__(self, out: str) -> None:
        self.out = out
        if "://" in out:
            try:
                self.fs, self.path = pafs.FileSystem.from_uri(out)
            except (OSError, ValueError) as e:       # ArrowInvalid is a ValueError
                raise UserError(f"--out {out!r}: not a usable storage URI ({str(e).splitlines()[0]})") from None
        else:
            self.fs, self.path = pafs.LocalFileSystem(), str(Path(out).expanduser().resolve())
        self.local = Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None
        self.made: list[Path] = []          # local folders `make` created, deepest first

    @property
    def ray_storage_path(self) -> str:
        """What Ray Train's RunConfig(storage_path=...) gets for this run's `ray/` folder."""
        return str(self.local / "ray") if self.local else self.out.rstrip("/") + "/ray"

    def join(self, name: str) -> str:
        return posixpath.join(self.path, name)

    def describe(self, name: str = "") -> str:
        return str(self.local / name) if self.local else self.out.rstrip("/") + ("/" + name if name else "")

    def kind(self) -> str:
        """'missing', 'folder' or 'file'."""
        info = self.fs.get_file_info(self.path)
        return {pafs.FileType.NotFound: "missing", pafs.FileType.Directory: "folder"}.get(info.type, "file")

    def names(self) -> list[str]:
        if self.kind() != "folder":
            return []
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(pafs.FileSelector(self.path)))

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self.join(name)).type != pafs.FileType.NotFound

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self.join(name)) as f:
            return f.read()

    def make(self) -> None:
        """Create the folder (and missing parents); remembers which of them this run made, for `unlock`."""
        if self.local is not None:
            self.made = [p for p in [self.local, *self.local.parents] if not p.exists()]
        try:
            self.fs.create_dir(self.path, recursive=True)
        except OSError as e:
            raise UserError(f"--out {self.out!r}: cannot create it ({str(e).splitlines()[0]})") from None

    def check_writable(self) -> None:
        """Before any work (and before Ray starts): a local folder, or where it would be made, is writable."""
        if self.local is None:
            return
        from synthstream.output import check_makeable

        check_makeable(self.local, f"--out {self.out!r}")

    def read_json(self, name: str) -> dict:
        """A JSON object the run wrote; a damaged one is one UserError naming the file."""
        import json

        try:
            value = json.loads(self.read_bytes(name))
        except (OSError, ValueError) as e:
            raise damaged(self, name, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        if not isinstance(value, dict):
            raise damaged(self, name, f"expected a JSON object, got {type(value).__name__}")
        return value

    def read_metrics(self, name: str = "metrics.csv") -> list[dict]:
        """The rows of the run's metrics.csv; a damaged file (not UTF-8, no numeric `step`) is one UserError."""
        import csv
        import io
        import math

        try:
            rows = list(csv.DictReader(io.StringIO(self.read_bytes(name).decode("utf-8"))))
            for i, row in enumerate(rows, 2):
                step = float(row.get("step") or "nan")
                if not math.isfinite(step) or None in row:
                    raise ValueError(f"line {i}: no numeric step" if not math.isfinite(step) else
                                     f"line {i}: more values than columns")
        except (OSError, ValueError, csv.Error) as e:            # UnicodeDecodeError is a ValueError
            raise damaged(self, name, str(e).splitlines()[0][:120]) from None
        return rows

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a whole file: to a temporary name, then renamed over `name` (never half a file)."""
        folder, base = posixpath.split(name)
        tmp = self.join(posixpath.join(folder, f".{base}.tmp"))          # beside the file, in its own folder
        try:
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, self.join(name))
        except OSError as e:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise write_failed(e, self.describe(name)) from None

    def upload_file(self, local_file: Path, name: str) -> None:
        self.write_bytes(name, Path(local_file).read_bytes())

    def upload_dir(self, local_dir: Path, name: str) -> None:
        """Copy a local folder (e.g. TensorBoard files) into the run folder."""
        for path in sorted(Path(local_dir).rglob("*")):
            if path.is_file():
                rel = path.relative_to(local_dir).as_posix()
                self.fs.create_dir(posixpath.dirname(self.join(f"{name}/{rel}")), recursive=True)
                self.write_bytes(f"{name}/{rel}", path.read_bytes())

    def scratch(self) -> Path:
        """A local folder for files that are uploaded later (remote storage), or the run folder itself."""
        if self.local:
            return self.local
        return Path(tempfile.mkdtemp(prefix="synthstream-run-"))


def write_failed(e: OSError, where: str) -> RunFailed | UserError:
    """The one-line error for a write the storage refused: a full disk fails the run (RunFailed); a folder
    that cannot be written is bad input (UserError)."""
    kind = RunFailed if out_of_space(e) else UserError
    return kind(f"cannot write {where!r}: {str(e).splitlines()[0]}")


def damaged(storage: RunStorage, name: str, why: str) -> UserError:
    """The one line for a run folder's file that cannot be read back."""
    return UserError(f"--out: {storage.describe(name)!r} is damaged ({why}); move the folder aside and start a "
                     f"new run, or repair the file (nothing was changed)")


def held_marker(storage: RunStorage, marker: str, what: str, identity: dict) -> dict | None:
    """What a run folder holds: None when it is new or empty, else its marker file (e.g. run.json) whose
    "identity" equals `identity`. Refuses, untouched, a file, a folder of other files, or another identity."""
    import json

    if storage.kind() == "file":
        raise UserError(f"--out {storage.describe()!r} exists and is not a directory")
    storage.check_writable()
    _check_free(storage)
    names = [n for n in storage.names() if n != ".lock"]
    if marker not in names:
        if names:
            raise UserError(f"--out {storage.describe()!r} holds files that are not a synthstream {what} "
                            f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); choose an empty or new "
                            f"folder (nothing was changed)")
        return None
    held = storage.read_json(marker)
    theirs = held.get("identity")
    if not isinstance(theirs, dict):
        raise damaged(storage, marker, "no \"identity\" table")
    step = held.get("finished_step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise damaged(storage, marker, f"finished_step = {step!r} is not a step number")
    mine = json.loads(json.dumps(identity))
    differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
    if differ:
        raise UserError(f"--out {storage.describe()!r} holds a {what} with other settings ({', '.join(differ)} "
                        f"differ); use the same settings to continue it, or another folder (nothing was changed)")
    return held


def _check_free(storage: RunStorage) -> None:
    """Refuse at once (before Ray starts) a local folder another run holds the lock of."""
    if storage.local is None or not (storage.local / ".lock").is_file():
        return
    import fcntl

    try:
        fd = os.open(storage.local / ".lock", os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(storage) from None
    except OSError:
        pass
    finally:
        os.close(fd)                    # closing releases a lock taken here


def _in_use(storage: RunStorage) -> UserError:
    return UserError(f"--out {str(storage.local)!r} is in use by another training run (nothing was changed)")


class Guard:
    """A held run-folder lock: its file descriptor and the storage it guards."""

    def __init__(self, fd: int, storage: RunStorage) -> None:
        self.fd, self.storage = fd, storage


def lock(storage: RunStorage) -> Guard | None:
    """An exclusive lock on a local run folder for this process's lifetime (None for remote storage, where
    Ray Train's own storage is the source of truth). Raises UserError when another run holds it, or when the
    folder cannot hold the lock file (a read-only mount)."""
    if storage.local is None:
        return None
    import fcntl

    try:
        fd = os.open(storage.local / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"--out {str(storage.local)!r}: cannot write there ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _in_use(storage) from None
    return Guard(fd, storage)


def unlock(guard: Guard | None) -> None:
    """Release the lock. A run that wrote nothing (refused after the lock was taken) leaves nothing: the lock
    file goes, and so do the folders `make` created, if they are still empty."""
    if guard is None:
        return
    local = guard.storage.local
    try:
        if local is not None and [p.name for p in local.iterdir()] == [".lock"]:
            (local / ".lock").unlink()
            for folder in guard.storage.made:
                folder.rmdir()
    except OSError:
        pass
    finally:
        os.close(guard.fd)
