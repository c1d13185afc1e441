"""`synthstream eval`: accuracy and calibration on a folder of labelled captchas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthstream import argtypes
from synthstream.commands.infer import model_and_style
from synthstream.errors import UserError


def register(subparsers) -> None:
    e = subparsers.add_parser("eval", help="accuracy and calibration on a folder of labelled captchas")
    e.add_argument("--data", required=True, help="folder of images; labels = file names or labels.csv")
    e.add_argument("--checkpoint", required=True, help="checkpoint path, run folder, or wikipedia/facebook")
    e.add_argument("--method", choices=("proposal", "is"), default="proposal")
    e.add_argument("--particles", type=argtypes.positive_int, default=100)
    e.add_argument("--bandwidth", type=argtypes.positive_float, default=None)
    e.add_argument("--style", help="refuse a checkpoint of any other style")
    e.add_argument("--seed", type=argtypes.seed, default=0)
    e.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen the nuisance prior that importance sampling re-renders with")
    e.add_argument("--out", help="report folder (report.json, reliability.png, coverage.png, failures.md)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.evaluate import evaluate as run_eval
    from trainer.evaluate import write_report
    from trainer.images import load_labelled_dir

    model, style = model_and_style(args.checkpoint, args.style, args.prior_scale)
    items = load_labelled_dir(args.data, style)
    for it in items:
        if it.image is None or not it.in_support:
            print(f"synthstream: error: {it.path}: {it.note}", file=sys.stderr)
    if not any(it.image is not None and it.in_support for it in items):
        raise UserError(f"nothing in {args.data!r} could be evaluated with a {style.name!r} model")
    report, rows = run_eval(model, style, items, method=args.method, particles=args.particles,
                            bandwidth=args.bandwidth, seed=args.seed)
    report.update({"data": str(args.data), "checkpoint": str(args.checkpoint), "style": style.name,
                   "prior_scale": args.prior_scale})
    if args.out:
        write_report(Path(args.out), report, rows, f"{style.name} on {Path(args.data).name}")
    by_len = ", ".join(f"len {k}: {v['exact_rate']:.2f} (n={v['n']})" for k, v in report["rate_by_length"].items())
    mism = "" if report["mismatch_rate"] is None else f", model-mismatch flag on {100 * report['mismatch_rate']:.0f}%"
    print(f"{style.name} model on {args.data}: exact {report['exact_rate']:.3f} (n={report['n']}), "
          f"per-char {report['per_character_accuracy']:.3f}, norm. Levenshtein {report['normalised_levenshtein']:.3f}, "
          f"ECE {report['ece']:.3f}{mism}; {1e3 * report['seconds_per_captcha']:.1f} ms/captcha "
          f"({args.method}, {args.particles} particles)")
    print(f"by length: {by_len}")
    if args.out:
        print(f"wrote {args.out}/report.json, reliability.png, coverage.png, failures.md")
