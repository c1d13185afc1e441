"""Shared output for benchmarks: a fixed-width table on stdout and JSON to a file."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from synthstream.errors import UserError


def machine() -> dict:
    import os
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def print_table(headers: list[str], rows: list[list], digits: list[int] | None = None) -> None:
    """Floats with one decimal, or `digits[i]` decimals in column i."""
    digits = digits or [1] * len(headers)
    cells = [headers] + [[f"{v:,.{d}f}" if isinstance(v, float) else str(v) for v, d in zip(r, digits)]
                         for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(result: dict, path: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        try:
            Path(path).write_text(text + "\n")
        except OSError as e:
            raise UserError(f"cannot write --json {path}: {e.strerror}") from None


def module_main(prog: str, call: Callable[[], object]) -> int:
    """The exit status of a benchmark module run as a script: 0, or 2 after one line for a UserError."""
    try:
        call()
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


def folder_main(doc: str, write: Callable[[str, int, int], object], seed_help: str,
                argv: list[str] | None = None) -> int:
    """`python -m MODULE OUT [-n N] [--seed S]` for a module that writes a labelled folder of a generator's own
    captchas (`write(out, n, seed)`): prints the folder."""
    import argparse

    from synthstream import argtypes

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("out", help="a folder that does not exist yet (or is empty)")
    parser.add_argument("-n", type=argtypes.positive_int, default=200, help="how many captchas (default 200)")
    parser.add_argument("--seed", type=argtypes.seed, default=0, help=f"{seed_help} (default 0)")
    args = parser.parse_args(argv)
    return module_main(parser.prog, lambda: print(write(args.out, args.n, args.seed)))
