"""Start or join Ray: an embedded local instance by default, an existing cluster by address.

The embedded instance is a single-machine Ray confined to loopback: it runs in Ray's single-machine mode
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, the mode Ray uses on macOS and Windows), whose node address is
127.0.0.1, and other hosts cannot join it. What listens where (TCP, `ss -ltnp`, Ray 2.60), all on loopback:
  - gRPC, on ::ffff:127.0.0.1 (a dual-stack socket bound to 127.0.0.1), random ports: the GCS, the raylet
    (two), the dashboard agent, this driver and every worker;
  - HTTP on 127.0.0.1: Prometheus metrics of the dashboard agent (random port), of the dashboard head (44227)
    and of the autoscaler monitor (44217); the dashboard agent's HTTP API (52365); the runtime-env agent
    (random port).
Ray also starts its dashboard head (dashboard.py): with include_dashboard=False it runs without its web UI and
listens only on its metrics port above. The metrics endpoints answer without authentication (to this
machine's users only: loopback). Ray Train's torch process group is confined to loopback too
(cluster/loopback_torch.py). The object store and the raylet also use Unix sockets in the session folder,
which lives in a private temp folder (`private_temp_dir`: $TMPDIR/synthstream-<uid>, mode 0700; Ray makes its
own `ray/` folder in it 0777, as it does /tmp/ray, but no other user can enter the parent) unless $RAY_TMPDIR
names one. Token authentication stays on (every RPC needs the token in ~/.ray/auth_token, which is made, or
kept, mode 0600). The object store is small (512 MiB unless told) so the stream's in-flight cap stays far
below its spill threshold.

An embedded Ray does not outlive its driver by more than a few seconds: a small watcher process records
the driver's Ray processes and, once the driver is gone (even SIGKILLed), ends those still running
(Ray's own agents would otherwise wait a minute or more on the dead GCS before exiting).

Ray Train's controller polls its workers every `RAY_TRAIN_HEALTH_CHECK_INTERVAL_S` (Ray's default 2 s) and takes
a worker's report only when it polls, and a worker's second report waits for its first to be taken: a short
run pays several intervals to start, report and end (measured: `pytest tests/integration/test_train.py` with the
variable at 2.0, then at this default, on the same shared cores: 121 s, 98 s). The embedded instance has a few
workers on one machine, where a poll costs nothing, so it polls every `LOCAL_TRAIN_POLL_S` unless that variable
is set; its processes inherit it. Ray Train's preemption watcher (an actor per run, ~1 s of a core to start,
polling for nodes being drained) is off there unless `RAY_TRAIN_ENABLE_PREEMPTION_WATCHER` is set: the one
machine has no node to drain. A cluster keeps what it was started with.

Joining a cluster (`address`, or $RAY_ADDRESS) first checks, within `timeout_s` (default
$SYNTHSTREAM_CONNECT_TIMEOUT_S, else 30 s), that the address's port accepts a TCP connection and speaks
gRPC (Ray's protocol: an HTTP server or any other service there is refused at once instead of ray.init
retrying for minutes), so a wrong address is one line instead of a hang. The workers' log lines are
forwarded to this driver (`log_to_driver`), so a cluster job's log (`kubectl logs` of a RayJob's submitter)
shows them. A cluster's own listening sockets are set where it was started (`ray start --node-ip-address
...`), not here: docs/security.md lists them.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cluster.ray_private import object_store_stats, single_machine_mode  # noqa: F401 (re-exported)
from synthstream.errors import UserError

DEFAULT_OBJECT_STORE_MB = 512
MAX_OBJECT_STORE_MB = 1 << 20
DEFAULT_CONNECT_TIMEOUT_S = 30.0
GRPC_PROBE_S = 5.0                                             # a GCS that accepts TCP answers HTTP/2 in ms
CONNECT_TIMEOUT_ENV = "SYNTHSTREAM_CONNECT_TIMEOUT_S"
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"         # read by Ray Train's controller (ray.train.v2)
LOCAL_TRAIN_POLL_S = "0.25"
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # Ray Train's per-run actor watching node drains
TOKEN_FILE = Path.home() / ".ray" / "auth_token"              # where Ray reads and writes its token
_watchers: list[subprocess.Popen] = []                         # kept open: their stdin closes when we die


def connect(address: str | None = None, *, num_cpus: int | None = None,
            object_store_mb: int = DEFAULT_OBJECT_STORE_MB, quiet: bool = True,
            timeout_s: float | None = None) -> str:
    """ray.init once; returns "local" or the address joined. `address` or $RAY_ADDRESS joins a cluster."""
    import ray

    if ray.is_initialized():
        return "existing"
    if not 75 <= object_store_mb <= MAX_OBJECT_STORE_MB:
        raise UserError(f"object store size {object_store_mb} MiB must be in [75, {MAX_OBJECT_STORE_MB}]")
    address = address or os.environ.get("RAY_ADDRESS") or None
    logging_level = "ERROR" if quiet else "INFO"
    if address:
        wait_for_gcs(address, connect_timeout(timeout_s))
        try:
            ray.init(address=address, logging_level=logging_level, log_to_driver=True)  # workers' lines in the job log
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise UserError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
        _stop_on_sigterm()
        return address
    secure_token_file()
    before = _child_pids()
    watcher = _watch_driver(before)                 # before ray.init: a driver may die while Ray starts
    temp_dir = None if os.environ.get("RAY_TMPDIR") else str(private_temp_dir() / "ray")
    os.environ.setdefault(TRAIN_POLL_ENV, LOCAL_TRAIN_POLL_S)     # before ray.init: its processes inherit it
    os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")           # one machine: no node of it is drained
    with single_machine_mode():
        ray.init(num_cpus=num_cpus, object_store_memory=object_store_mb << 20, include_dashboard=False,
                 logging_level=logging_level, log_to_driver=not quiet, _temp_dir=temp_dir)
    secure_token_file()
    _tell_watcher(watcher, sorted(_child_pids() - before - {watcher.pid}))
    _stop_on_sigterm()
    return "local"


def _stop_on_sigterm() -> None:
    """SIGTERM (`ray job stop`, a pod's shutdown) raises `Stopped` in the main thread, like Ctrl-C, instead of
    Ray's handler dumping a native stack: the CLI ends with one line, and the run continues on the next try."""
    import signal
    import threading

    from synthstream.errors import Stopped

    def stop(signum, frame):
        raise Stopped("stopped by SIGTERM")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def exit_quietly_on_sigterm() -> None:
    """From now on (the command's work is done, the process is exiting: Ray's atexit shutdown can take seconds)
    SIGTERM ends the process at once with status 143 instead of raising `Stopped` inside the exit handlers,
    which would print a traceback; the watcher ends an embedded Ray's processes."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(143))


# -- joining: fail fast on an unreachable address -----------------------------------------------------------

def connect_timeout(timeout_s: float | None = None) -> float:
    """The connect timeout: the argument, else $SYNTHSTREAM_CONNECT_TIMEOUT_S, else 30 s."""
    if timeout_s is None:
        text = os.environ.get(CONNECT_TIMEOUT_ENV, "")
        try:
            timeout_s = float(text) if text else DEFAULT_CONNECT_TIMEOUT_S
        except ValueError:
            raise UserError(f"${CONNECT_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not timeout_s > 0:
        raise UserError(f"connect timeout {timeout_s} s must be > 0")
    return float(timeout_s)


def gcs_host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a "HOST:PORT" or "ray://HOST:PORT" address; None for "auto"/"local" (found by Ray)."""
    if address in ("auto", "local"):
        return None
    bare = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = bare.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address!r}: expected HOST:PORT, e.g. 10.0.0.5:6379")
    return host, int(port)


def wait_for_gcs(address: str, timeout_s: float) -> None:
    """Return once the address's port accepts a TCP connection and speaks gRPC; UserError (one line) after
    `timeout_s`, or at once when something else answers there."""
    target = gcs_host_port(address)
    if target is None:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection(target, timeout=max(min(left, 5.0), 0.05)):
                pass
            return _check_http2(address, target, max(min(deadline - time.monotonic(), GRPC_PROBE_S), 0.5))
        except OSError as e:
            why = e.strerror or type(e).__name__.replace("Error", " error").lower() or str(e)
            if isinstance(e, socket.gaierror):
                raise UserError(f"--address {address!r}: unknown host {target[0]!r}") from None
        if time.monotonic() + 0.5 >= deadline:
            raise UserError(f"cannot reach the Ray cluster at {address!r} within {timeout_s:g} s ({why}); check "
                            f"the address and that `ray start --head` runs there (${CONNECT_TIMEOUT_ENV} "
                            f"sets the wait)")
        time.sleep(0.5)


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])   # + an empty SETTINGS
HTTP2_SETTINGS = 4                                             # the frame type a server must send first


def _check_http2(address: str, target: tuple[str, int], timeout_s: float) -> None:
    """UserError unless `target` speaks HTTP/2 (gRPC's transport): sent the client connection preface, a server
    must answer with a SETTINGS frame first (RFC 9113, 3.4). An HTTP/1 server answers with text or closes at
    once, so a wrong port fails in milliseconds; silence fails after `timeout_s`. Skipped under TLS
    ($RAY_USE_TLS), which this plain-text probe cannot speak."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    deadline = time.monotonic() + timeout_s
    head = b""
    try:
        with socket.create_connection(target, timeout=timeout_s) as sock:
            sock.sendall(HTTP2_PREFACE)
            while len(head) < 9 and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except OSError:                                      # a reset, or silence until the deadline
        pass
    if len(head) < 9 or head[3] != HTTP2_SETTINGS:
        why = f"it answered {head[:9]!r}, not HTTP/2" if head else f"no HTTP/2 handshake within {timeout_s:g} s"
        raise UserError(f"--address {address!r}: something answers there but it is not a Ray cluster ({why}); give "
                        f"the head's GCS port (6379 unless changed) or its Ray client port (ray://HOST:10001)")


# -- the embedded instance: loopback, private token, private temp folder, no orphans -------------------------

def private_temp_dir(base: Path | None = None) -> Path:
    """$TMPDIR/synthstream-<uid>, a folder only this user may enter (0700), for the embedded Ray's session
    folders (Ray makes the ones it creates 0777, and /tmp/ray is 0777 without the sticky bit). An existing
    one is used only if it is a real folder (not a link) owned by this user; its mode is set to 0700."""
    path = (base or Path(tempfile.gettempdir())) / f"synthstream-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise UserError(f"{str(path)!r} is not a folder of this user's (a link, or someone else's): remove "
                            f"it, or set $RAY_TMPDIR to a private folder")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)
    except OSError as e:
        raise UserError(f"cannot make the private temp folder {str(path)!r}: {e.strerror}") from None
    return path


def secure_token_file(path: Path = TOKEN_FILE) -> None:
    """Make Ray's token file readable by this user only: create it 0600 if missing, else chmod it 0600.

    Ray would write a missing one with the umask's mode (usually 0644); writing it first, with the same
    kind of token (32 random bytes as hex), means it is never readable by others, not even for a moment.
    """
    import secrets

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
            return
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except OSError as e:
        raise UserError(f"cannot secure Ray's token file {str(path)!r}: {e.strerror}") from None


def _child_pids() -> set[int]:
    import psutil  # imported after ray, which provides a copy

    return {p.pid for p in psutil.Process().children()}


def _watch_driver(earlier_children: set[int]) -> subprocess.Popen:
    """Start, before ray.init, a watcher that ends the embedded Ray's processes once this driver has gone
    (see `_watcher_main`); `_tell_watcher` then names them. It exits by itself after ray.shutdown."""
    import psutil  # Ray's own copy when no other is installed (Ray puts it on sys.path)

    paths = [str(Path(__file__).resolve().parents[1]), str(Path(psutil.__file__).resolve().parents[1])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [*paths, os.environ.get("PYTHONPATH")]))}
    code = "from cluster.local import _watcher_main; _watcher_main()"
    watcher = subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), *map(str, sorted(earlier_children))],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    _watchers.append(watcher)
    return watcher


def _tell_watcher(watcher: subprocess.Popen, ray_pids: list[int]) -> None:
    """Name the processes ray.init started (one line on the watcher's stdin, which stays open)."""
    try:
        watcher.stdin.write((" ".join(map(str, ray_pids)) + "\n").encode())
        watcher.stdin.flush()
    except OSError:
        pass                                         # the watcher has gone: nothing to tell


def _watcher_main(poll_s: float = 1.0, grace_s: float = 2.0, startup_s: float = 10.0) -> None:
    """The watcher (argv: the driver's pid, then the driver's children from before ray.init). Until the driver
    names Ray's processes (a line on stdin), every child the driver starts is Ray's; after, the named ones and
    their descendants are too. Every 50 ms for the first `startup_s` (while Ray starts its agents, which are
    orphaned and out of reach once the driver and with it the raylet dies), then every `poll_s`, it notes them;
    once the driver has gone (stdin closes), it SIGTERMs those still running and SIGKILLs them after `grace_s`.
    It returns early when every named process has ended (ray.shutdown did the work)."""
    import select

    import psutil

    fast_until = time.monotonic() + startup_s
    driver_pid, earlier = int(sys.argv[1]), {int(a) for a in sys.argv[2:]} | {os.getpid()}
    seen: dict[int, psutil.Process] = {}
    named = False

    def running() -> list[psutil.Process]:
        out = []
        for p in list(seen.values()):
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:   # is_running checks pid reuse
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def note_descendants(parents: list[psutil.Process]) -> None:
        for p in parents:
            try:
                for child in p.children(recursive=True):
                    if child.pid not in earlier:
                        seen.setdefault(child.pid, child)
            except psutil.Error:
                pass

    def name(line: bytes) -> None:                  # what ray.init started, beside what was seen starting
        for pid in map(int, line.split()):
            try:
                seen[pid] = psutil.Process(pid)
            except psutil.Error:
                pass

    try:
        driver = [psutil.Process(driver_pid)]
    except psutil.Error:
        return
    pending = b""
    while True:
        alive = running()
        if named and not alive:
            return
        note_descendants(alive if named else driver)
        ready, _, _ = select.select([sys.stdin], [], [], poll_s if time.monotonic() > fast_until else 0.05)
        if ready:
            data = os.read(sys.stdin.fileno(), 4096)
            if not data:
                break                                       # EOF: the driver has exited or was killed
            pending += data
            if not named and b"\n" in pending:
                name(pending.split(b"\n", 1)[0])
                named = True
    note_descendants(running())         # whatever a still-living Ray process started since the last poll
    alive = running()
    for p in alive:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(alive, timeout=grace_s)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
