"""`synthstream train`: train a proposal network from the stream with Ray Train."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def register(subparsers) -> None:
    t = subparsers.add_parser("train", help="train a proposal network from the stream with Ray Train")
    t.add_argument("--style", default="tiny", help="built-in style name or path to a style .toml")
    t.add_argument("--preset", default="cpu",
                   help="network: cpu, paper, gpu, cpu-columns or gpu-columns (steps attend to image columns)")
    t.add_argument("--workers", type=argtypes.positive_int, default=1, help="Ray Train workers (DDP ranks)")
    t.add_argument("--generators", type=argtypes.positive_int, default=1, help="generator actors")
    t.add_argument("--generator-cpus", type=argtypes.positive_float, default=0.5, help="CPUs per generator actor")
    t.add_argument("--generator-resource", metavar="NAME", type=argtypes.custom_resource,
                   help="a custom Ray resource generator actors also require, to pin them to the nodes that "
                        "advertise it (e.g. a CPU worker group started with --resources='{\"NAME\": 1}')")
    t.add_argument("--worker-cpus", type=argtypes.positive_float,
                   help="CPUs per training worker (default: what the generators leave of the cluster now; set it "
                        "on a cluster that autoscales)")
    t.add_argument("--torch-threads", type=argtypes.positive_int,
                   help="intra-op threads per training worker (default: its CPUs; 1 is faster on a busy host)")
    t.add_argument("--resource-wait", type=argtypes.nonneg_float, default=None, metavar="SECONDS",
                   help="wait this long for an autoscaling cluster to add the nodes the run needs (default: 0 on "
                        "the embedded Ray, 600 when joining a cluster)")
    t.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen every nuisance range of the style this many times (1 = as written)")
    t.add_argument("--steps", type=argtypes.positive_int, default=500)
    t.add_argument("--max-minutes", type=argtypes.positive_float,
                   help="a wall-clock budget: validate, checkpoint and stop once it is spent")
    t.add_argument("--batch-size", type=argtypes.batch_size, default=64, help="per worker")
    t.add_argument("--lr", type=argtypes.positive_float, default=2e-3)
    t.add_argument("--seed", type=argtypes.seed, default=0)
    t.add_argument("--val-every", type=argtypes.positive_int, default=100,
                   help="validate and checkpoint every N steps")
    t.add_argument("--val-size", type=argtypes.positive_int, default=512)
    t.add_argument("--max-failures", type=argtypes.nonneg_int, default=3, help="worker-group restarts allowed")
    t.add_argument("--gpu", action="store_true", help="one GPU per worker (nccl, bf16, channels_last)")
    t.add_argument("--compile", action="store_true", help="torch.compile the network")
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
    import os

    from synthstream.stream import StreamConfig
    from synthstream.style import load_style
    from trainer.run import run as run_training
    from trainer.train import TrainConfig

    joining = bool(args.address or os.environ.get("RAY_ADDRESS"))
    wait = args.resource_wait if args.resource_wait is not None else (600.0 if joining else 0.0)
    style = load_style(args.style).widened(args.prior_scale)
    stream = StreamConfig(style=style, seed=args.seed, batch_size=args.batch_size, num_actors=args.generators,
                          actor_cpus=args.generator_cpus, actor_resource=args.generator_resource,
                          resource_wait_s=wait)
    config = TrainConfig(stream=stream, preset=args.preset, workers=args.workers, worker_cpus=args.worker_cpus,
                         torch_threads=args.torch_threads,
                         steps=args.steps, lr=args.lr,
                         max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
                         val_every=args.val_every, val_size=args.val_size,
                         max_failures=args.max_failures, use_gpu=args.gpu, compile=args.compile)
    report = run_training(config, args.out, address=args.address, resume=args.resume,
                          progress=False if args.no_progress else None)
    final = report["final"]
    print(f"{report['style']} / {report['preset']}: {final.get('step', 0)} steps in {report['wall_s']:.0f} s; "
          f"validation whole-string accuracy {final.get('val/string_accuracy', float('nan')):.3f}, "
          f"per-character {final.get('val/acc/char', float('nan')):.3f}; "
          f"{final.get('images_per_s', 0):.0f} training images/s, data wait "
          f"{100 * final.get('data_wait_share', 0):.1f}% of step time")
    print(f"wrote {args.out}/report.json, curve.png, checkpoint.pt")
