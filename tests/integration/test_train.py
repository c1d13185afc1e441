"""Training on a real local Ray (2 CPUs): refusing a folder of user files, surviving a killed worker or driver, a
full disk, and the CLI's one-line errors. A run's outputs, the same command again, other settings refused and
more steps continued: test_storage.py (one run serves them all)."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from synthstream.errors import RunFailed, UserError
from synthstream.stream import StreamConfig
from synthstream.style import load_style
from tests.helpers.cli import cli_all
from tests.helpers.runs import has_registered_checkpoint
from trainer import checkpoint
from trainer.run import run
from trainer.train import TrainConfig


def config(style="tiny", batch_size=32, **kw) -> TrainConfig:
    base = dict(preset="cpu", steps=40, val_every=20, val_size=128, log_every=5, torch_threads=1)
    stream = StreamConfig(style=load_style(style), batch_size=batch_size, num_actors=1, actor_cpus=0.5)
    return TrainConfig(stream=stream, **{**base, **kw})


def test_the_embedded_rays_processes_poll_train_workers_often_and_watch_no_drains(local_ray):
    # Ray Train's controller takes reports only when it polls: at Ray's 2 s a short run waits ~10 s more; on one
    # machine no node is drained, so no preemption watcher actor starts with each run
    import ray

    from cluster.local import LOCAL_TRAIN_POLL_S, PREEMPTION_WATCHER_ENV, TRAIN_POLL_ENV

    @ray.remote(num_cpus=0)
    def seen(name: str) -> str | None:
        return os.environ.get(name)

    assert ray.get(seen.remote(TRAIN_POLL_ENV)) == os.environ.get(TRAIN_POLL_ENV, LOCAL_TRAIN_POLL_S)
    assert ray.get(seen.remote(PREEMPTION_WATCHER_ENV)) == os.environ.get(PREEMPTION_WATCHER_ENV, "0")


def test_a_folder_of_user_files_is_refused(local_ray, tmp_path):
    (tmp_path / "report.json").write_text("mine")
    with pytest.raises(UserError, match="not a synthstream run"):
        run(config(), str(tmp_path), progress=False)
    assert (tmp_path / "report.json").read_text() == "mine" and {p.name for p in tmp_path.iterdir()} == {"report.json"}


def _train_workers() -> list[psutil.Process]:
    """This session's Ray Train workers (descendants of this test process, which started the local Ray)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("RayTrainWorker" in part for part in p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow        # 38 s; in CI a continued run: test_storage.py
def test_a_killed_worker_resumes_from_the_last_checkpoint(local_ray, tmp_path):
    out = tmp_path / "run"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        report=run(config(steps=80, val_every=10, max_failures=1), str(out), progress=False)))
    thread.start()
    deadline = time.time() + 240
    while not has_registered_checkpoint(out) and time.time() < deadline:          # registered, not just copied
        time.sleep(0.5)
    workers = _train_workers()
    assert workers, "no training worker found to kill"
    for w in workers:
        os.kill(w.pid, signal.SIGKILL)
    thread.join(timeout=300)
    final = result["report"]["final"]
    assert final["step"] == 80
    assert final["restored_from_step"] >= 10                             # restarted from a checkpoint


def cli(*args):
    return subprocess.run([sys.executable, "-m", "synthstream.cli", "train", *args], capture_output=True, text=True,
                          timeout=300)


def test_train_cli_bad_input(tmp_path):
    cases = [(["--workers", "3"], "need at least"),                   # these two start a Ray to learn they cannot
             (["--gpu"], "need GPU 1 (the cluster has 0); this cluster cannot grow"),
             (["--preset", "huge"], "preset 'huge' is unknown; available: paper, cpu, gpu"),
             (["--style", "nope"], "unknown style 'nope'")]
    ran = cli_all([["train", "--out", str(tmp_path / f"o{i}"), "--steps", "5", *args]
                   for i, (args, _) in enumerate(cases)])
    for (args, fragment), r in zip(cases, ran):
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert fragment in r.stderr, (args, r.stderr)


def test_resume_from_a_corrupt_checkpoint(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"garbage")
    r = cli("--out", str(out), "--steps", "5", "--resume")
    assert r.returncode == 2 and "not a synthstream run" in r.stderr and "Traceback" not in r.stderr
    assert (out / "checkpoint.pt").read_bytes() == b"garbage" and {p.name for p in out.iterdir()} == {"checkpoint.pt"}


@pytest.mark.slow        # ~1 min; a killed worker and a finished run continued stay in CI
def test_a_killed_driver_is_continued_by_the_same_command(tmp_path):
    """SIGKILL the driver (its embedded Ray goes with it) after the first checkpoint; the same command then
    continues from that checkpoint, and metrics.csv holds each validation step once."""
    out = tmp_path / "run"
    args = ["--style", "tiny", "--steps", "60", "--val-every", "10", "--batch-size", "32", "--no-progress",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "synthstream.cli", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not has_registered_checkpoint(out) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)                               # the driver alone
        proc.wait()
        r = cli(*args)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)                         # anything of it that lingered
        except ProcessLookupError:
            pass
    assert r.returncode == 0, r.stderr
    final = json.loads((out / "report.json").read_text())["final"]
    assert final["step"] == 60 and final["restored_from_step"] >= 10
    with (out / "metrics.csv").open() as f:
        steps = [int(float(row["step"])) for row in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] == 60


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_a_full_disk_fails_the_run_at_once_and_leaves_no_half_written_checkpoint(tmp_path):
    """A 30 MB disk holds the first checkpoint (19 MB) but not the second: the run ends with one line and exit 1
    (a restart cannot fix a full disk), the cut-short checkpoint folder is removed, the first one stays whole."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(disk)], check=True)
    try:
        r = cli("--style", "tiny", "--steps", "200", "--val-every", "10", "--batch-size", "16", "--val-size", "64",
                "--no-progress", "--out", str(disk / "run"))
        assert r.returncode == 1, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
        assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in r.stderr, r.stderr
        folders = [p for p in (disk / "run" / "ray" / "train").glob("checkpoint_*") if p.is_dir()]
        assert [checkpoint.load(f / checkpoint.FILE)["step"] for f in folders] == [10]     # whole, and only it
        assert not list(disk.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_tensorboard_on_a_full_disk_is_the_runs_one_error_line(tmp_path, capfd):
    """TensorBoard writes from its own thread: a full disk there is RunFailed in the driver, its thread prints
    no traceback, and closing the log afterwards does not raise over the run's error."""
    from trainer.run import MetricsLog
    from trainer.storage import RunStorage

    storage = RunStorage(str(tmp_path / "run"))
    storage.make()
    board = tmp_path / "run" / "tensorboard"
    board.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(board)], check=True)
    try:
        metrics = MetricsLog(storage)
        metrics.add([{"step": 1, "train_loss": 1.0}])
        with pytest.raises(OSError):                                   # fill the small disk
            (board / "filler").write_bytes(bytes(1 << 20))
        with pytest.raises(RunFailed, match="No space left on device"):
            for step in range(2, 2000):
                metrics.add([{"step": step, "train_loss": 1.0, "val/loss": 2.0}])
        metrics.close()
        assert "Traceback" not in capfd.readouterr().err
        assert (tmp_path / "run" / "metrics.csv").exists()
    finally:
        subprocess.run(["umount", "-l", str(board)], check=False)

