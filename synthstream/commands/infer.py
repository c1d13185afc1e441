"""`synthstream infer`: the posterior over strings for captcha images."""

from __future__ import annotations

import argparse
import sys

from synthstream import argtypes
from synthstream.errors import UserError


def bandwidth(text: str) -> float:
    from trainer.infer import BANDWIDTH_RANGE

    v = argtypes.positive_float(text)
    if not BANDWIDTH_RANGE[0] <= v <= BANDWIDTH_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{v:g} must be in [{BANDWIDTH_RANGE[0]:g}, {BANDWIDTH_RANGE[1]:g}]")
    return v


def particles(text: str) -> int:
    from trainer.infer import MAX_PARTICLES

    return argtypes.int_range(1, MAX_PARTICLES)(text)


def shifts(text: str) -> int:
    from trainer.infer import SHIFTS

    return argtypes.int_range(1, len(SHIFTS))(text)


def add_inference_args(p) -> None:
    """The flags `infer` and `eval` share."""
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint.pt (or its run folder), or a shipped model: wikipedia, facebook")
    p.add_argument("--method", choices=("proposal", "beam", "is"), default="proposal",
                   help="proposal: q alone, sampled (--particles 1: greedy); beam: q + the text prior, beam "
                        "search restricted to the prior's support; is: importance sampling against the style "
                        "with the exact text prior")
    p.add_argument("--particles", type=particles, default=100, help="samples of q (proposal, is)")
    p.add_argument("--beam-width", type=argtypes.int_range(1, 1024), default=16, help="hypotheses per image (beam)")
    p.add_argument("--prior", help="infer under this style's text prior instead of the checkpoint's (everything "
                                   "else stays the checkpoint's); beam corrects q by p(s) / p_train(s)")
    p.add_argument("--bandwidth", type=bandwidth, default=None,
                   help="ABC kernel bandwidth (is; default: calibrated per style)")
    p.add_argument("--style", help="refuse a checkpoint of any other style")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen the nuisance prior that importance sampling re-renders with")
    p.add_argument("--shifts", type=shifts, default=1,
                   help="shift ensemble: average the posteriors of this many copies of each image moved by a "
                        "pixel or two (proposal, beam; costs as many network runs)")


def inference_args(args: argparse.Namespace, trained) -> dict:
    """The keyword arguments of `trainer.infer.infer` that the shared flags set."""
    if args.shifts > 1 and args.method == "is":
        raise UserError("--shifts applies to --method proposal and beam: importance sampling compares the image "
                        "itself with its renders")
    return {"method": args.method, "particles": args.particles, "bandwidth": args.bandwidth,
            "beam_width": args.beam_width, "train_style": trained, "shifts": args.shifts}


def register(subparsers) -> None:
    i = subparsers.add_parser("infer", help="posterior over strings for captcha images")
    i.add_argument("images", nargs="+", help="image files")
    add_inference_args(i)
    i.add_argument("--temperature", type=argtypes.positive_float, default=1.0,
                   help="calibration temperature for the string probabilities (`eval` fits one: report.json)")
    i.add_argument("--top", type=argtypes.positive_int, default=3, help="strings to list per image")
    i.add_argument("--json", action="store_true", help="JSON lines instead of text")
    i.set_defaults(func=run)


def model_and_style(checkpoint_arg: str, style_name: str | None, prior_scale: float = 1.0,
                    prior: str | None = None):
    """The network, the style to infer under and the style it was trained on. `prior` swaps in another
    style's text prior; `prior_scale` widens the nuisance prior importance sampling re-renders with."""
    from synthstream.style import load_style
    from trainer.checkpoint import load, resolve
    from trainer.model import model_from_checkpoint

    model, trained = model_from_checkpoint(load(resolve(checkpoint_arg)))
    if style_name and load_style(style_name).name != trained.name:
        raise UserError(f"--checkpoint {checkpoint_arg!r} is a model of style {trained.name!r}, not {style_name!r}")
    style = trained
    if prior:
        from trainer.infer import swap_text_prior

        style = swap_text_prior(trained, load_style(prior))
    return model, style.widened(prior_scale), trained


def run(args: argparse.Namespace) -> None:
    """Prints one line (or JSON object) per image; bad images get one error line each on stderr."""
    import json

    import numpy as np

    from trainer.images import load_paths
    from trainer.infer import infer as run_infer

    model, style, trained = model_and_style(args.checkpoint, args.style, args.prior_scale, args.prior)
    kwargs = inference_args(args, trained)
    items = load_paths(args.images, style)
    for it in items:
        if it.image is None:
            print(f"synthstream: error: {it.path}: {it.note}", file=sys.stderr)
    good = [it for it in items if it.image is not None]
    if not good:
        raise UserError("no image could be read")
    posteriors = run_infer(model, style, np.stack([it.image for it in good]), seed=args.seed,
                           temperature=args.temperature, **kwargs)
    for it, p in zip(good, posteriors):
        if args.json:
            print(json.dumps({"path": str(it.path), "map": p.map, "p_map": p.map_prob,
                              "top": [{"string": t, "p": q} for t, q in p.top(args.top)], "ess": p.ess,
                              "particles": p.particles, "note": it.note}))
        else:
            top = "  ".join(f"{t} {q:.3f}" for t, q in p.top(args.top))
            ess = f"  ESS {p.ess:.1f}/{p.particles}" if p.ess is not None else ""
            if not p.strings:
                top = "(no particle had a positive weight)"
            note = f"  ({it.note})" if it.note else ""
            print(f"{it.path}: {p.map}  p={p.map_prob:.3f}  top: {top}{ess}{note}")
