"""`synthstream eval`: accuracy and calibration on a folder of labelled captchas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthstream import argtypes
from synthstream.commands.infer import add_inference_args, inference_args, model_and_style
from synthstream.errors import UserError


def register(subparsers) -> None:
    e = subparsers.add_parser("eval", help="accuracy and calibration on a folder of labelled captchas")
    e.add_argument("--data", required=True, help="folder of images; labels = file names or labels.csv")
    add_inference_args(e)
    e.add_argument("--calibrate", type=argtypes.int_range(0, 100_000), default=500, metavar="N",
                   help="fit a temperature on N synthetic captchas of the style (its own seed) and apply it; "
                        "0: none")
    e.add_argument("--calibrate-scale", type=argtypes.positive_float, default=1.0, metavar="S",
                   help="draw the calibration set with the style's nuisance prior widened S times (off the "
                        "training distribution, as real captchas are)")
    e.add_argument("--temperature", type=argtypes.positive_float, default=None,
                   help="apply this temperature instead of fitting one")
    e.add_argument("--out", help="report folder (report.json, reliability.png, coverage.png, failures.md)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.evaluate import calibrate, check_report_dir, write_report
    from trainer.evaluate import evaluate as run_eval
    from trainer.images import load_labelled_dir

    out = check_report_dir(args.out) if args.out else None           # before any work
    model, style, trained = model_and_style(args.checkpoint, args.style, args.prior_scale, args.prior)
    infer_args = inference_args(args, trained)
    items = load_labelled_dir(args.data, style)
    for it in items:
        if it.image is None or not it.in_support:
            print(f"synthstream: error: {it.path}: {it.note}", file=sys.stderr)
    if not any(it.image is not None and it.in_support for it in items):
        raise UserError(f"nothing in {args.data!r} could be evaluated with a {style.name!r} model")
    calibration = None
    temperature = args.temperature
    if temperature is None and args.calibrate:
        calibration = calibrate(model, style, args.calibrate, args.calibrate_scale, **infer_args)
        temperature = calibration["temperature"]
    report, rows = run_eval(model, style, items, seed=args.seed, temperature=temperature or 1.0, **infer_args)
    report.update({"data": str(args.data), "checkpoint": str(args.checkpoint), "style": style.name,
                   "prior": args.prior, "prior_scale": args.prior_scale, "calibration": calibration})
    if args.out:
        write_report(out, report, rows, f"{style.name} on {Path(args.data).name}")
    size = f"width {args.beam_width}" if args.method == "beam" else f"{args.particles} particles"
    size += f", {args.shifts} shifts" if args.shifts > 1 else ""
    size += f", bandwidth {report['bandwidth']:.3g}" if report["bandwidth"] is not None else ""
    by_len = ", ".join(f"len {k}: {v['exact_rate']:.2f} (n={v['n']})" for k, v in report["rate_by_length"].items())
    mism = "" if report["mismatch_rate"] is None else f", model-mismatch flag on {100 * report['mismatch_rate']:.0f}%"
    print(f"{style.name} model on {args.data}: exact {report['exact_rate']:.3f} (n={report['n']}), "
          f"per-char {report['per_character_accuracy']:.3f}, norm. Levenshtein {report['normalised_levenshtein']:.3f}, "
          f"top-3 {report['top3_rate']:.3f}, ECE {report['ece']:.3f} (T={report['temperature']:.2f}; "
          f"{report['ece_before_calibration']:.3f} before){mism}; {1e3 * report['seconds_per_captcha']:.1f} ms/captcha "
          f"({args.method}, {size})")
    if report["labels_off_text_prior"]:
        inside = report["labels_in_text_prior"]
        print(f"{report['labels_off_text_prior']} labels lie outside the text prior (no reader under it can get "
              f"them); the other {inside['n']}: exact {inside['exact_rate']:.3f}, ECE {inside['ece']:.3f}")
    print(f"by length: {by_len}")
    if args.out:
        print(f"wrote {args.out}/report.json, reliability.png, coverage.png, failures.md")
