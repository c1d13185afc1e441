"""`synthstream export`: a trained reader for shipping, or for use outside this package (trainer/export.py)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from synthstream.output import writable_output

FORMAT_HELP = ("pt: the slim synthstream checkpoint (float16, load_reader reads it); safetensors: float32 weights + "
               "metadata; onnx, torchscript: the greedy image-to-string reader as one graph (docs/serving.md)")


def register(subparsers) -> None:
    x = subparsers.add_parser("export", help="a reader for shipping: slim checkpoint, safetensors, ONNX or "
                                             "TorchScript (with the recipe and alphabet as metadata)")
    x.add_argument("--checkpoint", required=True, help="a checkpoint.pt (or its run folder), or a shipped model")
    x.add_argument("--out", required=True, help="destination file (.pt, .safetensors or .onnx, by --format)")
    x.add_argument("--format", choices=("pt", "safetensors", "onnx", "torchscript"), default="pt", help=FORMAT_HELP)
    x.add_argument("--recipe", metavar="SPEC", help="fit and store a reading recipe first, e.g. "
                                                    "method=beam,prior=wikipedia,shifts=9,calibrate=2000 "
                                                    "(temperature fitted on synthetic captchas; docs/reader.md)")
    x.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from trainer.export import FORMATS, export
    from trainer.reader import load_reader

    out = writable_output(args.out, (FORMATS[args.format],))
    with tempfile.TemporaryDirectory() as tmp:
        source = args.checkpoint
        if args.recipe is not None:               # fitted into a copy: the user's checkpoint stays as it is
            from trainer.checkpoint import resolve
            from trainer.recipe import fit_into

            source = Path(tmp) / "checkpoint.pt"
            shutil.copyfile(resolve(args.checkpoint), source)
            fit_into(source, args.recipe)
        reader = load_reader(source)
        meta = export(reader, args.format, out, checkpoint=source)
    print(f"wrote {out} ({args.format}, {out.stat().st_size / 1e6:.1f} MB; style {meta['style']['name']}, "
          f"alphabet {len(meta['style']['alphabet'])} characters, recipe {meta['recipe']['method']})")
