"""Sweeps on Ray Tune: bad spaces refused before anything starts (no Ray), a 2x2 grid completes, ASHA stops a
hopeless trial early, and a SIGKILLed sweep driver resumes without re-running finished trials."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.ray_private import live_detached_actors
from synthstream.errors import RunFailed, UserError
from trainer import checkpoint
from trainer.sweep import SweepConfig, TrialCleanup, check_space, load_space, parse_space, sweep


@pytest.fixture(scope="module")
def own_ray():
    """A fresh 2-CPU local Ray for these tests alone: earlier tests' leftovers must not change what fits."""
    import ray

    from cluster.local import connect

    ray.shutdown()
    connect(num_cpus=2)
    yield
    ray.shutdown()

ROOT = Path(__file__).resolve().parents[2]
# tiny trials: 1 generator at 0.25 CPU + 1 worker at 0.75 CPU, so two fit at once on 2 CPUs
TINY = {"style": "tiny", "steps": 20, "val_every": 10, "val_size": 64, "batch_size": 16, "warmup_steps": 5,
        "generator_cpus": 0.25, "worker_cpus": 0.75}


def write_space(path: Path, search: dict, **train) -> Path:
    def value(v):
        return json.dumps(v)

    lines = ["[train]"] + [f"{k} = {value(v)}" for k, v in {**TINY, **train}.items()] + ["[search]"]
    for name, (kind, values) in search.items():
        lines.append(f'"{name}" = {{ {kind} = {value(values)} }}')
    path.write_text("\n".join(lines) + "\n")
    return path


# -- bad spaces: one line naming the dotted field, before Ray or any trial ------------------------------------

BAD = [
    ({"train": {"lrr": 1e-3}, "search": {"lr": {"choice": [1e-3]}}}, "train.lrr: unknown option"),
    ({"search": {"lr": {"choice": []}}}, "search.lr.choice: is empty"),
    ({"search": {"lr": {"uniform": [1e-2, 1e-3]}}}, "search.lr.uniform: lo 0.01 > hi 0.001"),
    ({"search": {"lr": {"loguniform": [0, 1e-3]}}}, "search.lr.loguniform: lo 0 must be > 0"),
    ({"search": {"lr": {"normal": [0, 1]}}}, "search.lr.normal: unknown kind"),
    ({"search": {"batch_size": {"randint": [8.5, 16]}}}, "search.batch_size.randint"),
    ({"search": {"lr": {"choice": [1e-3, 2.0]}}}, "search.lr = 2.0: lr = 2.0 must be in (0, 1)"),
    ({"search": {"preset": {"grid": ["cpu", "huge"]}}}, "search.preset = 'huge': preset 'huge' is unknown"),
    ({"search": {"batch_size": {"uniform": [16, 32]}}}, "search.batch_size = 16.0: batch_size = 16.0 must be"),
    ({"search": {"warp.elastic_alpha": {"uniform": [-5.0, 4.0]}}}, "search.warp.elastic_alpha = -5.0"),
    ({"search": {"warp.elastik": {"choice": [1.0]}}}, "field warp.elastik"),
    ({"search": {"wrap.elastic_alpha": {"choice": [1.0]}}}, "search.wrap.elastic_alpha: unknown style section"),
    ({"search": {"style": {"choice": ["tiny", "nosuch"]}}}, "search.style = 'nosuch': unknown style"),
    ({"search": {"prior_scale": {"grid": [1.0, 20.0]}}}, "search.prior_scale = 20.0: prior scale 20.0"),
    ({"search": {"seed": {"choice": [1, 2]}}}, "search.seed: each trial's stream seed"),
    ({"train": {"lr": 1e-3}, "search": {"lr": {"choice": [1e-3]}}}, "search.lr: also set in [train]"),
    ({"train": {"steps": "many"}, "search": {"lr": {"choice": [1e-3]}}}, "train.steps: 'many' must be an integer"),
    ({"train": {"val_size": 0}, "search": {"lr": {"choice": [1e-3]}}}, "[train]: val_size = 0 must be"),
    ({"train": {}}, "search: no dimensions"),
]


@pytest.mark.parametrize("raw, message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_space_is_refused_naming_its_field(raw, message):
    with pytest.raises(UserError) as e:
        check_space(parse_space(raw, "s.toml"))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_sweep_settings_are_refused(tmp_path):
    space = parse_space({"search": {"lr": {"choice": [1e-3]}}})
    with pytest.raises(UserError, match="needs --eval-data"):
        SweepConfig(space=space, metric="eval/exact_rate", scheduler="none")
    with pytest.raises(UserError, match="ASHA cannot stop"):
        SweepConfig(space=space, metric="eval/exact_rate", eval_data=str(tmp_path))
    with pytest.raises(UserError, match="--metric 'val/nothing' is not reported"):
        sweep(SweepConfig(space=space, metric="val/nothing"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_the_cli_refuses_a_bad_space_in_one_line(tmp_path):
    space = write_space(tmp_path / "s.toml", {"lr": ("uniform", [0.1, 0.01])})
    p = subprocess.run([sys.executable, "-m", "synthstream", "sweep", "--space", str(space), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "search.lr.uniform: lo 0.1 > hi 0.01" in p.stderr and not (tmp_path / "out").exists()


# -- real sweeps on the local Ray --------------------------------------------------------------------------------

def rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow        # the tiny example below checks the same outputs in CI
def test_a_2x2_grid_completes(own_ray, tmp_path):
    space = load_space(write_space(tmp_path / "grid.toml", {"lr": ("grid", [1e-3, 3e-3]),
                                                            "prior_scale": ("grid", [1.0, 1.5])}))
    out = tmp_path / "out"
    best = sweep(SweepConfig(space=space, scheduler="none"), str(out))
    table = rows(out)
    assert len(table) == 4 and {r["status"] for r in table} == {"finished"}
    assert {(float(r["lr"]), float(r["prior_scale"])) for r in table} == {(a, b) for a in (1e-3, 3e-3)
                                                                          for b in (1.0, 1.5)}
    assert all(int(r["steps_run"]) == 20 and float(r["wall_s"]) > 0 for r in table)
    seeds = {json.loads((out / "trials" / r["trial_id"] / "run.json").read_text())["identity"]["seed"] for r in table}
    assert len(seeds) == 4                                                  # each trial its own stream
    assert {"results.csv", "best.json", "best.pt", "sweep.png", "sweep.json", "tune", "trials"} <= \
        {p.name for p in out.iterdir()}
    assert json.loads((out / "best.json").read_text())["trial_id"] == best["trial_id"]
    assert checkpoint.load(out / "best.pt")["step"] == 20 and checkpoint.load(out / "best.pt")["optimizer"] is None


@pytest.mark.slow        # minutes of Ray Tune trials: run with -m slow
def test_asha_stops_a_hopeless_trial_early(own_ray, tmp_path):
    # one at a time: the good lr reaches each rung first, then the near-zero lr is below its cutoff at step 10
    space = load_space(write_space(tmp_path / "asha.toml", {"lr": ("grid", [5e-3, 1e-9])}, steps=40))
    out = tmp_path / "out"
    best = sweep(SweepConfig(space=space, metric="train_loss", max_concurrent=1), str(out))
    by_lr = {float(r["lr"]): r for r in rows(out)}
    assert by_lr[5e-3]["status"] == "finished" and int(by_lr[5e-3]["steps_run"]) == 40
    assert by_lr[1e-9]["status"] == "stopped" and int(by_lr[1e-9]["steps_run"]) < 40
    assert by_lr[1e-9]["stopped_early"] == "True" and best["params"]["lr"] == 5e-3


@pytest.mark.slow        # minutes of Ray Tune trials: run with -m slow
def test_a_killed_sweep_driver_resumes_without_rerunning_finished_trials(tmp_path):
    space = write_space(tmp_path / "kill.toml", {"lr": ("grid", [1e-3, 3e-3])})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "synthstream", "sweep", "--space", str(space), "--out", str(out),
               "--scheduler", "none", "--max-concurrent", "1"]
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:          # the first trial finished and the second has started
            runs = sorted((out / "trials").glob("*")) if (out / "trials").is_dir() else []
            if len(runs) == 2 and (runs[0] / "report.json").exists() and (runs[1] / "run.json").exists():
                break
            assert driver.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("the sweep did not reach its second trial")
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    first = runs[0] / "checkpoint.pt"
    finished_at = first.stat().st_mtime_ns
    assert not (out / "results.csv").exists()

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuing the sweep" in again.stderr
    table = rows(out)
    assert len(table) == 2 and {r["status"] for r in table} == {"finished"}
    assert first.stat().st_mtime_ns == finished_at                  # the finished trial was not trained again
    assert len(list((out / "trials").iterdir())) == 2                # and no trial was added


# -- the shipped spaces' own example commands, on 2 CPUs (issue 24: the tiny example deadlocked) ---------------

SPACES = sorted((ROOT / "trainer" / "sweeps").glob("*.toml"))
SHORT = {"steps": 10, "val_every": 5, "val_size": 32}      # the header's command, with short trials


def header_command(space: Path) -> tuple[list[str], list[str]]:
    """The `synthstream sweep ...` command in a space file's header comment (continuation lines joined), and
    the shell lines before it (which prepare its data)."""
    lines = [ln[1:].strip() for ln in space.read_text().splitlines() if ln.startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ").replace("|\n", "| ")
    commands = [ln for ln in text.splitlines() if ln.startswith("synthstream sweep ")]
    assert len(commands) == 1, f"{space.name}: the header names one example command"
    setup = [ln for ln in text.splitlines() if ln.startswith(("mkdir ", "ls "))]
    return commands[0].split()[2:], setup


def shortened(space: Path, tmp: Path) -> Path:
    """The space with SHORT trials (style paths kept relative to the original)."""
    import tomllib

    raw = tomllib.loads(space.read_text())
    raw["train"] = {**raw.get("train", {}), **SHORT}
    body = ["[train]"] + [f"{k} = {json.dumps(v)}" for k, v in raw["train"].items()] + ["[search]"]
    body += [f'"{k}" = {{ {kind} = {json.dumps(v)} }}' for k, spec in raw["search"].items() for kind, v in spec.items()]
    out = tmp / space.name
    out.write_text("\n".join(body) + "\n")
    return out


def run_header_example(space: Path, tmp: Path) -> tuple[dict, Path]:
    """Run the header's command (as the CLI parses it) on the test's 2-CPU Ray, into a temporary --out."""
    from synthstream import cli

    argv, setup = header_command(space)
    out = tmp / "out"
    argv[argv.index("--space") + 1] = str(shortened(space, tmp))
    argv[argv.index("--out") + 1] = str(out)
    if "--eval-data" in argv:                             # the header's dev half, as its setup lines make it
        dev = tmp / "dev"
        dev.mkdir()
        real = ROOT / "../shared/data/real-captchas/wikipedia"
        if not real.is_dir():
            pytest.skip("../shared/data/real-captchas is not present")
        assert any("head -125" in ln for ln in setup)
        for name in sorted(p.name for p in real.iterdir())[:125]:
            (dev / name).symlink_to(real.resolve() / name)
        argv[argv.index("--eval-data") + 1] = str(dev)
    args = cli.build_parser().parse_args(["sweep", *argv])
    args.func(args)
    return json.loads((out / "best.json").read_text()), out


def test_every_space_file_has_an_example_command():
    assert SPACES and all(header_command(s)[0][:2] == ["--space", f"trainer/sweeps/{s.name}"] for s in SPACES)


def test_the_tiny_example_completes_with_more_trials_than_fit_at_once(own_ray, tmp_path):
    # 2 trials x a 2-point grid = 4 trials, 2 at once on 2 CPUs, ASHA stopping some: each stopped trial's
    # worker placement group must be freed, or the next trials wait for ever (the deadlock of issue 24)
    import ray

    best, out = run_header_example(ROOT / "trainer" / "sweeps" / "tiny.toml", tmp_path)
    table = rows(out)
    assert len(table) == 4 and {r["status"] for r in table} <= {"finished", "stopped"}
    assert sum(best["trials"].values()) == 4 and best["trials"]["failed"] == 0
    assert sorted(float(r["prior_scale"]) for r in table) == [1.0, 1.0, 1.5, 1.5]       # the grid, twice
    seeds = {json.loads((out / "trials" / r["trial_id"] / "run.json").read_text())["identity"]["seed"] for r in table}
    assert len(seeds) == 4                                                  # each trial its own stream
    assert {"results.csv", "best.json", "best.pt", "sweep.png", "sweep.json", "tune", "trials"} <= \
        {p.name for p in out.iterdir()}
    assert best["trial_id"] in {r["trial_id"] for r in table} and checkpoint.load(out / "best.pt")["optimizer"] is None
    deadline = time.monotonic() + 60                        # nothing of the sweep holds the cluster after it
    while ray.available_resources().get("CPU") != 2.0 or live_detached_actors(TrialCleanup.TRAIN_GROUP_CLEANER):
        assert time.monotonic() < deadline, (ray.available_resources(), "or Ray Train's cleaner actors stayed")
        time.sleep(0.5)


@pytest.mark.slow        # 8 trials one at a time, each ending with a beam-search evaluation of 125 real captchas
def test_the_wikipedia_prior_scale_example_completes(own_ray, tmp_path):
    best, out = run_header_example(ROOT / "trainer" / "sweeps" / "wikipedia_prior_scale.toml", tmp_path)
    assert len(rows(out)) == 8 and best["trials"]["finished"] == 8 and 0 <= best["value"] <= 1


def test_placement_groups_of_dead_actors_are_freed(own_ray):
    """What a trial Tune stopped leaves behind: a placement group made by an actor that is gone, and the
    detached cleaner actor Ray Train's controller started."""
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    class PlacementGroupCleaner:                             # named like Ray Train's, which waits for ever
        def ping(self):
            return True

    @ray.remote(num_cpus=0)
    class Controller:
        def start(self):
            group = placement_group([{"CPU": 0.5}])
            ray.get(group.ready())
            self.cleaner = ray.remote(num_cpus=0)(PlacementGroupCleaner).options(lifetime="detached").remote()
            ray.get(self.cleaner.ping.remote())
            return group.id.hex()

    mine = placement_group([{"CPU": 0.25}])                  # the driver's own: kept
    controller, alive = Controller.remote(), Controller.remote()
    made = ray.get(controller.start.remote())
    kept = ray.get(alive.start.remote())                     # a live controller's group and cleaner: kept
    cleaners = TrialCleanup.TRAIN_GROUP_CLEANER
    deadline = time.monotonic() + 60

    def free_until(done) -> None:
        while not done():
            assert time.monotonic() < deadline, "the dead actor's placement group or cleaner was not freed"
            TrialCleanup().free()
            time.sleep(0.5)

    ray.kill(controller)
    free_until(lambda: placement_group_table().get(made, {}).get("state") == "REMOVED" and
               live_detached_actors(cleaners) == 1)
    assert placement_group_table(mine)["state"] != "REMOVED" and placement_group_table()[kept]["state"] != "REMOVED"
    ray.kill(alive)
    free_until(lambda: live_detached_actors(cleaners) == 0)
    remove_placement_group(mine)


def test_a_trial_whose_workers_cannot_be_placed_fails_in_one_line(own_ray, tmp_path):
    """Its generators start, then the CPUs its workers need are taken: after --resource-wait it fails."""
    import threading

    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    space = load_space(write_space(tmp_path / "s.toml", {"lr": ("choice", [1e-3])}))
    out = tmp_path / "out"
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(error=_sweep_error(space, out)))
    thread.start()
    deadline = time.monotonic() + 300
    while not list(out.glob("trials/*/run.json")):                # the trial checked its resources and began
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    hog = placement_group([{"CPU": ray.available_resources().get("CPU", 0.0)}])
    try:
        thread.join(timeout=300)
    finally:
        remove_placement_group(hog)
    assert not thread.is_alive() and isinstance(outcome["error"], RunFailed)
    (row,) = rows(out)
    assert row["status"] == "failed" and "could not be placed within 5 s" in row["error"], row


def _sweep_error(space, out):
    try:
        sweep(SweepConfig(space=space, resource_wait_s=5.0, scheduler="none"), str(out))
    except Exception as e:  # noqa: BLE001 - the test inspects it
        return e
    return None


@pytest.mark.parametrize("how", ["ctrl-c", pytest.param("sigterm", marks=pytest.mark.slow)])  # sigterm: nightly
def test_an_interrupted_sweep_ends_within_seconds(tmp_path, how):
    """Ctrl-C reaches the whole process group (the driver and its embedded Ray); SIGTERM (`ray job stop`, a
    pod's shutdown) only the driver. Either ends the sweep at once with one line, not after Ray's minute of
    'Failed to connect to GCS'."""
    space = write_space(tmp_path / "s.toml", {"lr": ("grid", [1e-3, 3e-3])})
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "synthstream", "sweep", "--space", str(space), "--out",
                               str(out), "--scheduler", "none"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("trials/*/run.json")):
            assert time.monotonic() < deadline and driver.poll() is None, driver.stderr.read()[-2000:]
            time.sleep(0.2)
        if how == "ctrl-c":
            os.killpg(driver.pid, signal.SIGINT)
        else:
            os.kill(driver.pid, signal.SIGTERM)
        t0 = time.monotonic()
        _, err = driver.communicate(timeout=90)
        took = time.monotonic() - t0
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    last = err.strip().splitlines()[-1]               # (Ray turns a signal during a blocking call into Ctrl-C)
    assert (driver.returncode, last) in ((130, "synthstream: interrupted"), (143, "synthstream: stopped by SIGTERM"))
    assert took < 20 and "Failed to connect to GCS" not in err, (took, err[-2000:])
