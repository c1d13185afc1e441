"""The CLI as a user runs it: one `python -m synthstream.cli` subprocess per command, and several at a time
(a command's wall time is mostly interpreter and import start-up on one core: two run in the time of one)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

AT_ONCE = 2


def cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """`synthstream ARGS`, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "synthstream.cli", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def cli_all(commands: Sequence[Sequence[str]], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Each command's result, in order; AT_ONCE run together."""
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        return list(pool.map(lambda args: cli(*args, timeout=timeout), commands))
