"""A multi-host Ray cluster in Linux network namespaces, shaped like the KubeRay RayJob, and the cluster path
proven on it: placement, autoscaling from zero, the loss of a host, a stopped job retried.

    python -m tests.helpers.netns_cluster [--scenarios refused,zero,retry,loss] [--steps 300] [--json FILE]

Hosts (each its own network namespace and address on a private bridge, tests/helpers/netns_hosts.py), as in
deploy/kuberay: `head` runs no Ray work (`--num-cpus=0`, token auth, the Jobs API on http://<head>:8265);
`gen1` and `gen2` are the generator group (1 CPU each, custom resource `synthstream_generator`); `train1`
is the trainer group (1 CPU). They share this machine's filesystem, so a temp folder is "shared storage".
Every job is `ray job submit --no-wait -- synthstream train ... --out <shared>` with two generators of 0.5
CPU pinned by `--generator-resource` and one training worker of 1 CPU (`--worker-cpus`), so the generators
spread over gen1/gen2 and the worker can only go to train1; either generator host alone can hold both.

Scenarios (each leaves the cluster usable by the next):
- **refused**: no worker host, `--resource-wait 5`: the job FAILS with one line naming what is missing.
- **zero**: only the head; the job is submitted with `--resource-wait 120` and the worker hosts join some
  seconds later (standing in for the autoscaler adding pods): it trains across hosts and SUCCEEDS.
- **retry**: the job is stopped (`ray job stop`) after its second checkpoint; the same command submitted
  again continues from the newest checkpoint and SUCCEEDS, every step once in metrics.csv.
- **loss**: after the second checkpoint a generator host is cut off (`link`: a partition; `kill`: power
  off); its generator restarts on the surviving generator host, the job SUCCEEDS with every sample
  delivered once. Prints the time from the cut to the next progress and throughput before/after.

Prints JSON, then a table. Needs root and `ip` (it says so otherwise); everything is torn down on exit, also
on failure, and leftovers of an earlier run are removed at start. Only 10.231.0.0/24 on our own bridge is used.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster.local import LOCAL_TRAIN_POLL_S, TRAIN_POLL_ENV
from tests.helpers.netns_hosts import NamespacesUnavailable, NetnsHosts, teardown_all
from tests.helpers.runs import has_registered_checkpoint

GCS_PORT = 6379
DASHBOARD_PORT = 8265
GENERATOR_RESOURCE = "synthstream_generator"
HEAD = "head"
GENERATOR_HOSTS = ("gen1", "gen2")
TRAINER_HOST = "train1"
TRAIN_ARGS = ["--workers", "1", "--worker-cpus", "1", "--generators", "2", "--generator-cpus", "0.5",
              "--generator-resource", GENERATOR_RESOURCE]
TEMP_ROOT = Path("/tmp/ssn")           # short: Ray's unix sockets live under it (108-byte path limit)
# Node-death detection, GCS side (Ray's defaults: every 3 s, 10 s timeout, 5 misses). Shorter here so a
# test sees the loss in seconds; `--ray-defaults` keeps Ray's.
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "2000",
                     "RAY_health_check_failure_threshold": "5"}
ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class HostSpec:
    name: str
    num_cpus: int = 1
    resources: dict = field(default_factory=dict)
    object_store_mb: int = 150


def default_workers() -> list[HostSpec]:
    """The generator group (gen1, gen2) and the trainer group (train1), one CPU each."""
    return [HostSpec(n, resources={GENERATOR_RESOURCE: 1}) for n in GENERATOR_HOSTS] + [HostSpec(TRAINER_HOST)]


@dataclass
class ClusterSpec:
    head_object_store_mb: int = 100
    workers: list[HostSpec] = field(default_factory=default_workers)
    fast_health_check: bool = True


def ray_bin() -> Path:
    """The `ray` next to this interpreter (the project's .venv)."""
    return Path(sys.executable).parent / "ray"


def process_env(extra: dict | None = None) -> dict:
    """Environment of every Ray process and client here: token auth on, no usage reporting, venv first."""
    env = dict(os.environ)
    env.update({"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"})
    env.setdefault(TRAIN_POLL_ENV, LOCAL_TRAIN_POLL_S)       # a test cluster of a few workers: poll them often
    env.update(extra or {})
    return env


def auth_headers() -> dict:
    """The cluster token as an HTTP header, from where Ray keeps it ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH,
    else ~/.ray/auth_token, which the head's `ray start` writes)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "")
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        token = path.read_text().strip() if path.exists() else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


class NetnsRayCluster:
    """The head plus worker hosts, each `ray start`ed inside its own namespace. `with` tears it all down."""

    def __init__(self, spec: ClusterSpec | None = None) -> None:
        self.spec = spec or ClusterSpec()
        self.workers = {w.name: w for w in self.spec.workers}
        self.hosts = NetnsHosts([HEAD] + list(self.workers))
        self.head = self.hosts.hosts[HEAD].address
        self.dashboard = f"http://{self.head}:{DASHBOARD_PORT}"
        self.gcs = f"{self.head}:{GCS_PORT}"
        self.cut_hosts: set[str] = set()

    def __enter__(self) -> NetnsRayCluster:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def start(self, workers: bool = True) -> None:
        """The head, then (unless `workers` is False) every worker host."""
        self.teardown()                              # leftovers of a run that died
        self.hosts.create()
        extra = FAST_HEALTH_CHECK if self.spec.fast_health_check else {}
        self._ray_start(HEAD, ["--head", f"--port={GCS_PORT}", "--num-cpus=0",
                               f"--object-store-memory={self.spec.head_object_store_mb << 20}",
                               f"--dashboard-host={self.head}", f"--dashboard-port={DASHBOARD_PORT}"], extra)
        self.wait_hosts({HEAD})
        if workers:
            self.start_workers()

    def start_workers(self, names: list[str] | None = None) -> None:
        """Start the named worker hosts (default: all) that are not alive; a cut or stopped host is cleaned
        and re-joined, as KubeRay recreates a lost pod. Returns once they are alive."""
        names = list(names or self.workers)
        alive = self.alive_hosts()
        missing = [n for n in names if n not in alive]
        for name in missing:                         # one at a time: parallel starts overload a small machine
            self._start_worker(self.workers[name])
        self.wait_hosts(alive | set(names))

    def _start_worker(self, worker: HostSpec, attempts: int = 2) -> None:
        for attempt in range(attempts):
            self.hosts.kill(worker.name)             # whatever is left of an earlier life (or attempt)
            if worker.name in self.cut_hosts:
                self.hosts.reconnect(worker.name)
                self.cut_hosts.discard(worker.name)
            try:
                self._ray_start(worker.name, [f"--address={self.gcs}", f"--num-cpus={worker.num_cpus}",
                                              f"--resources={json.dumps(worker.resources)}",
                                              f"--object-store-memory={worker.object_store_mb << 20}"])
                return
            except RuntimeError:                     # e.g. registration timed out on a busy machine
                if attempt == attempts - 1:
                    raise

    def stop_workers(self, names: list[str] | None = None) -> None:
        """Stop the named worker hosts (default: all): every process in them ends, their nodes go DEAD."""
        names = list(names or self.workers)
        for name in names:
            self.hosts.kill(name)
        self.wait_hosts(self.alive_hosts() - set(names), exact=True)

    def cut(self, name: str) -> None:
        """Partition host `name` (its link down); its processes live on, unreachable."""
        self.hosts.cut(name)
        self.cut_hosts.add(name)

    def _ray_start(self, name: str, args: list[str], extra_env: dict | None = None) -> None:
        host = self.hosts.hosts[name]
        temp = TEMP_ROOT / name
        temp.mkdir(parents=True, exist_ok=True)
        argv = [str(ray_bin()), "start", f"--node-ip-address={host.address}", f"--temp-dir={temp}",
                "--disable-usage-stats", *args]
        out = self.hosts.run(name, argv, env=process_env(extra_env), timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"ray start on {name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

    def _list(self, resource: str, filters: list | None = None) -> list:
        """Ray's state API over HTTP, with the token (this process's Ray may have token auth off)."""
        from ray.util.state import StateApiClient
        from ray.util.state.common import ListApiOptions, StateResource

        client = StateApiClient(address=self.dashboard, headers=auth_headers())
        return client.list(StateResource[resource], ListApiOptions(limit=1000, filters=filters or []),
                           raise_on_missing_output=False)

    def host_of(self, ip: str) -> str:
        return next((n for n, h in self.hosts.hosts.items() if h.address == ip), ip)

    def alive_hosts(self) -> set[str]:
        try:
            return {self.host_of(n.node_ip) for n in self._list("NODES", [("state", "=", "ALIVE")])}
        except Exception:  # noqa: BLE001 - the dashboard is still starting
            return set()

    def wait_hosts(self, hosts: set[str], timeout_s: float = 120.0, exact: bool = False) -> None:
        """Until `hosts` are alive (and, with `exact`, no others)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            alive = self.alive_hosts()
            if (alive == hosts) if exact else (hosts <= alive):
                return
            time.sleep(0.5)
        raise TimeoutError(f"Ray nodes alive: {sorted(self.alive_hosts())}, wanted {sorted(hosts)} "
                           f"within {timeout_s:g} s")

    def placement(self) -> dict[str, list[str]]:
        """Host of every generator actor, training worker and driver-side helper alive now."""
        hosts = {n.node_id: self.host_of(n.node_ip) for n in self._list("NODES")}
        kinds = {"GeneratorActor": "generators", "RayTrainWorker": "workers", "ProgressTracker": "helpers",
                 "TrainController": "helpers"}
        found: dict[str, list[str]] = {"generators": [], "workers": [], "helpers": []}
        for a in self._list("ACTORS", [("state", "=", "ALIVE")]):
            if a.class_name in kinds:
                found[kinds[a.class_name]].append(hosts.get(a.node_id, "?"))
        return {k: sorted(v) for k, v in found.items()}

    def submit(self, entrypoint: list[str]) -> str:
        """`ray job submit --no-wait` exactly as a RayJob's submitter does; returns the job's submission id."""
        argv = [str(ray_bin()), "job", "submit", "--address", self.dashboard, "--no-wait", "--", *entrypoint]
        out = subprocess.run(argv, capture_output=True, text=True, env=process_env(), timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"ray job submit failed: {out.stderr[-2000:]}")
        for line in out.stdout.splitlines():
            if "submitted successfully" in line and "'" in line:
                return line.split("'")[1]
        raise RuntimeError(f"no submission id in: {out.stdout[-1000:]}")

    def job_client(self):
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard, headers=auth_headers())

    def teardown(self) -> None:
        teardown_all()
        shutil.rmtree(TEMP_ROOT, ignore_errors=True)


def train_command(out: Path, steps: int, val_every: int, extra: list[str]) -> list[str]:
    return ["synthstream", "train", "--style", "tiny", "--steps", str(steps), "--val-every", str(val_every),
            "--no-progress", "--out", str(out), *extra]


class ProgressLog:
    """Training progress as seen from outside: rows of DIR/metrics.csv, stamped when they first appear."""

    def __init__(self, out: Path) -> None:
        self.path = out / "metrics.csv"
        self.rows: list[dict] = []

    def poll(self) -> list[dict]:
        """Read new rows; each gets `seen_at` (wall clock). After a restore rows restart at the restored step."""
        if not self.path.exists():
            return []
        with self.path.open() as f:
            steps = [(int(float(r["step"])), r) for r in csv.DictReader(f) if r.get("step")]
        known = {r["step"] for r in self.rows}
        now, new = time.time(), []
        for step, row in steps:
            if step not in known:
                new.append({"step": step, "images_per_s": float(row["images_per_s"]),
                            "restored_from_step": int(float(row.get("restored_from_step") or 0)),
                            "string_accuracy": float(row.get("val/string_accuracy") or "nan"), "seen_at": now})
        self.rows += new
        return new

    def steps_in_file(self) -> list[int]:
        with self.path.open() as f:
            return [int(float(r["step"])) for r in csv.DictReader(f)]


class Job:
    """One submitted `synthstream train`: its id, progress, and end state."""

    def __init__(self, cluster: NetnsRayCluster, out: Path, steps: int, val_every: int, train_args: list[str]):
        self.cluster, self.out = cluster, out
        self.entrypoint = train_command(out, steps, val_every, train_args)
        self.progress = ProgressLog(out)
        self.placement: dict = {}
        self.submitted_at = time.time()
        self.id = cluster.submit(self.entrypoint)

    def follow(self, timeout_s: float, on_tick=None) -> str:
        """Poll until the job ends; returns its final status. `on_tick(job)` runs every poll (4 per s)."""
        client = self.cluster.job_client()
        deadline, next_look = time.time() + timeout_s, 0.0
        while time.time() < deadline:
            self.progress.poll()
            if not (self.placement.get("generators") and self.placement.get("workers")) and time.time() > next_look:
                next_look = time.time() + 1.0
                try:
                    self.placement = self.cluster.placement()
                except Exception:  # noqa: BLE001, S110 - the state API is busy; next tick
                    pass
            if on_tick is not None:
                on_tick(self)
            status = str(client.get_job_status(self.id).value)
            if status in ENDED:
                self.progress.poll()
                return status
            time.sleep(0.25)
        client.stop_job(self.id)
        return "TIMEOUT"

    def stop(self, timeout_s: float = 60.0) -> str:
        self.cluster.job_client().stop_job(self.id)
        return self.follow(timeout_s)

    def logs(self) -> str:
        try:
            return self.cluster.job_client().get_job_logs(self.id)
        except Exception as e:  # noqa: BLE001
            return f"(no logs: {e})"

    def report(self) -> dict:
        return _read_json(self.out / "report.json")

    def summary(self, status: str) -> dict:
        """What every scenario reports about its (last) job."""
        report = self.report()
        stream = dict(report.get("stream") or {})
        stream["generator_hosts"] = sorted(self.cluster.host_of(ip) for ip in stream.get("generator_nodes") or [])
        stream["worker_hosts"] = sorted(self.cluster.host_of(ip) for ip in stream.get("worker_nodes") or [])
        return {"job_id": self.id, "status": status, "wall_s": time.time() - self.submitted_at,
                "placement": self.placement, "string_accuracy": (report.get("final") or {}).get("val/string_accuracy"),
                "steps": (report.get("final") or {}).get("step"), "stream": stream,
                "logs_tail": self.logs()[-3000:] if status != "SUCCEEDED" else ""}


def crosses_hosts(placement: dict) -> bool:
    """Batches travel between hosts: no training worker shares a host with a generator."""
    return bool(placement.get("workers")) and not set(placement.get("generators", [])) & set(placement["workers"])


def run_refused(cluster: NetnsRayCluster, out: Path, wait_s: float = 5.0, timeout_s: float = 180.0) -> dict:
    """No worker host: the job waits `wait_s` for the cluster to grow, then fails with one line."""
    cluster.stop_workers()
    job = Job(cluster, out, 50, 25, TRAIN_ARGS + ["--resource-wait", f"{wait_s:g}"])
    status = job.follow(timeout_s)
    errors = [ln for ln in job.logs().splitlines() if ln.startswith("synthstream: error:")]
    return {"job_id": job.id, "status": status, "wall_s": time.time() - job.submitted_at,
            "error_lines": errors, "run_started": (out / "run.json").exists()}


def run_from_zero(cluster: NetnsRayCluster, out: Path, steps: int, val_every: int, join_after_s: float = 10.0,
                  wait_s: float = 120.0, timeout_s: float = 600.0) -> dict:
    """Only the head: submit, then the worker hosts join `join_after_s` later; the job trains across them."""
    cluster.stop_workers()
    job = Job(cluster, out, steps, val_every, TRAIN_ARGS + ["--resource-wait", f"{wait_s:g}"])
    joined: dict = {}

    def join() -> None:
        time.sleep(join_after_s)
        joined["started_s"] = time.time() - job.submitted_at
        cluster.start_workers()
        joined["alive_s"] = time.time() - job.submitted_at

    joiner = threading.Thread(target=join, daemon=True)
    joiner.start()
    status = job.follow(timeout_s)
    joiner.join(timeout=5)
    first = job.progress.rows[0]["seen_at"] - job.submitted_at if job.progress.rows else None
    return {**job.summary(status), "workers_join_started_s": joined.get("started_s"),
            "workers_alive_s": joined.get("alive_s"), "first_progress_s": first,
            "batches_cross_hosts": crosses_hosts(job.placement)}


def run_stop_and_retry(cluster: NetnsRayCluster, out: Path, steps: int, val_every: int,
                       timeout_s: float = 600.0) -> dict:
    """Stop the job after its second checkpoint, submit the same command again: it continues."""
    cluster.start_workers()
    first = Job(cluster, out, steps, val_every, TRAIN_ARGS)
    stopped: dict = {}

    def stop_after_two(job: Job) -> None:
        if not stopped and len(job.progress.rows) >= 2 and has_registered_checkpoint(out):
            stopped["at_step"] = job.progress.rows[-1]["step"]
            job.cluster.job_client().stop_job(job.id)

    first_status = first.follow(timeout_s, stop_after_two)
    again = Job(cluster, out, steps, val_every, TRAIN_ARGS)
    status = again.follow(timeout_s)
    restored = [r["restored_from_step"] for r in again.progress.rows if r["step"] > stopped.get("at_step", 0)]
    steps_logged = again.progress.steps_in_file() if again.progress.path.exists() else []
    return {**again.summary(status), "first_job": {"job_id": first.id, "status": first_status,
                                                    "stopped_after_step": stopped.get("at_step")},
            "restored_from_step": max(restored) if restored else None, "metrics_steps": steps_logged}


def run_node_loss(cluster: NetnsRayCluster, out: Path, steps: int, val_every: int, cut: str = "link",
                  timeout_s: float = 600.0) -> dict:
    """After the job's second checkpoint, cut off a generator host that holds no training worker; its
    generator restarts on the other generator host (no replacement host joins)."""
    cluster.start_workers()
    job = Job(cluster, out, steps, val_every, TRAIN_ARGS)
    state: dict = {"cut_at": None, "before": None, "lost": None, "after": None}

    def watch(j: Job) -> None:
        rows = j.progress.rows
        if state["cut_at"] is None and len(rows) >= 2:
            where = cluster.placement()
            candidates = [h for h in GENERATOR_HOSTS if h in where["generators"] and h not in where["workers"]]
            lost = candidates[-1] if candidates else None
            state.update(before=where, lost=lost, cut_step=rows[-1]["step"], cut_at=time.time())
            if lost is not None:
                cluster.cut(lost) if cut == "link" else cluster.hosts.kill(lost)
        elif state["cut_at"] is not None and state["after"] is None and rows[-1]["seen_at"] > state["cut_at"] + 1:
            try:
                where = cluster.placement()
                if len(where["generators"]) == 2 and state["lost"] not in where["generators"]:
                    state["after"] = where
            except Exception:  # noqa: BLE001, S110 - the state API is busy; next tick
                pass

    status = job.follow(timeout_s, watch)
    return {**job.summary(status), "cut": cut, "lost_host": state["lost"], "cut_after_step": state.get("cut_step"),
            "placement_before": state["before"], "placement_after": state["after"],
            **recovery_figures(job.progress.rows, state["cut_at"])}


def recovery_figures(rows: list[dict], cut_at: float | None) -> dict:
    """Recovery time: from the cut to the first progress row after the stall it caused (the longest gap
    between rows after the cut). Throughput: mean images/s of the intervals wholly before the cut (the first,
    which includes the start, left out), and of those after the recovery row."""
    if cut_at is None or not rows:
        return {"recovery_s": None, "images_per_s_before": None, "images_per_s_after": None}
    before = [r for r in rows if r["seen_at"] <= cut_at]
    after = [r for r in rows if r["seen_at"] > cut_at]
    if not after:
        return {"recovery_s": None, "images_per_s_before": _mean(r["images_per_s"] for r in before[1:]),
                "images_per_s_after": None}
    stamps = [cut_at] + [r["seen_at"] for r in after]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    resumed = gaps.index(max(gaps))                  # after[resumed] is the first row past the stall
    interval_s = _mean(b - a for a, b in zip([r["seen_at"] for r in before[1:]], [r["seen_at"] for r in before[2:]]))
    return {"recovery_s": after[resumed]["seen_at"] - cut_at, "progress_interval_before_s": interval_s,
            "images_per_s_before": _mean(r["images_per_s"] for r in before[1:] or before),
            "images_per_s_after": _mean(r["images_per_s"] for r in after[resumed + 1:])}


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def print_table(result: dict) -> None:
    head = ("scenario", "status", "wall s", "val str acc", "generators / workers (end)", "samples",
            "index errors", "notes")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for name, r in result.items():
        stream = r.get("stream") or {}
        where = f"{','.join(stream.get('generator_hosts', []))} / {','.join(stream.get('worker_hosts', []))}"
        notes = _notes(name, r)
        cells = (name, r.get("status"), r.get("wall_s"), r.get("string_accuracy"), where if stream else "",
                 stream.get("samples"), stream.get("index_errors"), notes)
        print("| " + " | ".join(_g(v) for v in cells) + " |")


def _notes(name: str, r: dict) -> str:
    if name == "refused":
        return (r.get("error_lines") or ["(no error line)"])[-1][:90]
    if name == "zero":
        return (f"hosts joined {_g(r.get('workers_join_started_s'))} s after submit, first progress at "
                f"{_g(r.get('first_progress_s'))} s")
    if name == "retry":
        return (f"stopped after step {r['first_job'].get('stopped_after_step')}, "
                f"restored from {r.get('restored_from_step')}")
    return (f"{r.get('cut')} {r.get('lost_host')}: recovery {_g(r.get('recovery_s'))} s, img/s "
            f"{_g(r.get('images_per_s_before'))} -> {_g(r.get('images_per_s_after'))}")


def _g(v) -> str:
    return "" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


SCENARIOS = ("refused", "zero", "retry", "loss")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {SCENARIOS}")
    parser.add_argument("--steps", type=int, default=300, help="steps of the zero (multi-host) job")
    parser.add_argument("--short-steps", type=int, default=150, help="steps of the retry and loss jobs")
    parser.add_argument("--val-every", type=int, default=20)
    parser.add_argument("--join-after", type=float, default=10.0, help="zero: seconds before the hosts join")
    parser.add_argument("--cut", choices=["link", "kill"], default="link")
    parser.add_argument("--ray-defaults", action="store_true", help="Ray's own (slower) node-death detection")
    parser.add_argument("--json", help="also write the JSON result here")
    args = parser.parse_args(argv)
    chosen = [s for s in args.scenarios.split(",") if s]
    if set(chosen) - set(SCENARIOS):
        parser.error(f"--scenarios: unknown {sorted(set(chosen) - set(SCENARIOS))}; choose from {SCENARIOS}")

    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="ssn-runs-") as shared:
        runs = Path(shared)
        try:
            with NetnsRayCluster(ClusterSpec(fast_health_check=not args.ray_defaults)) as cluster:
                for name in chosen:
                    if name == "refused":
                        result[name] = run_refused(cluster, runs / name)
                    elif name == "zero":
                        result[name] = run_from_zero(cluster, runs / name, args.steps, args.val_every,
                                                     join_after_s=args.join_after)
                    elif name == "retry":
                        result[name] = run_stop_and_retry(cluster, runs / name, args.short_steps, args.val_every)
                    else:
                        result[name] = run_node_loss(cluster, runs / name, args.short_steps, args.val_every,
                                                     cut=args.cut)
        except NamespacesUnavailable as e:
            print(f"netns_cluster: cannot run here: {e}", file=sys.stderr)
            sys.exit(2)
    print(json.dumps(result, indent=2, default=str))
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
