"""`synthstream export`: slim a checkpoint for shipping."""

from __future__ import annotations

import argparse

from synthstream.output import writable_output


def register(subparsers) -> None:
    x = subparsers.add_parser("export", help="slim a checkpoint for shipping (float16 weights, no optimiser)")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True, help="destination .pt")
    x.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.checkpoint import export as slim
    from trainer.checkpoint import resolve

    out = writable_output(args.out, (".pt",))
    state = slim(resolve(args.checkpoint), out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; style {state['style']['name']}, step {state['step']})")
