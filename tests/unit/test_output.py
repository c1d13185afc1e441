"""Atomic output: the destination holds the old content or the whole new one, never a part."""
import os
from pathlib import Path

import pytest

from synthstream.errors import UserError
from synthstream.output import atomic_dir, atomic_write, empty_output_dir, writable_output


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert out.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_failed_write_keeps_the_old_file(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match="No space left on device"):
        atomic_write(out, half_then_fail)
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_fills_an_empty_folder_or_nothing(tmp_path):
    out = empty_output_dir(tmp_path / "set")
    atomic_dir(out, lambda d: (d / "x.txt").write_text("x"))
    assert [p.name for p in out.iterdir()] == ["x.txt"]

    def fail(d):
        (d / "y.txt").write_text("y")
        raise OSError(5, "Input/output error")

    other = empty_output_dir(tmp_path / "other")
    with pytest.raises(UserError, match="Input/output error"):
        atomic_dir(other, fail)
    assert list(other.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "set"]


def test_destinations_are_checked_first(tmp_path):
    with pytest.raises(UserError, match="--model 'a.gif': expected a file ending in .pt"):
        writable_output("a.gif", (".pt",), flag="--model")
    with pytest.raises(UserError, match="does not exist"):
        writable_output(tmp_path / "missing" / "a.pt", (".pt",))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    with pytest.raises(UserError, match="not empty"):
        empty_output_dir(tmp_path / "full")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
