"""The embedded local Ray: loopback only (Ray Train's torch process group too), a private token file and temp
folder, no processes left after its driver dies, a prompt one-line failure for an unreachable cluster or
something that is not Ray, and workers' log lines on a joining driver. Each scenario runs its own driver in a
subprocess, two at a time."""

import functools
import http.server
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from cluster.local import gcs_host_port, private_temp_dir, secure_token_file, wait_for_gcs
from synthstream.errors import UserError

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent("""
    import json, os, sys, time
    import psutil, ray
    from cluster.local import connect, TOKEN_FILE

    connect(num_cpus=1)
    ray.get(ray.remote(lambda: 1).remote())        # a worker process too
    time.sleep(3)                                  # let the agents and metrics exporters open their ports
    me = psutil.Process()
    names = {p.pid: p.name() for p in [me, *me.children(recursive=True)]}
    listening = {}
    for c in psutil.net_connections("inet"):       # what `ss -ltnp` shows, for this driver's processes
        if c.status == psutil.CONN_LISTEN and c.pid in names:
            listening.setdefault(f"{c.pid} {names[c.pid]}", []).append(f"{c.laddr.ip} {c.laddr.port}")
    print(json.dumps({"listening": listening, "token_mode": oct(TOKEN_FILE.stat().st_mode & 0o777),
                      "token_path": str(TOKEN_FILE), "node_ip": ray.util.get_node_ip_address(),
                      "session_dir": ray._private.worker._global_node.get_session_dir_path(),
                      "pids": [p.pid for p in me.children(recursive=True)]}), flush=True)
    if sys.argv[1] == "shutdown":
        ray.shutdown()
        print(json.dumps({"after_shutdown": [p.pid for p in me.children(recursive=True)]}), flush=True)
    else:
        time.sleep(600)
""")


def _start_driver(mode: str, home: Path) -> subprocess.Popen:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-c", DRIVER, mode], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_gone(pids, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(pids)


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if getattr(addr, "ipv4_mapped", None):
        addr = addr.ipv4_mapped
    return addr.is_loopback


# -- drivers in subprocesses: they mostly wait on Ray (its start-up, its agents opening ports, its processes
# exiting), so they start together when the first test asks, two at a time; each test waits for its own
# scenario (the scenario's assertions, below, fail in the pool's thread and surface in that test)

@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    scenarios = {
        "loopback": _listens_on_loopback_and_keeps_its_token_private,
        "sigkill": _sigkilled_driver_leaves_no_ray_process,
        "killed-at-once": _driver_killed_right_after_connecting_leaves_no_ray_process,
        "sigterm-exiting": functools.partial(_sigterm_while_exiting_ends_the_driver_without_a_traceback, mode="done"),
        "joining": _joining_driver_shows_its_workers_log_lines,
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(scenario, tmp_path_factory.mktemp(name)) for name, scenario in scenarios.items()}


def test_embedded_ray_listens_on_loopback_and_keeps_its_token_private(drivers):
    drivers["loopback"].result()


def test_a_sigkilled_driver_leaves_no_ray_process(drivers):
    drivers["sigkill"].result()


def test_a_driver_killed_right_after_connecting_leaves_no_ray_process(drivers):
    drivers["killed-at-once"].result()


@pytest.mark.parametrize("mode", ["done", pytest.param("raw", marks=pytest.mark.slow)])   # raw: nightly, 12 s
def test_a_sigterm_while_exiting_ends_the_driver_without_a_traceback(drivers, tmp_path, mode):
    if mode == "done":
        drivers["sigterm-exiting"].result()
    else:
        _sigterm_while_exiting_ends_the_driver_without_a_traceback(tmp_path, mode)


def test_a_joining_driver_shows_its_workers_log_lines(drivers):
    drivers["joining"].result()


def _listens_on_loopback_and_keeps_its_token_private(tmp_path):
    driver = _start_driver("shutdown", tmp_path)
    try:
        report = json.loads(driver.stdout.readline())
        after = json.loads(driver.stdout.readline())
        assert driver.wait(timeout=60) == 0
    finally:
        driver.kill()
    sockets = [(proc, addr) for proc, addrs in report["listening"].items() for addr in addrs]
    assert len(sockets) >= 8, report           # GCS, raylet, agents, workers: something was measured
    exposed = [(proc, addr) for proc, addr in sockets if not _is_loopback(addr.split()[0])]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    assert report["node_ip"] == "127.0.0.1"
    assert report["token_path"] == str(tmp_path / ".ray" / "auth_token") and report["token_mode"] == "0o600"
    session = Path(report["session_dir"])
    private = private_temp_dir()
    assert session.parent == private / "ray" and private.stat().st_mode & 0o777 == 0o700, session
    assert _wait_gone(report["pids"] + after["after_shutdown"], 10) == []   # the watcher leaves with Ray


def _sigkilled_driver_leaves_no_ray_process(tmp_path):
    driver = _start_driver("sleep", tmp_path)
    try:
        pids = json.loads(driver.stdout.readline())["pids"]
        assert len(_alive(pids)) >= 5        # gcs, raylet, agents, dashboard head, monitors, worker, watcher
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    left = _wait_gone(pids, 10)
    names = []
    for pid in left:
        try:
            names.append(psutil.Process(pid).name())
            psutil.Process(pid).kill()           # do not leak them into the rest of the suite
        except psutil.Error:
            pass
    assert left == [], f"still running 10 s after the driver was killed: {names}"


QUICK = textwrap.dedent("""
    import time
    from cluster.local import connect

    connect(num_cpus=1)
    print("connected", flush=True)
    time.sleep(600)
""")


def _ray_processes(tag: str) -> dict[int, str]:
    """Ray's processes that carry `tag` in their environment (inherited from our driver): other Ray instances
    on this machine (other users', other tests') are neither counted nor touched."""
    out = {}
    for p in psutil.process_iter(["name", "cmdline"]):
        text = " ".join([p.info["name"] or "", *(p.info["cmdline"] or [])])
        if any(k in text for k in ("raylet", "gcs_server", "dashboard", "runtime_env", "ray::", "log_monitor",
                                   "monitor.py", "default_worker")):
            try:
                if p.environ().get(TAG_ENV) == tag:
                    out[p.pid] = p.info["name"]
            except psutil.Error:
                pass
    return out


TAG_ENV = "SYNTHSTREAM_TEST_DRIVER"


def _driver_killed_right_after_connecting_leaves_no_ray_process(tmp_path):
    """Ray starts its agents after `connect` returns; the watcher notes them when the driver dies, even when
    that is before its next poll (it polls once a second)."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), TAG_ENV: tag}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-c", QUICK], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert driver.stdout.readline().strip() == "connected"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    left = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = _ray_processes(tag)
        if not left:
            break
        time.sleep(0.2)
    for pid in left:
        try:
            psutil.Process(pid).kill()           # ours (tagged): do not leak them into the rest of the suite
        except psutil.Error:
            pass
    assert left == {}, f"still running 10 s after the driver was killed: {left}"


EXITING = textwrap.dedent("""
    import atexit, json, os, signal, sys, time
    import psutil
    from cluster.local import connect, exit_quietly_on_sigterm

    connect(num_cpus=1)
    time.sleep(3)                                  # a command's work: the watcher has seen Ray's agents start
    print(json.dumps([p.pid for p in psutil.Process().children(recursive=True)]), flush=True)
    atexit.register(os.kill, os.getpid(), signal.SIGTERM)   # a SIGTERM while exiting (runs before Ray's shutdown)
    if sys.argv[1] == "done":
        exit_quietly_on_sigterm()                          # what the CLI does once its command has returned
""")


def _sigterm_while_exiting_ends_the_driver_without_a_traceback(tmp_path, mode):
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.run([sys.executable, "-c", EXITING, mode], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    pids = json.loads(driver.stdout.splitlines()[0])
    if mode == "raw":                     # without it: `Stopped` raised inside an exit handler, a traceback
        assert "Traceback" in driver.stderr and "stopped by SIGTERM" in driver.stderr
    else:
        assert driver.returncode == 143 and "Traceback" not in driver.stderr, driver.stderr
    assert _wait_gone(pids, 10) == []     # the watcher ends the Ray processes the exit left behind


def test_token_file_is_made_private(tmp_path):
    token = tmp_path / ".ray" / "auth_token"
    secure_token_file(token)
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    first = token.read_text()
    token.chmod(0o644)
    secure_token_file(token)
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == first     # kept, only chmod-ed


@pytest.mark.parametrize("address", ["127.0.0.1:1", "192.0.2.1:6379"])    # refused; TEST-NET (no route/dropped)
def test_an_unreachable_cluster_fails_within_the_timeout_in_one_line(address):
    start = time.monotonic()
    with pytest.raises(UserError) as e:
        wait_for_gcs(address, 2.0)
    took = time.monotonic() - start
    assert took < 4.0
    msg = str(e.value)
    assert msg.count("\n") == 0 and f"cannot reach the Ray cluster at {address!r} within 2 s" in msg


def test_addresses_are_checked_before_connecting():
    assert gcs_host_port("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert gcs_host_port("ray://head:10001") == ("head", 10001)
    assert gcs_host_port("[::1]:6379") == ("::1", 6379)
    assert gcs_host_port("auto") is None
    for bad in ("nohost", "host:port", "host:0", ":6379"):
        with pytest.raises(UserError, match="expected HOST:PORT"):
            gcs_host_port(bad)
    with pytest.raises(UserError, match="unknown host"):
        wait_for_gcs("no-such-host.invalid:6379", 2.0)


def test_private_temp_dir_is_this_users_alone(tmp_path):
    made = private_temp_dir(tmp_path)
    assert made == tmp_path / f"synthstream-{os.getuid()}" and made.stat().st_mode & 0o777 == 0o700
    made.chmod(0o777)
    assert private_temp_dir(tmp_path) == made and made.stat().st_mode & 0o777 == 0o700      # tightened
    made.rmdir()
    (tmp_path / "elsewhere").mkdir()
    made.symlink_to(tmp_path / "elsewhere")                 # a link planted where the folder goes: refused
    with pytest.raises(UserError, match="not a folder of this user's"):
        private_temp_dir(tmp_path)


@pytest.fixture
def http_port():
    """An HTTP server on loopback: a port that accepts TCP but is not Ray."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_address_that_is_not_ray_fails_at_once_in_one_line(http_port):
    start = time.monotonic()
    with pytest.raises(UserError) as e:
        wait_for_gcs(f"127.0.0.1:{http_port}", 30.0)
    assert time.monotonic() - start < 1.0                  # its HTTP/1 answer, not the probe's 5 s or the 30 s
    msg = str(e.value)
    assert msg.count("\n") == 0 and "not a Ray cluster (it answered b'" in msg and "not HTTP/2" in msg


def test_a_port_that_accepts_but_never_answers_fails_after_the_probes_bound():
    with socket.create_server(("127.0.0.1", 0)) as silent:
        start = time.monotonic()
        with pytest.raises(UserError) as e:
            wait_for_gcs(f"127.0.0.1:{silent.getsockname()[1]}", 1.5)
        took = time.monotonic() - start
    assert 0.5 <= took < 3.0 and "no HTTP/2 handshake within" in str(e.value)


def test_a_real_ray_passes_the_probe(local_ray):
    import ray

    start = time.monotonic()
    wait_for_gcs(ray.get_runtime_context().gcs_address, 5.0)
    assert time.monotonic() - start < 1.0


def test_the_cli_refuses_an_address_that_is_not_ray_with_exit_2(http_port, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "synthstream", "train", "--style", "tiny", "--steps", "1", "--out",
                        str(tmp_path / "run"), "--address", f"127.0.0.1:{http_port}"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Ray cluster" in lines[0], r.stderr[-2000:]
    assert took < 30 and not (tmp_path / "run").exists()


JOINING = textwrap.dedent("""
    import ray
    from ray.cluster_utils import Cluster
    from cluster.local import connect

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 << 20})
    try:
        connect(cluster.address)                           # joining: quiet by default
        @ray.remote
        def hello():
            print("progress line from a worker", flush=True)
        ray.get(hello.remote())
        import time; time.sleep(2)                          # the log monitor forwards lines about every 0.5 s
        ray.shutdown()
    finally:
        cluster.shutdown()
""")


def _joining_driver_shows_its_workers_log_lines(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    # ray.init exports RAY_AUTH_MODE=token into this process (the session's embedded Ray); inherited together with
    # an empty HOME it stops the child's fresh head from starting its GCS. The child starts as a user's would.
    env.pop("RAY_AUTH_MODE", None)
    r = subprocess.run([sys.executable, "-c", JOINING], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "progress line from a worker" in r.stdout + r.stderr


LOOPBACK_GROUP = textwrap.dedent("""
    import json, sys
    import psutil, torch, torch.distributed as dist
    from cluster import loopback_torch

    port = loopback_torch._listen()
    loopback_torch._join("gloo", 0, 1, port, 60)
    t = torch.ones(1)
    dist.all_reduce(t)
    print(json.dumps([c.laddr.ip for c in psutil.Process().net_connections("inet")
                      if c.status == psutil.CONN_LISTEN]))
    dist.destroy_process_group()
""")


def test_the_torch_process_group_listens_on_loopback_only():
    """What Ray Train's workers run on the embedded Ray (cluster/loopback_torch.py), without Ray: the store and
    Gloo on 127.0.0.1, where torch's own TCPStore would bind `::` (every interface)."""
    r = subprocess.run([sys.executable, "-c", LOOPBACK_GROUP], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    ips = json.loads(r.stdout.splitlines()[-1])
    assert len(ips) >= 2 and all(_is_loopback(ip) for ip in ips), ips


TRAINING = textwrap.dedent("""
    import json, os, sys
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from cluster.local import connect
    from cluster.loopback_torch import torch_config

    connect(num_cpus=2)

    def loop(config):
        import psutil, torch, torch.distributed as dist, ray.train
        t = torch.ones(1)
        dist.all_reduce(t)                               # the process group is up and used
        listening = [c.laddr.ip for c in psutil.Process().net_connections("inet") if c.status == psutil.CONN_LISTEN]
        with open(os.path.join(config["out"], f"rank{ray.train.get_context().get_world_rank()}.json"), "w") as f:
            json.dump({"sum": t.item(), "listening": listening}, f)

    TorchTrainer(loop, train_loop_config={"out": sys.argv[1]}, torch_config=torch_config(),
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                 run_config=RunConfig(storage_path=sys.argv[1], name="t")).fit()
""")


@pytest.mark.slow                           # ~80 s on 2 shared cores: Ray Train's start-up
def test_an_embedded_training_listens_on_loopback_only(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-c", TRAINING, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [r["sum"] for r in ranks] == [2.0, 2.0]
    ips = [ip for r in ranks for ip in r["listening"]]
    assert len(ips) >= 3 and all(_is_loopback(ip) for ip in ips), ranks     # rank 0 also holds the store
