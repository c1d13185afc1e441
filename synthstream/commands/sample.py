"""`synthstream sample`: render samples to a labelled grid PNG, a raw .npz, or a labelled folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthstream import argtypes
from synthstream.errors import UserError
from synthstream.labelled import write_labelled_folder
from synthstream.limits import MAX_GRID_TILES, MAX_INDEX
from synthstream.output import atomic_write, empty_output_dir, writable_output


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="render samples to a labelled grid PNG or a raw .npz")
    p.add_argument("--style", default="wikipedia", help="built-in style name or path to a style .toml")
    p.add_argument("-n", type=argtypes.sample_count, default=16, help="number of samples")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument("--first-index", type=argtypes.index, default=0, help="global index of the first sample")
    p.add_argument("--out", required=True, help="grid.png (labels under each tile), batch.npz (arrays), or a "
                   "folder DIR/ (one PNG per sample + labels.csv, for `synthstream eval`)")
    p.add_argument("--columns", type=argtypes.positive_int, default=4, help="tiles per row in a PNG grid")
    p.add_argument("--real", help="directory of real captchas (label = file name) to show beside synthetic")
    p.add_argument("--threads", type=argtypes.positive_int, help="Numba threads (default: all cores)")
    p.add_argument("--prior-scale", type=argtypes.positive_float, default=1.0,
                   help="widen the nuisance prior (see train)")
    p.set_defaults(func=run)


NPZ_CHUNK = 8192        # samples rendered per step when writing an .npz


def _write_npz(path: str, style, seed: int, first_index: int, n: int) -> None:
    """An .npz of n samples: `images` uint8 [n, H, W] streamed into the archive chunk by chunk (bounded memory),
    then the traces (class indices per address, keys, indices, texts, log prior) and the style's name."""
    import zipfile

    import numpy as np

    from synthstream.generate import generate
    from synthstream.trace import sample_traces

    traces = sample_traces(style, seed, first_index, n)        # latents only: small next to the pixels
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        with zf.open("images.npy", "w", force_zip64=True) as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": (n, style.height, style.width)}
            np.lib.format.write_array_header_1_0(f, header)
            for start in range(0, n, NPZ_CHUNK):
                images, _ = generate(style, seed, first_index + start, min(NPZ_CHUNK, n - start))
                f.write(images.tobytes())
        codec = traces.codec
        arrays = {"keys": traces.keys, "indices": traces.indices, "classes": traces.classes,
                  **{a: traces.value(a) for a in codec.addresses[:codec.char_start]}, "chars": traces.chars,
                  "texts": np.array(traces.texts()), "log_prior": traces.log_prior(), "style": np.array(style.name),
                  "alphabet": np.array(style.alphabet), "seed": np.uint64(seed),
                  "fonts": np.array([f.file for f in style.fonts])}
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def _sample_destination(path: str) -> tuple[Path, str]:
    """Check --out before any rendering: an empty (or new) folder, or a writable .png/.npz file; and its kind
    ("folder", ".png" or ".npz"). Nothing is made here: a refused or failed run leaves nothing behind."""
    if not (path.endswith("/") or Path(path).is_dir()):
        out = writable_output(path, (".png", ".npz"))
        return out, out.suffix.lower()
    return empty_output_dir(path), "folder"


def run(args: argparse.Namespace) -> None:

    from synthstream.generate import generate
    from synthstream.render.jit import set_threads
    from synthstream.style import load_style

    out, kind = _sample_destination(args.out)
    if kind == ".png" and args.n > MAX_GRID_TILES:
        raise UserError(f"-n {args.n}: a PNG grid holds at most {MAX_GRID_TILES} tiles; use an .npz for more")
    if args.first_index + args.n > MAX_INDEX:
        raise UserError(f"--first-index {args.first_index} with -n {args.n}: the last index would pass 2**63 - 1; "
                        f"use --first-index <= {MAX_INDEX - args.n}")
    style = load_style(args.style).widened(args.prior_scale)
    if args.threads:
        set_threads(args.threads)
    if kind == ".npz":                      # any size: rendered and written in chunks, never all in memory
        atomic_write(out, lambda tmp: _write_npz(tmp, style, args.seed, args.first_index, args.n))
        print(f"wrote {args.n} {style.name} samples (seed {args.seed}) to {out}")
        return
    images, traces = generate(style, args.seed, args.first_index, args.n)
    texts = traces.texts()
    if kind == "folder":
        write_labelled_folder(out, images, texts)
    else:
        from synthstream.grid import load_real, make_grid
        from trainer.images import background_level
        real = load_real(args.real, (args.n + args.columns - 1) // args.columns,
                         background=background_level(style)) if args.real else []
        sheet = make_grid(list(zip(images, texts)), args.columns, real)
        atomic_write(out, lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"wrote {args.n} {style.name} samples (seed {args.seed}) to {out}")
