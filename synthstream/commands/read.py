"""`synthstream read`: read every image in a folder or bucket with Ray Data into Parquet or CSV
(trainer/batch_read.py)."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    r = subparsers.add_parser("read", help="read a folder or bucket of images on Ray Data (an actor pool of "
                                           "readers) into a Parquet or CSV table; a rerun resumes")
    r.add_argument("--data", required=True, help="a folder, or a URI pyarrow reads (s3://..., gs://...)")
    r.add_argument("--checkpoint", required=True, help="a checkpoint.pt (or its run folder), or a shipped model")
    r.add_argument("--out", required=True, help="results .parquet or .csv (path, text, probability, mismatch, "
                                                "error); rerunning resumes a file this command wrote")
    r.add_argument("--actors", type=argtypes.int_range(1, 4096), help="reader actors (default: the cluster's CPUs "
                                                                       "/ --actor-cpus)")
    r.add_argument("--actor-cpus", type=argtypes.positive_float, default=1.0, help="CPUs per reader actor")
    r.add_argument("--batch", type=argtypes.int_range(1, 4096), default=64, help="images per reader call")
    r.add_argument("--chunk", type=argtypes.int_range(1, 10_000_000), default=4096,
                   help="images between two saves of the results (what a rerun can skip)")
    r.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from synthstream.output import writable_output
    from trainer import batch_read

    out = writable_output(args.out, (".parquet", ".csv"))
    done = batch_read.run(args.data, args.checkpoint, out, actors=args.actors, batch_size=args.batch,
                          chunk=args.chunk, actor_cpus=args.actor_cpus, address=args.address)
    if done["read"] == done["bad"] == 0:
        print(f"{out}: every image under {args.data} is already read ({done['total']} rows); nothing to do")
        return
    print(f"wrote {out}: {done['read']} images read, {done['bad']} bad, {done['skipped']} already there "
          f"({done['total']} rows)")
    for path, error in done["bad_files"][:10]:
        print(f"  bad file {path}: {error}")
    if len(done["bad_files"]) > 10:
        print(f"  ... and {len(done['bad_files']) - 10} more (rows with an error in {out})")

