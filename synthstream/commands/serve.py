"""`synthstream serve`: the reader behind an HTTP endpoint on Ray Serve (trainer/serve.py)."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    s = subparsers.add_parser("serve", help="serve a reader on Ray Serve: POST an image to /read, get JSON "
                                            "(request batching; /healthz, /ready)")
    s.add_argument("--checkpoint", required=True, help="a checkpoint.pt (or its run folder), or a shipped model")
    s.add_argument("--replicas", type=argtypes.int_range(1, 1024), default=1)
    s.add_argument("--replica-cpus", type=argtypes.positive_float, default=1.0, help="CPUs per replica")
    s.add_argument("--max-batch", type=argtypes.int_range(1, 1024), default=16,
                   help="most requests read together by one replica")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    s.add_argument("--port", type=argtypes.int_range(1, 65535), default=8000)
    s.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import time

    try:
        import fastapi  # noqa: F401
        from ray import serve
    except ImportError:
        from synthstream.errors import UserError

        raise UserError("synthstream serve needs Ray Serve and FastAPI: pip install 'synthstream[serve]'") from None

    from trainer.checkpoint import resolve
    from trainer.serve import start

    resolve(args.checkpoint)                        # a missing checkpoint is one line before Ray starts
    url = start(args.checkpoint, host=args.host, port=args.port, replicas=args.replicas,
                replica_cpus=args.replica_cpus, max_batch=args.max_batch, address=args.address)
    print(f"serving {args.checkpoint} on {url}/read ({args.replicas} replicas); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()
