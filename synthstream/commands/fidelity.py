"""`synthstream fidelity`: how far a style's samples are from real captchas, without labels."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    f = subparsers.add_parser("fidelity", help="real vs synthetic: classifier two-sample AUC and image statistics")
    f.add_argument("--style", required=True, help="built-in style name or path to a style .toml")
    f.add_argument("--real", required=True, help="folder of real captcha images (labels unused)")
    f.add_argument("-n", type=argtypes.positive_int, default=500, help="at most this many real images (and as "
                   "many synthetic)")
    f.add_argument("--seed", type=argtypes.seed, default=0)
    f.add_argument("--json", help="also write the JSON report here")
    f.add_argument("--out", help="folder for fidelity.json and fidelity_grid.png")
    f.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from synthstream.fidelity import fidelity_command

    fidelity_command(args.style, args.real, json_path=args.json, out_dir=args.out, n=args.n, seed=args.seed)
