"""`synthstream sweep`: a hyperparameter sweep of training runs on Ray Tune."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    s = subparsers.add_parser("sweep", help="a hyperparameter sweep of training runs on Ray Tune (ASHA)")
    s.add_argument("--space", required=True,
                   help="space .toml: [train] fixed options, [search] dimensions (choice, grid, uniform, "
                        "loguniform, randint) over train options or style fields such as warp.elastic_alpha")
    s.add_argument("--trials", type=argtypes.positive_int, default=1,
                   help="samples of the space (a grid runs whole in each sample)")
    s.add_argument("--metric", default="val/string_accuracy",
                   help="what the best trial maximises (or minimises): val/string_accuracy, val/loss, "
                        "val/acc/char, train_loss, or eval/exact_rate with --eval-data")
    s.add_argument("--mode", choices=("max", "min"), default=None, help="default: min for a loss, else max")
    s.add_argument("--scheduler", choices=("asha", "none"), default="asha",
                   help="asha: stop poor trials at a validation (every val_every steps); none: run all to the end")
    s.add_argument("--max-concurrent", type=argtypes.positive_int, default=None,
                   help="trials at once (default and upper bound: as many as the cluster fits whole)")
    s.add_argument("--eval-data", metavar="DIR",
                   help="labelled folder: each trial ends with its exact-string rate there (eval/exact_rate)")
    s.add_argument("--out", required=True,
                   help="output folder or storage URI: results.csv, best.json, best.pt, sweep.png, trials/, "
                        "tune/. Re-running the same command on the same --out continues the sweep")
    s.add_argument("--resource-wait", type=argtypes.positive_float, default=None, metavar="SECONDS",
                   help="how long a trial may wait for its training workers to be placed before it fails "
                        "(default: 120 on the embedded Ray, 600 when joining a cluster)")
    s.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import os

    from trainer.sweep import SweepConfig, load_space, sweep

    joining = bool(args.address or os.environ.get("RAY_ADDRESS"))
    wait = args.resource_wait if args.resource_wait is not None else (600.0 if joining else 120.0)
    config = SweepConfig(space=load_space(args.space), metric=args.metric, mode=args.mode, trials=args.trials,
                         scheduler=args.scheduler, max_concurrent=args.max_concurrent, eval_data=args.eval_data,
                         resource_wait_s=wait)
    best = sweep(config, args.out, address=args.address)
    counts = best["trials"]
    params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
    print(f"{sum(counts.values())} trials: {counts['finished']} finished, {counts['stopped']} stopped early, "
          f"{counts['failed']} failed; best {best['metric']} = {best['value']:.4g} (trial {best['trial_id']}: "
          f"{params})")
    print(f"wrote {args.out}/results.csv, best.json, best.pt, sweep.png")
