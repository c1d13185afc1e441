"""`synthstream sweep`: a hyperparameter sweep of training runs on Ray Tune."""

from __future__ import annotations

import argparse

from synthstream.commands import flags


def register(subparsers) -> None:
    from trainer.config import SweepConfig

    s = subparsers.add_parser("sweep", help="a hyperparameter sweep of training runs on Ray Tune (ASHA)")
    s.add_argument("--space", required=True,
                   help="space .toml: [train] fixed options, [search] dimensions (choice, grid, uniform, "
                        "loguniform, randint) over train options or style fields such as warp.elastic_alpha")
    flags.add_config_flags(s, SweepConfig)             # one flag per SweepConfig option (trainer/config.py)
    s.add_argument("--out", required=True,
                   help="output folder or storage URI: results.csv, best.json, best.pt, sweep.png, trials/, "
                        "tune/. Re-running the same command on the same --out continues the sweep")
    s.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.config import SweepConfig
    from trainer.sweep import load_space, sweep

    config = flags.config_from_args(args, SweepConfig, space=load_space(args.space))
    best = sweep(config, args.out, address=args.address)
    counts = best["trials"]
    params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"{sum(counts.values())} trials: {counts['finished']} finished, {counts['stopped']} stopped early, "
          f"{counts['failed']} failed; best {best['metric']} = {best['value']:.4g} (trial {best['trial_id']}: "
          f"{params})")
    print(f"wrote {args.out}/results.csv, best.json, best.pt, sweep.png")
