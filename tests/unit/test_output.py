"""Atomic output: the destination holds the old content or the whole new one, never a part."""
import os
from pathlib import Path

import pytest

from synthstream.errors import UserError
from synthstream.output import (
    MARKER,
    atomic_dir,
    atomic_write,
    empty_output_dir,
    owned_output_dir,
    replace_owned_dir,
    writable_output,
)


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

    other = empty_output_dir(tmp_path / "deep" / "other")           # nothing is made by the check
    assert not (tmp_path / "deep").exists()
    with pytest.raises(UserError, match="Input/output error"):
        atomic_dir(other, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]     # the parents it made are gone too


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


def test_an_owned_folder_is_replaced_and_nothing_of_the_users_is_touched(tmp_path):
    out = tmp_path / "rep"
    sibling = tmp_path / ".rep.old"                  # the user's own folder, with the name a backup might take
    sibling.mkdir()
    (sibling / "mine.txt").write_text("mine")
    replace_owned_dir(out, "report", lambda d: (d / "a.json").write_text("1"))
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.json"]
    replace_owned_dir(out, "report", lambda d: (d / "a.json").write_text("2"))      # an earlier one: replaced
    assert (out / "a.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rep.old", "rep"]
    assert (sibling / "mine.txt").read_text() == "mine"

    def fail(d):
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match="No space left"):
        replace_owned_dir(out, "report", fail)
    assert (out / "a.json").read_text() == "2"                 # a failed write keeps the earlier one
    assert sorted(p.name for p in tmp_path.iterdir()) == [".rep.old", "rep"]


@pytest.mark.parametrize("setup, why", [
    (lambda d: (d / "report.json").write_text("the user's"), "holds files that synthstream did not write"),
    (lambda d: (d / MARKER).write_text('{"kind": "other", "files": []}'), "did not write"),
    (lambda d: (d / MARKER).write_text("not json"), "did not write"),
])
def test_a_folder_of_the_users_is_refused(tmp_path, setup, why):
    out = tmp_path / "rep"
    out.mkdir()
    setup(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UserError, match=why):
        owned_output_dir(out, "report")
    with pytest.raises(UserError, match=why):
        replace_owned_dir(out, "report", lambda d: (d / "report.json").write_text("ours"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_owned_folder_the_user_added_to_is_refused(tmp_path):
    out = tmp_path / "rep"
    replace_owned_dir(out, "report", lambda d: (d / "a.json").write_text("1"))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"did not write as a report \(notes\.txt\)"):
        owned_output_dir(out, "report")
