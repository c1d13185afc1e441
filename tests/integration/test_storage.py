"""A training run whose --out is a storage URI (file://, as s3:// and gs:// go through the same pyarrow
filesystem calls): every artefact lands there, the same command again returns at once, other settings are
refused with nothing changed, and more steps continue it (here through the folder's plain path: the URI and
the path name the same run). Embedded local Ray."""

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


def config(style: str = "tiny", **kw) -> TrainConfig:
    stream = StreamConfig(style=load_style(style), batch_size=BATCH, num_actors=1, actor_cpus=0.5)
    base = {"preset": "cpu", "steps": STEPS, "val_every": 10, "val_size": 64, "log_every": 5, "torch_threads": 1}
    return TrainConfig(stream=stream, **{**base, **kw})


def _tree(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    """Every file under `root`: relative path -> modification time (ns)."""
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return {i.path[len(root) + 1:]: i.mtime_ns for i in infos if i.type == pafs.FileType.File}


def test_a_run_into_a_uri_writes_every_artefact_there_then_continues(local_ray, tmp_path):
    root = (tmp_path / "runs" / "uri-run").as_posix()
    uri = f"file://{root}"
    report = run(config(), uri, progress=False)
    final = report["final"]
    assert final["step"] == STEPS and report["checkpoint"].endswith("uri-run/checkpoint.pt")
    assert 0 <= final["val/string_accuracy"] <= 1 and final["images_per_s"] > 0 and 0 <= final["data_wait_share"] < 1
    assert final["torch_threads"] == report["resources"]["torch_threads"] == 1   # not Numba's count
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

    for other in (config(lr=1e-3), config(style="wikipedia", steps=2 * STEPS)):
        with pytest.raises(UserError, match="holds a run with other settings"):
            run(other, uri, progress=False)
    assert _tree(fs, path) == files

    resumed = run(config(steps=STEPS + 10), root, progress=False)              # more steps: continues from 20
    assert resumed["final"]["step"] == STEPS + 10 and resumed["final"]["restored_from_step"] == STEPS
    state = checkpoint.load(tmp_path / "runs" / "uri-run" / "checkpoint.pt")
    assert state["step"] == state["position"] == STEPS + 10                    # the stream continued, not restarted
    with fs.open_input_stream(f"{path}/metrics.csv") as f:
        assert [int(float(r["step"])) for r in csv.DictReader(io.StringIO(f.read().decode()))] == [10, 20, 30]


def test_an_unusable_uri_is_one_line(local_ray):
    with pytest.raises(UserError, match="not a usable storage URI"):
        run(config(), "nosuchscheme://bucket/run", progress=False)
