"""The `synthstream` command. Each subcommand builds its inputs, runs one function, and reports.

Bad input (UserError) becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from synthstream.errors import UserError


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} must be >= {low}" if low else f"{v} must be >= 0")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


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
    p.add_argument("--out", required=True, help="grid.png (labels under each tile), batch.npz (arrays), or a "
                   "folder DIR/ (one PNG per sample + labels.csv, for `synthstream eval`)")
    p.add_argument("--columns", type=_positive_int, default=4, help="tiles per row in a PNG grid")
    p.add_argument("--real", help="directory of real captchas (label = file name) to show beside synthetic")
    p.add_argument("--threads", type=_positive_int, help="Numba threads (default: all cores)")
    p.add_argument("--prior-scale", type=_positive_float, default=1.0, help="widen the nuisance prior (see train)")

    t = sub.add_parser("train", help="train a proposal network from the stream with Ray Train")
    t.add_argument("--style", default="tiny", help="built-in style name or path to a style .toml")
    t.add_argument("--preset", default="cpu", help="network size: cpu, paper or gpu")
    t.add_argument("--workers", type=_positive_int, default=1, help="Ray Train workers (DDP ranks)")
    t.add_argument("--generators", type=_positive_int, default=1, help="generator actors")
    t.add_argument("--generator-cpus", type=_positive_float, default=0.5, help="CPUs per generator actor")
    t.add_argument("--prior-scale", type=_positive_float, default=1.0,
                   help="widen every nuisance range of the style this many times (1 = as written)")
    t.add_argument("--steps", type=_positive_int, default=500)
    t.add_argument("--batch-size", type=_positive_int, default=64, help="per worker")
    t.add_argument("--lr", type=_positive_float, default=2e-3)
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--val-every", type=_positive_int, default=100, help="validate and checkpoint every N steps")
    t.add_argument("--val-size", type=_positive_int, default=512)
    t.add_argument("--max-failures", type=_nonneg_int, default=3, help="worker-group restarts allowed")
    t.add_argument("--gpu", action="store_true", help="one GPU per worker (nccl, bf16, channels_last)")
    t.add_argument("--compile", action="store_true", help="torch.compile the network")
    t.add_argument("--out", required=True, help="output folder (report.json, curve.png, checkpoint.pt, ...)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    i = sub.add_parser("infer", help="posterior over strings for captcha images")
    i.add_argument("images", nargs="+", help="image files")
    i.add_argument("--checkpoint", required=True,
                   help="a checkpoint.pt (or its run folder), or a shipped model: wikipedia, facebook")
    i.add_argument("--method", choices=("proposal", "is"), default="proposal",
                   help="proposal: q alone (default; the better one on the real captchas, see README); "
                        "is: importance sampling against the style")
    i.add_argument("--particles", type=_positive_int, default=100)
    i.add_argument("--bandwidth", type=_positive_float, default=None, help="ABC kernel bandwidth (is; default: calibrated per style)")
    i.add_argument("--top", type=_positive_int, default=3, help="strings to list per image")
    i.add_argument("--style", help="refuse a checkpoint of any other style")
    i.add_argument("--seed", type=_nonneg_int, default=0)
    i.add_argument("--prior-scale", type=_positive_float, default=1.0,
                   help="widen the nuisance prior that importance sampling re-renders with")
    i.add_argument("--json", action="store_true", help="JSON lines instead of text")

    e = sub.add_parser("eval", help="accuracy and calibration on a folder of labelled captchas")
    e.add_argument("--data", required=True, help="folder of images; labels = file names or labels.csv")
    e.add_argument("--checkpoint", required=True, help="checkpoint path, run folder, or wikipedia/facebook")
    e.add_argument("--method", choices=("proposal", "is"), default="proposal")
    e.add_argument("--particles", type=_positive_int, default=100)
    e.add_argument("--bandwidth", type=_positive_float, default=None)
    e.add_argument("--style", help="refuse a checkpoint of any other style")
    e.add_argument("--seed", type=_nonneg_int, default=0)
    e.add_argument("--prior-scale", type=_positive_float, default=1.0,
                   help="widen the nuisance prior that importance sampling re-renders with")
    e.add_argument("--out", help="report folder (report.json, reliability.png, coverage.png, failures.md)")

    x = sub.add_parser("export", help="slim a checkpoint for shipping (float16 weights, no optimiser)")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True, help="destination .pt")

    bench = sub.add_parser("bench", help="throughput benchmarks (table + JSON, baseline in the same run)")
    bsub = bench.add_subparsers(dest="bench", required=True)
    g = bsub.add_parser("generator", help="captchas/s per core per style vs the `captcha` package")
    g.add_argument("--style", action="append", help="style to time (repeatable; default: all built-ins)")
    g.add_argument("--threads", type=_positive_int, help="Numba threads (default: all cores)")
    g.add_argument("--batch", type=_positive_int, default=256)
    g.add_argument("--seconds", type=_positive_float, default=10.0, help="timed seconds per style")
    g.add_argument("--json", help="also write the JSON result here")
    st = bsub.add_parser("stream", help="images/s delivered by N generator actors vs standalone and a by-value queue")
    st.add_argument("--actors", default="1,2", help="comma-separated actor counts, e.g. 1,2")
    st.add_argument("--batch", type=_positive_int, default=256)
    st.add_argument("--seconds", type=_positive_float, default=30.0, help="timed seconds per actor count")
    st.add_argument("--style", default="wikipedia")
    st.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    st.add_argument("--json", help="also write the JSON result here")
    tr = bsub.add_parser("train", help="training images/s from the stream vs a pre-rendered in-memory ceiling")
    tr.add_argument("--preset", action="append", help="network preset (repeatable; default: cpu)")
    tr.add_argument("--style", default="wikipedia")
    tr.add_argument("--batch", type=_positive_int, default=64)
    tr.add_argument("--seconds", type=_positive_float, default=20.0, help="timed seconds per loop")
    tr.add_argument("--generators", type=_positive_int, default=1)
    tr.add_argument("--generator-cpus", type=_positive_float, default=0.5)
    tr.add_argument("--gpu", action="store_true", help="train on the GPU (bf16, channels_last)")
    tr.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    tr.add_argument("--json", help="also write the JSON result here")
    return parser


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} {text!r}: expected comma-separated integers, e.g. 1,2") from None
    if not values or min(values) < 1:
        raise UserError(f"{what} {text!r}: every count must be >= 1")
    return values


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sample":
            from synthstream.commands import sample
            sample(args)
        elif args.command == "infer":
            from synthstream.commands import infer
            return infer(args)
        elif args.command == "eval":
            from synthstream.commands import evaluate
            evaluate(args)
        elif args.command == "export":
            from synthstream.commands import export
            export(args)
        elif args.command == "train":
            from synthstream.commands import train
            train(args)
        elif args.command == "bench" and args.bench == "generator":
            from synthstream.bench import generator
            generator.run(args.style, args.threads, args.batch, args.seconds, args.json)
        elif args.command == "bench" and args.bench == "stream":
            from synthstream.bench import stream
            stream.run(_int_list(args.actors, "--actors"), args.batch, args.seconds, args.style, args.json,
                       args.address)
        elif args.command == "bench" and args.bench == "train":
            from synthstream.bench import train
            train.run(args.preset or ["cpu"], args.style, args.batch, args.seconds, args.generators,
                      args.generator_cpus, args.gpu, args.json, args.address)
    except UserError as e:
        print(f"synthstream: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthstream: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
