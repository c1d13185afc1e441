"""`synthstream infer`: the posterior over strings for captcha images."""

from __future__ import annotations

import argparse
import sys

from synthstream import argtypes
from synthstream.errors import UserError


def register(subparsers) -> None:
    i = subparsers.add_parser("infer", help="posterior over strings for captcha images")
    i.add_argument("images", nargs="+", help="image files")
    i.add_argument("--checkpoint", required=True,
                   help="a checkpoint.pt (or its run folder), or a shipped model: wikipedia, facebook")
    i.add_argument("--method", choices=("proposal", "is"), default="proposal",
                   help="proposal: q alone (default; the better one on the real captchas, see README); "
                        "is: importance sampling against the style")
    i.add_argument("--particles", type=argtypes.positive_int, default=100)
    i.add_argument("--bandwidth", type=argtypes.positive_float, default=None,
                   help="ABC kernel bandwidth (is; default: calibrated per style)")
    i.add_argument("--top", type=argtypes.positive_int, default=3, help="strings to list per image")
    i.add_argument("--style", help="refuse a checkpoint of any other style")
    i.add_argument("--seed", type=argtypes.seed, default=0)
    i.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen the nuisance prior that importance sampling re-renders with")
    i.add_argument("--json", action="store_true", help="JSON lines instead of text")
    i.set_defaults(func=run)


def model_and_style(checkpoint_arg: str, style_name: str | None, prior_scale: float = 1.0):
    """The network and its style; `prior_scale` widens the nuisance prior importance sampling re-renders with."""
    from synthstream.style import load_style
    from trainer.checkpoint import load, resolve
    from trainer.model import model_from_checkpoint

    model, style = model_from_checkpoint(load(resolve(checkpoint_arg)))
    if style_name and load_style(style_name).name != style.name:
        raise UserError(f"--checkpoint {checkpoint_arg!r} is a model of style {style.name!r}, not {style_name!r}")
    return model, style.widened(prior_scale)


def run(args: argparse.Namespace) -> None:
    """Prints one line (or JSON object) per image; bad images get one error line each on stderr."""
    import json

    import numpy as np

    from trainer.images import load_paths
    from trainer.infer import infer as run_infer

    model, style = model_and_style(args.checkpoint, args.style, args.prior_scale)
    items = load_paths(args.images, style)
    for it in items:
        if it.image is None:
            print(f"synthstream: error: {it.path}: {it.note}", file=sys.stderr)
    good = [it for it in items if it.image is not None]
    if not good:
        raise UserError("no image could be read")
    posteriors = run_infer(model, style, np.stack([it.image for it in good]), method=args.method,
                           particles=args.particles, bandwidth=args.bandwidth, seed=args.seed)
    for it, p in zip(good, posteriors):
        if args.json:
            print(json.dumps({"path": str(it.path), "map": p.map, "p_map": p.map_prob,
                              "top": [{"string": t, "p": q} for t, q in p.top(args.top)], "ess": p.ess,
                              "particles": p.particles, "note": it.note}))
        else:
            top = "  ".join(f"{t} {q:.3f}" for t, q in p.top(args.top))
            ess = f"  ESS {p.ess:.1f}/{p.particles}" if p.ess is not None else ""
            note = f"  ({it.note})" if it.note else ""
            print(f"{it.path}: {p.map}  p={p.map_prob:.3f}  top: {top}{ess}{note}")
