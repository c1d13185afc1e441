"""Atomic output: a file (or folder) appears whole under its name or not at all, and a destination is
checked before any work starts.

Every writer goes to a temporary sibling (same folder, so the final rename is atomic), flushed to disk, then
renamed over the destination; on any failure the temporary is removed and the destination is untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from synthstream.errors import UserError


def writable_output(path: str | Path, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    """Check an output file path before doing any work: known suffix, existing writable directory."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {str(path)!r}: expected a file ending in {' or '.join(suffixes)}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{flag} {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"{flag} {str(path)!r}: not writable")
    return out


def empty_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Check (creating it if needed) an output folder before doing any work: it must be empty."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {str(path)!r}: {e.strerror}") from None
    if any(out.iterdir()):
        raise UserError(f"{flag} {str(path)!r} is a folder that is not empty")
    return out


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """`write(tmp_path)` then rename over `path`, so a failed write never leaves half a file.

    The temporary keeps `path`'s suffix (some writers, e.g. numpy's savez, add one otherwise)."""
    out = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=out.suffix)
        os.close(fd)
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())    # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"cannot write {str(out)!r}: {e.strerror}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_dir(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp_dir)` fills a temporary sibling folder, which then replaces `path` (absent or empty)."""
    out = Path(path).resolve()              # through a symlink: replace the folder it points to
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        write(tmp)
        for f in tmp.iterdir():
            _fsync(f)
        os.chmod(tmp, 0o777 & ~_umask())    # mkdtemp makes 0700
        os.replace(tmp, out)                # replaces an empty folder; refuses a non-empty one
    except OSError as e:
        raise UserError(f"cannot write {str(out)!r}: {e.strerror}") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: str | Path) -> None:
    if os.path.isfile(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
