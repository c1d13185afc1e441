"""Bodies of the small CLI commands (kept apart from argument parsing)."""

from __future__ import annotations

import argparse
import os
import sys
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


def _write_folder(out: Path, images: np.ndarray, texts: list[str]) -> None:
    """A labelled folder: 000000.png, ... and labels.csv (file,label), as `synthstream eval --data` reads."""
    from PIL import Image

    rows = ["file,label"]
    for i, (image, text) in enumerate(zip(images, texts)):
        Image.fromarray(image).save(out / f"{i:06d}.png")
        rows.append(f"{i:06d}.png,{text}")
    (out / "labels.csv").write_text("\n".join(rows) + "\n")


def _sample_destination(path: str) -> Path:
    """Check --out before any rendering: an empty (or new) folder, or a writable .png/.npz file."""
    if not (path.endswith("/") or Path(path).is_dir()):
        return writable_output(path, (".png", ".npz"))
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {path!r}: {e.strerror}") from None
    if any(out.iterdir()):
        raise UserError(f"--out {path!r} is a folder that is not empty")
    return out


def sample(args: argparse.Namespace) -> None:
    out = _sample_destination(args.out)
    kind = "folder" if out.is_dir() else out.suffix.lower()
    if kind == ".png" and args.n > MAX_GRID_TILES:
        raise UserError(f"-n {args.n}: a PNG grid holds at most {MAX_GRID_TILES} tiles; use an .npz for more")
    style = load_style(args.style).widened(args.prior_scale)
    if args.threads:
        set_threads(args.threads)
    images, traces = generate(style, args.seed, args.first_index, args.n)
    texts = traces.texts(style)
    if kind == "folder":
        try:
            _write_folder(out, images, texts)
        except OSError as e:
            raise UserError(f"--out {args.out!r}: {e.strerror}") from None
    elif kind == ".npz":
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
                         prior_scale=args.prior_scale,
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


def _model_and_style(checkpoint_arg: str, style_name: str | None, prior_scale: float = 1.0):
    """The network and its style; `prior_scale` widens the nuisance prior importance sampling re-renders with."""
    from trainer.checkpoint import load, resolve
    from trainer.model import model_from_checkpoint

    model, style = model_from_checkpoint(load(resolve(checkpoint_arg)))
    if style_name and load_style(style_name).name != style.name:
        raise UserError(f"--checkpoint {checkpoint_arg!r} is a model of style {style.name!r}, not {style_name!r}")
    return model, style.widened(prior_scale)


def infer(args: argparse.Namespace) -> int:
    """Prints one line (or JSON object) per image; bad images get one error line each on stderr."""
    import json

    from trainer.images import load_paths
    from trainer.infer import infer as run_infer

    model, style = _model_and_style(args.checkpoint, args.style, args.prior_scale)
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
    return 0


def evaluate(args: argparse.Namespace) -> None:
    from trainer.evaluate import evaluate as run_eval, write_report
    from trainer.images import load_labelled_dir

    model, style = _model_and_style(args.checkpoint, args.style, args.prior_scale)
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


def export(args: argparse.Namespace) -> None:
    from trainer.checkpoint import export as slim, resolve

    out = writable_output(args.out, (".pt",))
    state = slim(resolve(args.checkpoint), out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; style {state['style']['name']}, step {state['step']})")
