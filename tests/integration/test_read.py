"""`synthstream read` on a real local Ray Data actor pool: every image read as the reader reads it, bad files
listed as rows (never fatal), reruns resume, and a file the command did not write is never replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import ray
from PIL import Image

from synthstream.generate import render
from synthstream.trace import sample_traces
from trainer import batch_read
from trainer.reader import load_reader

ROOT = Path(__file__).resolve().parents[2]
MODEL = "lepture"


@pytest.fixture(scope="module")
def ray_up():
    from cluster.local import connect

    connect(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 captchas (some in a subfolder), a file that is not an image, an empty one; their expected readings."""
    d = tmp_path_factory.mktemp("images")
    reader = load_reader(MODEL)
    images = render(reader.style, sample_traces(reader.style, 5, 0, 12))
    (d / "sub").mkdir()
    paths = []
    for i, a in enumerate(images):
        p = d / ("sub" if i % 3 == 0 else ".") / f"c{i:02d}.png"
        Image.fromarray(a).save(p)
        paths.append(str(p.resolve()))
    (d / "broken.png").write_bytes(b"not a png")
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image: not listed")
    expected = dict(zip(paths, (r.text for r in reader.read(list(images)))))
    return d, expected


def _rows(path: Path) -> dict[str, dict]:
    table = pq.read_table(path) if path.suffix == ".parquet" else \
        pcsv.read_csv(path, read_options=pcsv.ReadOptions(skip_rows=1))
    return {r["path"]: r for r in table.to_pylist()}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_reads_every_image_and_lists_bad_files(ray_up, folder, tmp_path, suffix):
    d, expected = folder
    out = tmp_path / f"results{suffix}"
    done = batch_read.run(str(d), MODEL, out, actors=2, batch_size=4, chunk=5, actor_cpus=0.5)
    assert (done["read"], done["bad"], done["skipped"]) == (12, 2, 0)
    rows = _rows(out)
    assert {p: r["text"] for p, r in rows.items() if r["error"] is None or r["error"] == ""} == expected
    bad = {Path(p).name: r["error"] for p, r in rows.items() if r["error"]}
    assert bad.keys() == {"broken.png", "empty.jpg"} and "not a readable image" in bad["broken.png"]
    assert all(0 <= r["probability"] <= 1 for p, r in rows.items() if p in expected)


def test_a_rerun_reads_only_new_images_and_an_unchanged_folder_is_a_no_op(ray_up, folder, tmp_path):
    d, expected = folder
    out = tmp_path / "r.parquet"
    work = tmp_path / "data"
    work.mkdir()
    first = sorted(expected)[:5]
    for p in first:
        (work / Path(p).name).write_bytes(Path(p).read_bytes())
    assert batch_read.run(str(work), MODEL, out, actors=1, batch_size=8, actor_cpus=0.5)["read"] == 5
    for p in sorted(expected)[5:8]:
        (work / Path(p).name).write_bytes(Path(p).read_bytes())
    again = batch_read.run(str(work), MODEL, out, actors=1, batch_size=8, actor_cpus=0.5)
    assert (again["read"], again["skipped"], again["total"]) == (3, 5, 8)
    by_name = {Path(p).name: r["text"] for p, r in _rows(out).items()}
    assert by_name == {Path(p).name: expected[p] for p in sorted(expected)[:8]}
    before = out.read_bytes()
    assert batch_read.run(str(work), MODEL, out, actors=1, batch_size=8, actor_cpus=0.5)["read"] == 0
    assert out.read_bytes() == before


def test_a_users_file_or_another_models_results_are_refused(folder, tmp_path):
    d, _ = folder
    user = tmp_path / "mine.csv"
    user.write_text("path,text\nx,y\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "synthstream.cli", "read", "--data", str(d), "--checkpoint", MODEL, "--actors", "1"]
    proc = subprocess.run(cmd + ["--out", str(user)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"synthstream: error: --out {str(user)!r} exists and was not written by `synthstream read`; it is left as "
        f"it is (choose another --out)"]
    assert user.read_text() == "path,text\nx,y\n"
    ours = tmp_path / "ours.parquet"
    batch_read.write(ours, batch_read.SCHEMA.empty_table(), batch_read.marker("facebook", str(d.resolve()), True))
    proc = subprocess.run(cmd + ["--out", str(ours)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "holds the readings of --checkpoint 'facebook'" in proc.stderr
