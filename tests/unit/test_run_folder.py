"""A run folder (trainer/storage.py) read back: damaged files are one line naming the file; a run refused
after taking the folder leaves nothing; a read-only or busy folder is refused before any work."""
import os
import subprocess

import pytest

from synthstream.errors import UserError
from trainer.storage import RunStorage, held_marker, lock, unlock


@pytest.mark.parametrize("content, why", [
    ('{"identity": {}, "finished_step": "seven"}', r"finished_step = 'seven' is not a step number"),
    ('{"identity": {}, "finished_step": -3}', "is not a step number"),
    ('{"identity": {"a": 1}, "fini', "Unterminated string"),
    ('["a list"]', "expected a JSON object"),
    ('{"finished_step": 3}', 'no "identity" table'),
])
def test_a_damaged_marker_is_one_line_naming_it(tmp_path, content, why):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(UserError, match=f"run\\.json' is damaged .*{why}") as e:
        held_marker(RunStorage(str(tmp_path)), "run.json", "run", {"a": 1})
    assert "\n" not in str(e.value)


def test_a_truncated_report_or_corrupt_metrics_is_one_line(tmp_path):
    storage = RunStorage(str(tmp_path))
    (tmp_path / "report.json").write_text('{"style": "tiny", "fin')
    with pytest.raises(UserError, match=r"report\.json' is damaged"):
        storage.read_json("report.json")
    for text in ("step,val/loss\n10,1.5\nten,1.2\n", "step,val/loss\n10,1.5,9\n", "\xff\xfe\x00"):
        (tmp_path / "metrics.csv").write_bytes(text.encode("latin-1"))
        with pytest.raises(UserError, match=r"metrics\.csv' is damaged"):
            storage.read_metrics()
    (tmp_path / "metrics.csv").write_text("step,val/loss\n10,1.5\n20,\n")
    assert [r["step"] for r in storage.read_metrics()] == ["10", "20"]


def test_a_run_refused_after_taking_the_folder_leaves_nothing(tmp_path):
    storage = RunStorage(str(tmp_path / "new" / "run"))
    storage.make()
    unlock(lock(storage))
    assert list(tmp_path.iterdir()) == []                 # the lock file and the folders it made are gone
    kept = RunStorage(str(tmp_path / "kept"))
    kept.make()
    guard = lock(kept)
    (tmp_path / "kept" / "run.json").write_text("{}")     # a run that wrote something keeps its folder
    unlock(guard)
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [".lock", "run.json"]


def test_a_busy_folder_is_refused_before_any_work(tmp_path):
    storage = RunStorage(str(tmp_path))
    storage.make()
    guard = lock(storage)
    (tmp_path / "run.json").write_text('{"identity": {}}')
    try:
        with pytest.raises(UserError, match="in use by another training run"):
            held_marker(RunStorage(str(tmp_path)), "run.json", "run", {})
    finally:
        unlock(guard)


def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        for out in (mount, mount / "run"):               # an existing empty folder, and one to be made
            with pytest.raises(UserError, match="is not writable"):
                held_marker(RunStorage(str(out)), "run.json", "run", {})
        with pytest.raises(UserError, match="cannot write there"):
            lock(RunStorage(str(mount)))
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert os.listdir(mount) == []
