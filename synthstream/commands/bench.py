"""`synthstream bench generator|stream|train|importance|serve|read`: the arguments of the benchmarks in
`synthstream/bench/`.

Each benchmark module is imported only when its command runs (they pull in Numba, Ray and torch)."""

from __future__ import annotations

import argparse

from synthstream import argtypes
from synthstream.commands.infer import particles


def bench_seconds(text: str) -> float:
    """--seconds of a benchmark: a finite number >= 0.5 (anything shorter times nothing but start-up)."""
    v = argtypes.positive_float(text)
    if v < 0.5:
        raise argparse.ArgumentTypeError(f"{v:g} s is too short to time anything; use at least 0.5")
    return v


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks: throughput, and importance sampling's ceiling "
                                                "(table + JSON, baseline in the same run)")
    bsub = bench.add_subparsers(dest="bench", required=True)

    g = bsub.add_parser("generator", help="captchas/s per core per style vs the `captcha` package")
    g.add_argument("--style", action="append", help="style to time (repeatable; default: all built-ins)")
    g.add_argument("--threads", type=argtypes.positive_int, help="Numba threads (default: all cores)")
    g.add_argument("--batch", type=argtypes.sample_count, default=256)
    g.add_argument("--seconds", type=bench_seconds, default=10.0, help="timed seconds per style")
    g.add_argument("--json", help="also write the JSON result here")
    g.set_defaults(func=run_generator)

    st = bsub.add_parser("stream", help="images/s delivered by N generator actors vs Ray Data, a torch DataLoader "
                                        "and a by-value queue on the same CPUs")
    st.add_argument("--actors", type=argtypes.positive_int_list, default=[1, 2],
                    help="comma-separated actor counts, e.g. 1,2")
    st.add_argument("--batch", type=argtypes.positive_int_list, default=[256],
                    help="training batch size(s), comma-separated, e.g. 64,256")
    st.add_argument("--seconds", type=bench_seconds, default=30.0,
                    help="timed seconds per method and actor count (>= 0.5)")
    st.add_argument("--methods", type=lambda t: [m.strip() for m in t.split(",") if m.strip()],
                    help="comma-separated subset of synthstream,synthstream_batch_objects,raydata,dataloader,queue")
    st.add_argument("--plot", help="PNG of delivered rate vs actors and batch (default: beside --json)")
    st.add_argument("--style", default="wikipedia")
    st.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    st.add_argument("--json", help="also write the JSON result here")
    st.set_defaults(func=run_stream)

    tr = bsub.add_parser("train", help="training images/s from the stream vs a pre-rendered in-memory ceiling")
    tr.add_argument("--preset", action="append", help="network preset (repeatable; default: cpu)")
    tr.add_argument("--style", default="wikipedia")
    tr.add_argument("--batch", type=argtypes.batch_size, default=64)
    tr.add_argument("--seconds", type=bench_seconds, default=20.0, help="timed seconds per loop")
    tr.add_argument("--generators", type=argtypes.positive_int, default=1)
    tr.add_argument("--generator-cpus", type=argtypes.positive_float, default=0.5)
    tr.add_argument("--gpu", action="store_true", help="train on the GPU (bf16, channels_last)")
    tr.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    tr.add_argument("--json", help="also write the JSON result here")
    tr.set_defaults(func=run_train)

    im = bsub.add_parser("importance", help="importance sampling on synthetic captchas against the ABC kernel's "
                                            "width, nuisance from the prior vs the image's own; beam and q baselines")
    im.add_argument("--checkpoint", required=True, help="a checkpoint.pt (or its run folder), or a shipped model")
    im.add_argument("--prior", help="infer (and draw the test captchas) under this style's text prior")
    im.add_argument("-n", type=argtypes.int_range(1, 100_000), default=200, help="synthetic captchas")
    im.add_argument("--particles", type=particles, default=100, help="samples of q per captcha")
    im.add_argument("--scales", type=argtypes.positive_float_list, default=[1.0, 0.3, 0.1, 0.03],
                    help="comma-separated multiples of the calibrated bandwidth")
    im.add_argument("--seed", type=argtypes.int_range(0, 2**31 - 1), default=0)
    im.add_argument("--json", help="also write the JSON result here")
    im.set_defaults(func=run_importance)

    sv = bsub.add_parser("serve", help="requests/s and p50/p99 latency of `synthstream serve` under N concurrent "
                                       "clients vs a single-process loop")
    sv.add_argument("--checkpoint", required=True, help="a checkpoint.pt (or its run folder), or a shipped model")
    sv.add_argument("--clients", type=argtypes.int_range(1, 1024), default=8)
    sv.add_argument("--replicas", type=argtypes.int_range(1, 1024), default=2)
    sv.add_argument("--replica-cpus", type=argtypes.positive_float, default=1.0)
    sv.add_argument("--max-batch", type=argtypes.int_range(1, 1024), default=16)
    sv.add_argument("--seconds", type=bench_seconds, default=20.0, help="timed seconds per side")
    sv.add_argument("--threads", type=argtypes.positive_int, default=1, help="torch threads of the loop")
    sv.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    sv.add_argument("--json", help="also write the JSON result here")
    sv.set_defaults(func=run_serve)

    rd = bsub.add_parser("read", help="captchas/s of `synthstream read` (Ray Data actor pool) vs one process on "
                                      "the same cores")
    rd.add_argument("--checkpoint", required=True, help="a checkpoint.pt (or its run folder), or a shipped model")
    rd.add_argument("-n", type=argtypes.int_range(1, 1_000_000), default=512, help="synthetic PNG files")
    rd.add_argument("--actors", type=argtypes.int_range(1, 4096), help="reader actors (default: CPUs / --actor-cpus)")
    rd.add_argument("--actor-cpus", type=argtypes.positive_float, default=1.0)
    rd.add_argument("--batch", type=argtypes.int_range(1, 4096), default=64, help="images per reader call")
    rd.add_argument("--threads", type=argtypes.positive_int, help="torch threads of the one process (default: "
                                                                  "all cores)")
    rd.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    rd.add_argument("--json", help="also write the JSON result here")
    rd.set_defaults(func=run_read)


def run_generator(args: argparse.Namespace) -> None:
    from synthstream.bench import generator
    generator.run(args.style, args.threads, args.batch, args.seconds, args.json)


def run_stream(args: argparse.Namespace) -> None:
    from synthstream.bench import stream
    stream.run(args.actors, args.batch, args.seconds, args.style, args.json, args.address, args.methods, args.plot)


def run_train(args: argparse.Namespace) -> None:
    from synthstream.bench import train
    train.run(args.preset or ["cpu"], args.style, args.batch, args.seconds, args.generators,
              args.generator_cpus, args.gpu, args.json, args.address)


def run_importance(args: argparse.Namespace) -> None:
    from synthstream.bench import importance
    importance.run(args.checkpoint, args.prior, args.n, args.particles, args.scales, args.seed, args.json)


def run_serve(args: argparse.Namespace) -> None:
    from synthstream.bench import serve
    serve.run(args.checkpoint, args.clients, args.replicas, args.replica_cpus, args.max_batch, args.seconds,
              args.json, args.address, args.threads)


def run_read(args: argparse.Namespace) -> None:
    from synthstream.bench import read
    read.run(args.checkpoint, args.n, args.actors, args.actor_cpus, args.batch, args.json, args.address, args.threads)
