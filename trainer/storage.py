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
        try:
            self.fs.create_dir(self.path, recursive=True)
        except OSError as e:
            raise UserError(f"--out {self.out!r}: cannot create it ({str(e).splitlines()[0]})") from None

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


def held_marker(storage: RunStorage, marker: str, what: str, identity: dict) -> dict | None:
    """What a run folder holds: None when it is new or empty, else its marker file (e.g. run.json) whose
    "identity" equals `identity`. Refuses, untouched, a file, a folder of other files, or another identity."""
    import json

    if storage.kind() == "file":
        raise UserError(f"--out {storage.describe()!r} exists and is not a directory")
    names = [n for n in storage.names() if n != ".lock"]
    if marker not in names:
        if names:
            raise UserError(f"--out {storage.describe()!r} holds files that are not a synthstream {what} "
                            f"({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); choose an empty or new "
                            f"folder (nothing was changed)")
        return None
    try:
        held = json.loads(storage.read_bytes(marker))
        theirs = held["identity"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"--out {storage.describe(marker)!r} cannot be read ({e})") from None
    mine = json.loads(json.dumps(identity))
    differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
    if differ:
        raise UserError(f"--out {storage.describe()!r} holds a {what} with other settings ({', '.join(differ)} "
                        f"differ); use the same settings to continue it, or another folder (nothing was changed)")
    return held


def lock(storage: RunStorage):
    """An exclusive lock on a local run folder for this process's lifetime (None for remote storage, where
    Ray Train's own storage is the source of truth). Raises UserError when another run holds it."""
    if storage.local is None:
        return None
    import fcntl

    fd = os.open(storage.local / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"--out {str(storage.local)!r} is in use by another training run (nothing was changed)") \
            from None
    return fd


def unlock(fd) -> None:
    if fd is not None:
        os.close(fd)
