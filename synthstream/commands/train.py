"""`synthstream train`: train a proposal network from the stream with Ray Train."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    t = subparsers.add_parser("train", help="train a proposal network from the stream with Ray Train")
    t.add_argument("--style", default="tiny", help="built-in style name or path to a style .toml")
    t.add_argument("--preset", default="cpu", help="network size: cpu, paper or gpu")
    t.add_argument("--workers", type=argtypes.positive_int, default=1, help="Ray Train workers (DDP ranks)")
    t.add_argument("--generators", type=argtypes.positive_int, default=1, help="generator actors")
    t.add_argument("--generator-cpus", type=argtypes.positive_float, default=0.5, help="CPUs per generator actor")
    t.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen every nuisance range of the style this many times (1 = as written)")
    t.add_argument("--steps", type=argtypes.positive_int, default=500)
    t.add_argument("--batch-size", type=argtypes.batch_size, default=64, help="per worker")
    t.add_argument("--lr", type=argtypes.positive_float, default=2e-3)
    t.add_argument("--seed", type=argtypes.seed, default=0)
    t.add_argument("--val-every", type=argtypes.positive_int, default=100,
                   help="validate and checkpoint every N steps")
    t.add_argument("--val-size", type=argtypes.positive_int, default=512)
    t.add_argument("--max-failures", type=argtypes.nonneg_int, default=3, help="worker-group restarts allowed")
    t.add_argument("--gpu", action="store_true", help="one GPU per worker (nccl, bf16, channels_last)")
    t.add_argument("--compile", action="store_true", help="torch.compile the network")
    t.add_argument("--out", required=True, help="output folder (report.json, curve.png, checkpoint.pt, ...)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else an embedded local Ray)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from synthstream.style import load_style
    from trainer.run import run as run_training
    from trainer.train import TrainConfig

    config = TrainConfig(style=args.style, preset=args.preset, workers=args.workers, generators=args.generators,
                         generator_cpus=args.generator_cpus, steps=args.steps, batch_size=args.batch_size,
                         prior_scale=args.prior_scale,
                         lr=args.lr, seed=args.seed, val_every=min(args.val_every, args.steps),
                         val_size=args.val_size, max_failures=args.max_failures, use_gpu=args.gpu,
                         compile=args.compile)
    load_style(args.style)
    report = run_training(config, args.out, address=args.address, resume=args.resume,
                          progress=not args.no_progress)
    final = report["final"]
    print(f"{report['style']} / {report['preset']}: {report['steps']} steps in {report['wall_s']:.0f} s; "
          f"validation whole-string accuracy {final.get('val/string_accuracy', float('nan')):.3f}, "
          f"per-character {final.get('val/acc/char', float('nan')):.3f}; "
          f"{final.get('images_per_s', 0):.0f} training images/s, data wait "
          f"{100 * final.get('data_wait_share', 0):.1f}% of step time")
    print(f"wrote {args.out}/report.json, curve.png, checkpoint.pt")
