"""The `synthstream` command. Each subcommand builds its inputs, runs one function, and reports.

Bad input (UserError) becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from synthstream.errors import UserError


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be >= 0")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="render samples to a labelled grid PNG or a raw .npz")
    p.add_argument("--style", default="wikipedia", help="built-in style name or path to a style .toml")
    p.add_argument("-n", type=_positive_int, default=16, help="number of samples")
    p.add_argument("--seed", type=_nonneg_int, default=0)
    p.add_argument("--first-index", type=_nonneg_int, default=0, help="global index of the first sample")
    p.add_argument("--out", required=True, help="grid.png (labels under each tile) or batch.npz (arrays)")
    p.add_argument("--columns", type=_positive_int, default=4, help="tiles per row in a PNG grid")
    p.add_argument("--real", help="directory of real captchas (label = file name) to show beside synthetic")
    p.add_argument("--threads", type=_positive_int, help="Numba threads (default: all cores)")

    bench = sub.add_parser("bench", help="throughput benchmarks (table + JSON, baseline in the same run)")
    bsub = bench.add_subparsers(dest="bench", required=True)
    g = bsub.add_parser("generator", help="captchas/s per core per style vs the `captcha` package")
    g.add_argument("--style", action="append", help="style to time (repeatable; default: all built-ins)")
    g.add_argument("--threads", type=_positive_int, help="Numba threads (default: all cores)")
    g.add_argument("--batch", type=_positive_int, default=256)
    g.add_argument("--seconds", type=_positive_float, default=10.0, help="timed seconds per style")
    g.add_argument("--json", help="also write the JSON result here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sample":
            from synthstream.commands import sample
            sample(args)
        elif args.command == "bench" and args.bench == "generator":
            from synthstream.bench import generator
            generator.run(args.style, args.threads, args.batch, args.seconds, args.json)
    except UserError as e:
        print(f"synthstream: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthstream: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
