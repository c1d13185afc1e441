"""Where the test suite's time goes: wall seconds and the whole machine's CPU seconds per test, a pytest plugin.

    PYTHONPATH=benchmarks python -m pytest -q -p suite_cpu [--suite-cpu-json F]     # from the repo root

CPU is read from /proc/stat (every process: Ray's daemons and actors too, which `time` and getrusage miss
because pytest never waits for them), so run it on otherwise idle cores. Each test's time includes its
fixtures' set-up and tear-down. Prints the files by wall time with their CPU and idle core-seconds (2 x wall -
CPU on 2 cores) and the totals; --suite-cpu-json writes every test's row.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

ROWS: list[dict] = []


def _busy_cpu_s() -> float:
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pytest_addoption(parser):
    parser.addoption("--suite-cpu-json", default=None, help="write every test's wall and CPU seconds here")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    wall, cpu = time.monotonic(), _busy_cpu_s()
    yield
    ROWS.append({"test": item.nodeid, "wall_s": time.monotonic() - wall, "cpu_s": _busy_cpu_s() - cpu})


def pytest_terminal_summary(terminalreporter, config):
    cores = os.cpu_count() or 1
    files: dict[str, list[float]] = {}
    for r in ROWS:
        f = files.setdefault(r["test"].split("::")[0], [0.0, 0.0])
        f[0] += r["wall_s"]
        f[1] += r["cpu_s"]
    write = terminalreporter.write_line
    write(f"| file | wall s | CPU s | idle core-s ({cores} cores) |\n|---|---:|---:|---:|")
    for name, (wall, cpu) in sorted(files.items(), key=lambda kv: -kv[1][0])[:15]:
        write(f"| {name} | {wall:.1f} | {cpu:.1f} | {cores * wall - cpu:.1f} |")
    wall, cpu = sum(r["wall_s"] for r in ROWS), sum(r["cpu_s"] for r in ROWS)
    write(f"| all {len(ROWS)} tests | {wall:.1f} | {cpu:.1f} | {cores * wall - cpu:.1f} |")
    if path := config.getoption("--suite-cpu-json"):
        Path(path).write_text(json.dumps({"cores": cores, "tests": ROWS}, indent=1))
