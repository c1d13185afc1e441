"""A multi-host Ray cluster in Linux network namespaces: the RayJob path, and the loss of a host mid-run.

    python -m cluster.netns_cluster [--steps 300] [--val-every 25] [--cut link|kill] [--json FILE]

Host h1 is the head, started like the KubeRay head (`--num-cpus=0`, explicit object store, token auth, the
Jobs API on http://<h1>:8265); hosts h2 and h3 are generator workers (`--num-cpus=1`, custom resource
`synthstream_generator`). Every host is its own network namespace with its own address on a private
bridge (cluster/netns_hosts.py); they share this machine's filesystem, so a temp folder is "shared
storage". Then, as a RayJob would, `ray job submit --no-wait -- synthstream train ... --out <shared>`:

1. **multi-host job**: the job runs to SUCCEEDED; report.json's accuracy, where the generator actors and the
   training worker ran (state API), so that batches crossed hosts.
2. **node loss**: the same job; after its first validation/checkpoint the host running a generator (h3 when
   it runs one) is cut off (`link`: its veth set down, a partition; `kill`: every process in it killed);
   when that host's resources are needed elsewhere a replacement host joins, as KubeRay recreates a lost
   pod. Prints the time from the cut to the next training progress and throughput before/after.

Prints JSON, then a table. Needs root and `ip` (it says so otherwise); everything is torn down on exit,
also on failure, and leftovers of an earlier run are removed at start. Only 10.231.0.0/24 on our own
bridge and 127.0.0.1 are used.
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

from cluster.netns_hosts import NamespacesUnavailable, NetnsHosts, teardown_all

GCS_PORT = 6379
DASHBOARD_PORT = 8265
GENERATOR_RESOURCE = "synthstream_generator"
TEMP_ROOT = Path("/tmp/ssn")           # short: Ray's unix sockets live under it (108-byte path limit)
# Node-death detection, GCS side (Ray's defaults: every 3 s, 10 s timeout, 5 misses). Shorter here so a
# test sees the loss in seconds; `--ray-defaults` keeps Ray's.
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "2000",
                     "RAY_health_check_failure_threshold": "5"}


@dataclass
class HostSpec:
    name: str
    num_cpus: int = 1
    resources: dict = field(default_factory=lambda: {GENERATOR_RESOURCE: 1})
    object_store_mb: int = 150


@dataclass
class ClusterSpec:
    head_object_store_mb: int = 100
    workers: list[HostSpec] = field(default_factory=lambda: [HostSpec("h2"), HostSpec("h3")])
    fast_health_check: bool = True


def ray_bin() -> Path:
    """The `ray` next to this interpreter (the project's .venv)."""
    return Path(sys.executable).parent / "ray"


def process_env(extra: dict | None = None) -> dict:
    """Environment of every Ray process and client here: token auth on, no usage reporting, venv first."""
    env = dict(os.environ)
    env.update({"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"})
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
    """Head on h1 plus worker hosts, each `ray start`ed inside its own namespace. `with` tears it all down."""

    def __init__(self, spec: ClusterSpec | None = None) -> None:
        self.spec = spec or ClusterSpec()
        self.hosts = NetnsHosts(["h1"] + [w.name for w in self.spec.workers])
        self.head = self.hosts.hosts["h1"].address
        self.dashboard = f"http://{self.head}:{DASHBOARD_PORT}"
        self.gcs = f"{self.head}:{GCS_PORT}"

    def __enter__(self) -> "NetnsRayCluster":
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def start(self) -> None:
        self.teardown()                              # leftovers of a run that died
        self.hosts.create()
        extra = FAST_HEALTH_CHECK if self.spec.fast_health_check else {}
        self._ray_start("h1", ["--head", f"--port={GCS_PORT}", "--num-cpus=0",
                               f"--object-store-memory={self.spec.head_object_store_mb << 20}",
                               f"--dashboard-host={self.head}", f"--dashboard-port={DASHBOARD_PORT}"], extra)
        for worker in self.spec.workers:
            self.start_worker(worker, wait=False)
        self.wait_nodes(1 + len(self.spec.workers))

    def start_worker(self, worker: HostSpec, wait: bool = True) -> None:
        if worker.name not in self.hosts.hosts:
            self.hosts.add(worker.name)
        alive = len(self.alive_nodes()) if wait else 0
        self._ray_start(worker.name, [f"--address={self.gcs}", f"--num-cpus={worker.num_cpus}",
                                      f"--resources={json.dumps(worker.resources)}",
                                      f"--object-store-memory={worker.object_store_mb << 20}"])
        if wait:
            self.wait_nodes(alive + 1)

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

    def alive_nodes(self) -> list:
        return self._list("NODES", [("state", "=", "ALIVE")])

    def wait_nodes(self, count: int, timeout_s: float = 120.0) -> list[dict]:
        deadline, last_error = time.time() + timeout_s, None
        while time.time() < deadline:
            try:
                nodes = self.alive_nodes()
                if len(nodes) >= count:
                    return nodes
            except Exception as e:  # the dashboard is still starting
                last_error = e
            time.sleep(1.0)
        raise TimeoutError(f"{count} Ray nodes not alive within {timeout_s:g} s ({last_error})")

    def node_hosts(self) -> dict[str, str]:
        """node_id -> host name (h1, h2, ...), dead nodes included."""
        by_ip = {h.address: name for name, h in self.hosts.hosts.items()}
        return {n.node_id: by_ip.get(n.node_ip, n.node_ip) for n in self._list("NODES")}

    def placement(self) -> dict[str, list[str]]:
        """Host of every generator actor and training worker alive now: {"generators": [...], "workers": [...]}."""
        hosts = self.node_hosts()
        actors = self._list("ACTORS", [("state", "=", "ALIVE")])
        found: dict[str, list[str]] = {"generators": [], "workers": []}
        for a in actors:
            kind = ("generators" if a.class_name == "GeneratorActor" else
                    "workers" if a.class_name == "RayTrainWorker" else None)
            if kind:
                found[kind].append(hosts.get(a.node_id, "?"))
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
        """Read new rows; each gets `seen_at` (wall clock)."""
        if not self.path.exists():
            return []
        with self.path.open() as f:
            rows = list(csv.DictReader(f))
        now, new = time.time(), []
        for row in rows[len(self.rows):]:
            if row.get("step"):
                new.append({"step": int(float(row["step"])), "images_per_s": float(row["images_per_s"]),
                            "string_accuracy": float(row.get("val/string_accuracy") or "nan"), "seen_at": now})
        self.rows += new
        return new


def follow_job(cluster: NetnsRayCluster, job_id: str, progress: ProgressLog, timeout_s: float,
               on_tick=None) -> str:
    """Poll until the job ends; returns its final status. `on_tick(progress)` runs every poll."""
    from ray.job_submission import JobStatus

    client = cluster.job_client()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        progress.poll()
        if on_tick is not None:
            on_tick(progress)
        status = client.get_job_status(job_id)
        if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            progress.poll()
            return str(status.value)
        time.sleep(0.25)
    client.stop_job(job_id)
    return "TIMEOUT"


def run_job(cluster: NetnsRayCluster, out: Path, steps: int, val_every: int, train_args: list[str],
            timeout_s: float = 600.0) -> dict:
    """The multi-host job: submit, record where the actors run, wait for the end."""
    job_id = cluster.submit(train_command(out, steps, val_every, train_args))
    progress, seen = ProgressLog(out), {"generators": [], "workers": []}

    def watch(_):
        if not (seen["generators"] and seen["workers"]):
            try:
                seen.update({k: v for k, v in cluster.placement().items() if v})
            except Exception:
                pass

    t0 = time.time()
    status = follow_job(cluster, job_id, progress, timeout_s, watch)
    report = _read_json(out / "report.json")
    return {"job_id": job_id, "status": status, "wall_s": time.time() - t0, "placement": seen,
            "batches_cross_hosts": bool(seen["workers"]) and not set(seen["generators"]) & set(seen["workers"]),
            "string_accuracy": _final_accuracy(report), "report": report,
            "logs_tail": _logs_tail(cluster, job_id) if status != "SUCCEEDED" else ""}


def run_node_loss(cluster: NetnsRayCluster, out: Path, steps: int, val_every: int, train_args: list[str],
                  cut: str = "link", replacement: HostSpec | None = None, timeout_s: float = 600.0) -> dict:
    """The same job, with the host of a generator cut off after its second validation/checkpoint (so one
    whole interval of throughput is measured before the cut: the first includes the start)."""
    job_id = cluster.submit(train_command(out, steps, val_every, train_args))
    progress = ProgressLog(out)
    state: dict = {"cut_at": None, "before": None, "lost": None, "after": None}

    def watch(p: ProgressLog):
        if state["cut_at"] is None and len(p.rows) >= 2:  # two validations + checkpoints are in
            where = cluster.placement()
            lost = "h3" if "h3" in where["generators"] else (where["generators"] or ["h3"])[0]
            state.update(before=where, lost=lost, cut_step=p.rows[-1]["step"])
            (cluster.hosts.cut if cut == "link" else cluster.hosts.kill)(lost)
            state["cut_at"] = time.time()
            if replacement is not None:                     # in the background: polling goes on meanwhile
                joiner = threading.Thread(target=cluster.start_worker, args=(replacement, False), daemon=True)
                joiner.start()
        elif state["cut_at"] is not None and state["after"] is None and p.rows[-1]["seen_at"] > state["cut_at"] + 1:
            try:
                where = cluster.placement()
                if where["generators"] and lost_host_gone(where, state["lost"]):
                    state["after"] = where
            except Exception:
                pass

    status = follow_job(cluster, job_id, progress, timeout_s, watch)
    report = _read_json(out / "report.json")
    return {"job_id": job_id, "status": status, "cut": cut, "lost_host": state["lost"],
            "placement_before": state["before"], "placement_after": state["after"],
            "string_accuracy": _final_accuracy(report), **recovery_figures(progress.rows, state["cut_at"]),
            "report": report, "logs_tail": _logs_tail(cluster, job_id) if status != "SUCCEEDED" else ""}


def lost_host_gone(where: dict, lost: str) -> bool:
    return lost not in where["generators"] and lost not in where["workers"]


def recovery_figures(rows: list[dict], cut_at: float | None) -> dict:
    """Recovery time: from the cut to the first progress row after the stall it caused (the longest gap
    between rows after the cut). Throughput: mean images/s of the intervals wholly before the cut, and of
    those after the recovery row."""
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
    return {"recovery_s": after[resumed]["seen_at"] - cut_at,
            "images_per_s_before": _mean(r["images_per_s"] for r in before[1:] or before),
            "images_per_s_after": _mean(r["images_per_s"] for r in after[resumed + 1:]),
            "steps_at_cut": before[-1]["step"] if before else 0}


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _final_accuracy(report: dict) -> float | None:
    return (report.get("final") or {}).get("val/string_accuracy")


def _logs_tail(cluster: NetnsRayCluster, job_id: str) -> str:
    try:
        return cluster.job_client().get_job_logs(job_id)[-3000:]
    except Exception as e:
        return f"(no logs: {e})"


def print_table(result: dict) -> None:
    job, loss = result.get("job") or {}, result.get("node_loss") or {}
    rows = []
    if job:
        rows.append(("multi-host job", job.get("status"), job.get("wall_s"), job.get("string_accuracy"),
                     _placement(job.get("placement")), None, None, None))
    if loss:
        rows.append((f"node loss ({loss.get('cut')} {loss.get('lost_host')})", loss.get("status"), None,
                     loss.get("string_accuracy"), _placement(loss.get("placement_before")) + " -> " +
                     _placement(loss.get("placement_after")), loss.get("recovery_s"),
                     loss.get("images_per_s_before"), loss.get("images_per_s_after")))
    head = ("run", "status", "wall s", "val str acc", "generators / workers", "recovery s", "img/s before",
            "img/s after")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join("" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v) for v in r)
              + " |")


def _placement(p: dict | None) -> str:
    return f"{','.join(p['generators'])} / {','.join(p['workers'])}" if p else "?"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--val-every", type=int, default=25)
    parser.add_argument("--cut", choices=["link", "kill"], default="link")
    parser.add_argument("--skip-job", action="store_true", help="only the node-loss run")
    parser.add_argument("--ray-defaults", action="store_true", help="Ray's own (slower) node-death detection")
    parser.add_argument("--train-args", default="--workers 1 --generators 1 --generator-cpus 1",
                        help="extra `synthstream train` flags (resources)")
    parser.add_argument("--replace", action="store_true", help="a replacement host joins after the cut")
    parser.add_argument("--json", help="also write the JSON result here")
    args = parser.parse_args(argv)

    spec = ClusterSpec(fast_health_check=not args.ray_defaults)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="ssn-runs-") as shared:
        try:
            with NetnsRayCluster(spec) as cluster:
                train_args = args.train_args.split()
                if not args.skip_job:
                    result["job"] = run_job(cluster, Path(shared) / "job", args.steps, args.val_every, train_args)
                result["node_loss"] = run_node_loss(
                    cluster, Path(shared) / "node-loss", args.steps, args.val_every, train_args, cut=args.cut,
                    replacement=HostSpec("h4") if args.replace else None)
        except NamespacesUnavailable as e:
            print(f"netns_cluster: cannot run here: {e}", file=sys.stderr)
            sys.exit(2)
    for part in result.values():
        part.pop("report", None)
    print(json.dumps(result, indent=2, default=str))
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
