"""`synthstream eval`: accuracy and calibration on a folder of labelled captchas, a thin wrapper over the reader
API: the model reads with its checkpoint's recipe (temperature included) unless a flag overrides a part."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from synthstream import argtypes
from synthstream.commands.infer import add_inference_args, load, shown
from synthstream.errors import UserError

CALIBRATE_DEFAULT = 500           # synthetic captchas a temperature is fitted on when no recipe supplies one


def register(subparsers) -> None:
    e = subparsers.add_parser("eval", help="accuracy and calibration on a folder of labelled captchas")
    e.add_argument("--data", required=True, help="folder of images; labels = file names or labels.csv")
    add_inference_args(e)
    e.add_argument("--calibrate", type=argtypes.int_range(0, 100_000), default=None, metavar="N",
                   help="fit a temperature on N synthetic captchas of the style (its own seed) and apply it; 0: "
                        "none (default: the recipe's temperature when it applies, else fitted on "
                        f"{CALIBRATE_DEFAULT})")
    e.add_argument("--calibrate-scale", type=argtypes.positive_float, default=1.0, metavar="S",
                   help="draw the calibration set with the style's nuisance prior widened S times (off the "
                        "training distribution, as real captchas are)")
    e.add_argument("--temperature", type=argtypes.positive_float, default=None,
                   help="apply this temperature instead of the recipe's or a fitted one")
    e.add_argument("--out", help="report folder (report.json, reliability.png, coverage.png, failures.md)")
    e.set_defaults(func=run)


def temperature_of(reader, args: argparse.Namespace):
    """The reader with the temperature this evaluation applies: --temperature, --calibrate N (0: none), the
    recipe's when it applies to this reading, else one fitted on CALIBRATE_DEFAULT synthetic captchas."""
    from trainer.evaluate import calibrate

    recipe = reader.recipe
    if args.temperature is not None:
        return reader
    n = args.calibrate
    if n is None and recipe.sources.get("temperature") == "checkpoint":
        return reader
    if n == 0:
        T, calibration, source = 1.0, None, "flag (--calibrate 0)"
    else:
        n = n or CALIBRATE_DEFAULT
        calibration = calibrate(reader, n, args.calibrate_scale, seed=args.seed)
        T, source = calibration["temperature"], f"fitted now on {n} synthetic captchas"
    reader.recipe = dataclasses.replace(recipe, temperature=T, calibration=calibration,
                                        sources={**recipe.sources, "temperature": source})
    return reader


def run(args: argparse.Namespace) -> None:
    from trainer.evaluate import check_report_dir, evaluate_reader, write_report
    from trainer.images import load_labelled_dir

    out = check_report_dir(args.out) if args.out else None           # before any work
    reader = load(args)
    style = reader.style
    items = load_labelled_dir(args.data, style)
    for it in items:
        if it.image is None or not it.in_support:
            print(f"synthstream: error: {shown(it.path)}: {it.note}", file=sys.stderr)
    if not any(it.image is not None and it.in_support for it in items):
        raise UserError(f"nothing in {args.data!r} could be evaluated with a {style.name!r} model")
    reader = temperature_of(reader, args)
    report, rows = evaluate_reader(reader, items, seed=args.seed)
    about = reader.describe()
    report.update({"data": str(args.data), "checkpoint": str(args.checkpoint), "style": style.name, **about,
                   "prior_scale": args.prior_scale, "calibration": reader.recipe.calibration})
    name = f"{about['model']} (trained on {about['trained_on']}, read under the {about['prior']} prior)"
    if args.out:
        write_report(out, report, rows, f"{name} on {Path(args.data).name}")
    by_len = ", ".join(f"len {k}: {v['exact_rate']:.2f} (n={v['n']})" for k, v in report["rate_by_length"].items())
    mism = "" if report["mismatch_rate"] is None else f", model-mismatch flag on {100 * report['mismatch_rate']:.0f}%"
    bw = f", bandwidth {report['bandwidth']:.3g}" if report["bandwidth"] is not None else ""
    print(f"{name} on {args.data}: exact {report['exact_rate']:.3f} (n={report['n']}), "
          f"per-char {report['per_character_accuracy']:.3f}, norm. Levenshtein {report['normalised_levenshtein']:.3f}, "
          f"top-3 {report['top3_rate']:.3f}, ECE {report['ece']:.3f} (T={report['temperature']:.2f}; "
          f"{report['ece_before_calibration']:.3f} before){mism}; {1e3 * report['seconds_per_captcha']:.1f} ms/captcha")
    print(f"recipe: {reader.recipe.describe()}{bw} [{reader.recipe.where()}]")
    if report["labels_off_text_prior"]:
        inside = report["labels_in_text_prior"]
        print(f"{report['labels_off_text_prior']} labels lie outside the text prior (no reader under it can get "
              f"them); the other {inside['n']}: exact {inside['exact_rate']:.3f}, ECE {inside['ece']:.3f}")
    print(f"by length: {by_len}")
    if args.out:
        print(f"wrote {args.out}/report.json, reliability.png, coverage.png, failures.md")
