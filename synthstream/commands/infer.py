"""`synthstream infer`: posterior over strings for captcha images, a thin wrapper over the reader API
(trainer/reader.py). The model reads with the recipe its checkpoint stores; each flag overrides one part."""

from __future__ import annotations

import argparse
import sys

from synthstream import argtypes
from synthstream.errors import UserError


def particles(text: str) -> int:
    """--particles' type (the proposal decoder's), for the benchmarks' flags."""
    from trainer.decoders.proposal import _particles

    return _particles(text)


def shifts(text: str) -> int:
    from trainer.infer import SHIFTS

    return argtypes.int_range(1, len(SHIFTS))(text)


def add_inference_args(p) -> None:
    """The flags `infer` and `eval` share: the checkpoint, and one flag per recipe part (default: the
    checkpoint's recipe, else beam search under the model's own text prior)."""
    from trainer.decoders import all_options, get, names

    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint.pt (or its run folder), or a shipped model: wikipedia, facebook, lepture")
    p.add_argument("--method", choices=names(), default=None,
                   help="the decoder (default: the checkpoint's recipe, else beam): " +
                        "; ".join(f"{n}: {get(n).help}" for n in names()))
    for name, f in all_options().items():
        p.add_argument(f"--{name.replace('_', '-')}", type=f.metadata.get("type"), default=None,
                       help=f"{f.metadata.get('help', name)} (default: the recipe's, else {f.default})")
    p.add_argument("--prior", help="read under this style's text prior (everything else stays the checkpoint's; "
                                   "beam corrects q by p(s) / p_train(s)); default: the recipe's, else the "
                                   "model's own")
    p.add_argument("--shifts", type=shifts, default=None,
                   help="shift ensemble: average the posteriors of this many copies of each image moved by a "
                        "pixel or two (proposal, beam; costs as many network runs); default: the recipe's, else 1")
    p.add_argument("--style", help="refuse a checkpoint of any other style")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen the nuisance prior that importance sampling re-renders with")


def recipe_overrides(args: argparse.Namespace) -> dict:
    """The recipe parts the flags set (None: not given)."""
    from trainer.decoders import all_options

    parts = {"method": args.method, "prior": args.prior, "shifts": args.shifts,
             "temperature": getattr(args, "temperature", None)}
    parts.update({name: getattr(args, name) for name in all_options()})
    return parts


def load(args: argparse.Namespace):
    """The reader the flags ask for (one UserError line for a bad checkpoint, prior or combination)."""
    from synthstream.style import load_style
    from trainer.reader import load_reader

    try:
        reader = load_reader(args.checkpoint, prior_scale=args.prior_scale, how="flag", **recipe_overrides(args))
    except UserError as e:
        raise UserError(str(e).replace("recipe: ", "")) from None
    from trainer.decoders import all_options, get, names, option_names

    used = option_names(reader.recipe.decoder)
    for name in all_options():
        if getattr(args, name) is not None and name not in used:
            users = [n for n in names() if name in option_names(get(n))]
            raise UserError(f"--{name.replace('_', '-')} applies to --method {', '.join(users)}; this reading "
                            f"uses {reader.recipe.method} ({reader.recipe.sources.get('method', 'default')})")
    if args.style and load_style(args.style).name != reader.trained.name:
        raise UserError(f"--checkpoint {args.checkpoint!r} is a model of style {reader.trained.name!r}, not "
                        f"{args.style!r}")
    return reader


def register(subparsers) -> None:
    i = subparsers.add_parser("infer", help="posterior over strings for captcha images")
    i.add_argument("images", nargs="+", help="image files")
    add_inference_args(i)
    i.add_argument("--temperature", type=argtypes.positive_float, default=None,
                   help="calibration temperature for the string probabilities (default: the recipe's, else 1)")
    i.add_argument("--top", type=argtypes.positive_int, default=3, help="strings to list per image")
    i.add_argument("--json", action="store_true", help="JSON lines instead of text")
    i.set_defaults(func=run)


def shown(path) -> str:
    """A file name on one line: names with control characters (a newline...) or quotes come JSON-quoted."""
    import json

    text = str(path)
    return text if text.isprintable() and '"' not in text else json.dumps(text)


def run(args: argparse.Namespace) -> None:
    """Prints one line (or JSON object) per image; bad images get one error line each on stderr."""
    import json

    from trainer.images import load_paths

    reader = load(args)
    reader.top_k = args.top
    items = load_paths(args.images, reader.style)
    for it in items:
        if it.image is None:
            print(f"synthstream: error: {shown(it.path)}: {it.note}", file=sys.stderr)
    good = [it for it in items if it.image is not None]
    if not good:
        raise UserError("no image could be read")
    readings = reader.read([it.image for it in good], seed=args.seed)
    about = reader.describe()
    if not args.json:
        print(f"# {about['model']} (trained on {about['trained_on']}, read under the {about['prior']} prior): "
              f"{reader.recipe.describe()} [{reader.recipe.where()}]")
    for it, r in zip(good, readings):
        note = "; ".join(n for n in (it.note, r.note) if n)
        if args.json:
            print(json.dumps({"path": str(it.path), "map": r.text, "p_map": r.probability,
                              "top": [{"string": t, "p": q} for t, q in r.top], "ess": r.ess,
                              "particles": r.particles, "mismatch": r.mismatch, "note": note, **about}))
        else:
            top = "  ".join(f"{t} {q:.3f}" for t, q in r.top)
            ess = f"  ESS {r.ess:.1f}/{r.particles}" if r.ess is not None else ""
            if not r.top:
                top = "(no particle had a positive weight)"
            print(f"{shown(it.path)}: {r.text}  p={r.probability:.3f}  top: {top}{ess}"
                  f"{f'  ({note})' if note else ''}")
