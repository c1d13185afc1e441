"""Bodies of the small CLI commands (kept apart from argument parsing)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from synthstream.errors import UserError
from synthstream.generate import generate
from synthstream.render.jit import set_threads
from synthstream.style import load_style

MAX_GRID_TILES = 1024


def writable_output(path: str, suffixes: tuple[str, ...]) -> Path:
    """Check an output path before doing any work: known suffix, existing writable directory."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UserError(f"--out {path!r}: expected a file ending in {' or '.join(suffixes)}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--out {path!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"--out {path!r}: not writable")
    return out


def atomic_write(out: Path, write) -> None:
    """write(tmp_path) then rename over `out`, so a failed write never leaves half a file."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=out.suffix)
        os.close(fd)
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)       # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"cannot write {str(out)!r}: {e.strerror}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def sample(args: argparse.Namespace) -> None:
    out = writable_output(args.out, (".png", ".npz"))
    if out.suffix.lower() == ".png" and args.n > MAX_GRID_TILES:
        raise UserError(f"-n {args.n}: a PNG grid holds at most {MAX_GRID_TILES} tiles; use an .npz for more")
    style = load_style(args.style)
    if args.threads:
        set_threads(args.threads)
    images, traces = generate(style, args.seed, args.first_index, args.n)
    texts = traces.texts(style)
    if out.suffix.lower() == ".npz":
        arrays = {f: getattr(traces, f) for f in traces.__dataclass_fields__}
        atomic_write(out, lambda tmp: np.savez_compressed(
            tmp, images=images, texts=np.array(texts), log_prior=traces.log_prior(style),
            style=np.array(style.name), alphabet=np.array(style.alphabet), seed=np.uint64(args.seed),
            fonts=np.array([f.file for f in style.fonts]), **arrays))
    else:
        from synthstream.grid import load_real, make_grid
        real = load_real(args.real, (args.n + args.columns - 1) // args.columns) if args.real else []
        sheet = make_grid(list(zip(images, texts)), args.columns, real)
        atomic_write(out, lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"wrote {args.n} {style.name} samples (seed {args.seed}) to {out}")


def train(args: argparse.Namespace) -> None:
    from trainer.run import run
    from trainer.train import TrainConfig

    config = TrainConfig(style=args.style, preset=args.preset, workers=args.workers, generators=args.generators,
                         generator_cpus=args.generator_cpus, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, val_every=min(args.val_every, args.steps),
                         val_size=args.val_size, max_failures=args.max_failures, use_gpu=args.gpu,
                         compile=args.compile)
    load_style(args.style)
    report = run(config, args.out, address=args.address, resume=args.resume, progress=not args.no_progress)
    final = report["final"]
    print(f"{report['style']} / {report['preset']}: {report['steps']} steps in {report['wall_s']:.0f} s; "
          f"validation whole-string accuracy {final.get('val/string_accuracy', float('nan')):.3f}, "
          f"per-character {final.get('val/acc/char', float('nan')):.3f}; "
          f"{final.get('images_per_s', 0):.0f} training images/s, data wait "
          f"{100 * final.get('data_wait_share', 0):.1f}% of step time")
    print(f"wrote {args.out}/report.json, curve.png, checkpoint.pt")
