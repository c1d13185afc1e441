"""`synthstream train`: train a proposal network from the stream with Ray Train."""

from __future__ import annotations

import argparse

from synthstream.commands import flags


def register(subparsers) -> None:
    from trainer.config import TrainConfig

    t = subparsers.add_parser("train", help="train a proposal network from the stream with Ray Train")
    flags.add_config_flags(t, TrainConfig)             # one flag per TrainConfig option (trainer/config.py)
    t.add_argument("--out", required=True,
                   help="output folder or storage URI (s3://, gs://, file://): report.json, curve.png, "
                        "checkpoint.pt, metrics.csv, tensorboard/, ray/. Re-running the same command on the same "
                        "--out continues that run from its newest checkpoint")
    t.add_argument("--resume", action="store_true", help="require --out to hold the run to continue")
    t.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    t.add_argument("--no-progress", action="store_true",
                   help="log lines instead of a progress bar (the default without a terminal, e.g. under "
                        "`ray job submit`)")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.config import TrainConfig
    from trainer.run import run as run_training

    config = flags.config_from_args(args, TrainConfig)
    report = run_training(config, args.out, address=args.address, resume=args.resume,
                          progress=False if args.no_progress else None)
    final = report["final"]
    print(f"{report['style']} / {report['preset']}: {final.get('step', 0)} steps in {report['wall_s']:.0f} s; "
          f"validation whole-string accuracy {final.get('val/string_accuracy', float('nan')):.3f}, "
          f"per-character {final.get('val/acc/char', float('nan')):.3f}; "
          f"{final.get('images_per_s', 0):.0f} training images/s, data wait "
          f"{100 * final.get('data_wait_share', 0):.1f}% of step time")
    print(f"wrote {args.out}/report.json, curve.png, checkpoint.pt")
