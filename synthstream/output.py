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
    """Check an output folder before doing any work: new, or an empty folder, in a writable place. Nothing is
    created here (the writer makes it whole, see `atomic_dir`), so a refused or failed run leaves nothing."""
    out = Path(path)
    if out.is_dir():
        if any(out.iterdir()):
            raise UserError(f"{flag} {str(path)!r} is a folder that is not empty")
    else:
        _check_creatable(out, flag)
    return out


def _check_creatable(out: Path, flag: str) -> None:
    """A folder that does not exist yet can be made: the nearest existing ancestor is a writable folder."""
    if out.exists() or out.is_symlink():
        raise UserError(f"{flag} {str(out)!r} exists and is not a folder")
    check_makeable(out.absolute().parent, f"{flag} {str(out)!r}")


def check_makeable(path: Path, what: str) -> None:
    """`path`, or the nearest ancestor that exists, is a writable folder (one UserError starting `what`)."""
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what}: {str(ancestor)!r} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{what}: folder {str(ancestor)!r} is not writable (nothing was changed)")


# -- folders the project owns ----------------------------------------------------------------------------------
# A folder a command writes whole (an evaluation report, a fidelity report) carries MARKER, listing what the
# command wrote there. Writing again replaces such a folder only when it holds nothing else; a folder holding
# any file the project did not write is refused, and nothing outside it (a sibling, a backup) is touched.
MARKER = ".synthstream.json"


def owned_output_dir(path: str | Path, kind: str, flag: str = "--out") -> Path:
    """Check an output folder before any work: new, empty, or an earlier `kind` written by synthstream (which
    the write will replace). Refuses a file, or a folder holding anything synthstream did not write there."""
    out = Path(path)
    if not out.is_dir():
        _check_creatable(out, flag)
        return out
    foreign = _foreign_files(out, kind)
    if foreign:
        raise UserError(f"{flag} {str(path)!r} holds files that synthstream did not write as {_article(kind)} "
                        f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); choose an empty or new "
                        f"folder (nothing was changed)")
    if not os.access(out, os.W_OK) or not os.access(out.resolve().parent, os.W_OK):
        raise UserError(f"{flag} {str(path)!r}: not writable")
    return out


def replace_owned_dir(path: str | Path, kind: str, write: Callable[[Path], object], flag: str = "--out") -> None:
    """`write(tmp_dir)` fills a new folder (MARKER added) that then takes `path`'s place whole. An earlier
    `kind` there is moved to a fresh hidden sibling (made here, so no name of the user's is reused), and removed
    only once the new folder is in place; any failure puts it back."""
    import json

    out = owned_output_dir(path, kind, flag)            # again: the folder may have changed since the check

    def fill(tmp: Path) -> None:
        write(tmp)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        (tmp / MARKER).write_text(json.dumps({"kind": kind, "files": files}, indent=1) + "\n")

    if not (out.is_dir() and any(out.iterdir())):
        atomic_dir(out, fill)
        return
    real = out.resolve()
    old = Path(tempfile.mkdtemp(dir=real.parent, prefix=f".{real.name}.old-"))
    try:
        os.replace(real, old)                              # onto the empty folder just made
    except OSError as e:
        old.rmdir()
        raise UserError(f"cannot replace {str(out)!r}: {e.strerror}") from None
    try:
        atomic_dir(real, fill)
    except BaseException:
        os.replace(old, real)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _foreign_files(folder: Path, kind: str) -> list[str]:
    """The names in `folder` that an earlier `kind` written by synthstream does not account for."""
    import json

    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())
    if not names:
        return []
    try:
        held = json.loads((folder / MARKER).read_text())
        ours = set(held["files"]) | {MARKER} if held["kind"] == kind else set()
    except (OSError, ValueError, KeyError, TypeError):
        ours = set()
    return [n for n in names if n not in ours]


def _article(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


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
    """`write(tmp_dir)` fills a temporary sibling folder, which then replaces `path` (absent or empty). Missing
    parent folders are made, and removed again if the write fails."""
    out = Path(path).resolve()              # through a symlink: replace the folder it points to
    made = _make_parents(out.parent)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        write(tmp)
        for f in tmp.rglob("*"):
            _fsync(f)
        os.chmod(tmp, 0o777 & ~_umask())    # mkdtemp makes 0700
        os.replace(tmp, out)                # replaces an empty folder; refuses a non-empty one
        made = []
    except OSError as e:
        raise UserError(f"cannot write {str(out)!r}: {e.strerror}") from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:                 # deepest first; only the ones made here, and only if still empty
            try:
                folder.rmdir()
            except OSError:
                pass


def _make_parents(folder: Path) -> list[Path]:
    """Make `folder` and its missing ancestors; the ones made, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        try:
            f.mkdir()
        except FileExistsError:
            pass
        except OSError as e:
            for g in missing[missing.index(f) + 1:]:
                g.rmdir()
            raise UserError(f"cannot make folder {str(f)!r}: {e.strerror}") from None
    return missing


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
