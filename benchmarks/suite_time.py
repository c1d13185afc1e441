"""The CI test suite's wall time with N worker processes against one process, alternately in one run.

    python benchmarks/suite_time.py --workers 0 2 --json benchmarks/results/suite.json   # from the repo root

Each run is `python -m pytest -q -p no:cacheprovider -n N` (N = 0: pytest-xdist off, the suite in one process;
N >= 1: N worker processes, `--dist loadfile`: a test file each at a time). Records wall time, the
CPU seconds of pytest and the processes it waited for (Ray daemons that outlive it are not counted), and
pytest's summary line; prints a table, writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(workers: int) -> dict:
    """One suite run with `workers` xdist workers (0: none)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers),
                           "--dist", "loadfile"],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = done.stdout.strip().splitlines()
    return {"workers": workers, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "exit": done.returncode,
            "summary": lines[-1] if lines else ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="xdist worker counts, run in turn")
    ap.add_argument("--repeats", type=int, default=1, help="rounds over --workers")
    ap.add_argument("--json", type=Path, help="write the runs here")
    args = ap.parse_args()
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_start": os.getloadavg()}
    runs = []
    for _ in range(args.repeats):
        for n in args.workers:
            runs.append(run_suite(n))
            print(json.dumps(runs[-1]), flush=True)
    print("\n| workers | wall s | CPU s | result |\n|---:|---:|---:|---|")
    for r in runs:
        print(f"| {r['workers']} | {r['wall_s']} | {r['cpu_s']} | {r['summary']} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": meta, "runs": runs}, indent=1) + "\n")
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
