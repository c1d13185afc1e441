"""A training run whose --out is a storage URI (file://, as s3:// and gs:// go through the same pyarrow
filesystem calls): every artefact lands there, the same command again returns at once, other settings are
refused with nothing changed. Embedded local Ray."""

import csv
import io
import json
import time

import pyarrow.fs as pafs
import pytest

from synthstream.errors import UserError
from synthstream.stream import StreamConfig
from synthstream.style import load_style
from trainer import checkpoint
from trainer.run import run
from trainer.train import TrainConfig

STEPS, BATCH = 20, 32


def config(**kw) -> TrainConfig:
    stream = StreamConfig(style=load_style("tiny"), batch_size=BATCH, num_actors=1, actor_cpus=0.5)
    base = {"preset": "cpu", "steps": STEPS, "val_every": 10, "val_size": 64, "log_every": 5}
    return TrainConfig(stream=stream, **{**base, **kw})


def _tree(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    """Every file under `root`: relative path -> modification time (ns)."""
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return {i.path[len(root) + 1:]: i.mtime_ns for i in infos if i.type == pafs.FileType.File}


def test_a_run_into_a_uri_writes_every_artefact_there(local_ray, tmp_path):
    root = (tmp_path / "runs" / "uri-run").as_posix()
    uri = f"file://{root}"
    report = run(config(), uri, progress=False)
    assert report["final"]["step"] == STEPS and report["checkpoint"].endswith("uri-run/checkpoint.pt")
    assert report["stream"]["samples"] == STEPS * BATCH and report["stream"]["index_errors"] == 0

    fs, path = pafs.FileSystem.from_uri(uri)
    files = _tree(fs, path)
    top = {name.split("/")[0] for name in files}
    assert {"run.json", "report.json", "curve.png", "checkpoint.pt", "metrics.csv", "tensorboard", "ray"} <= top
    assert not [n for n in files if n.endswith(".tmp")]                       # no half-written file left
    assert any(n.startswith("ray/train/checkpoint_") for n in files)          # Ray Train's own checkpoints
    with fs.open_input_stream(f"{path}/metrics.csv") as f:
        assert [int(float(r["step"])) for r in csv.DictReader(io.StringIO(f.read().decode()))] == [10, 20]
    with fs.open_input_stream(f"{path}/report.json") as f:
        assert json.loads(f.read())["steps"] == STEPS
    assert checkpoint.load(tmp_path / "runs" / "uri-run" / "checkpoint.pt")["position"] == STEPS

    t0 = time.perf_counter()
    again = run(config(), uri, progress=False)                                # the same command: nothing to do
    assert time.perf_counter() - t0 < 2.0 and again["wall_s"] == report["wall_s"]
    assert _tree(fs, path) == files                                           # not one file touched

    with pytest.raises(UserError, match="holds a run with other settings .*lr"):
        run(config(lr=1e-3), uri, progress=False)
    assert _tree(fs, path) == files


def test_an_unusable_uri_is_one_line(local_ray):
    with pytest.raises(UserError, match="not a usable storage URI"):
        run(config(), "nosuchscheme://bucket/run", progress=False)
