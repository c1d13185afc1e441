"""The reader's cost per captcha: the beam alone, and the shift ensemble batched (all shifted copies in one
decoder call, what `Reader` does) against one decoder call per shift (the way it ran before), in one run.

    python -m synthstream.bench.reader --checkpoint wikipedia [-n 256] [--shifts 9] [--repeats 3] [--json F]
                                       [--baseline REV] [--threads N]

Images: synthetic captchas of the style the model reads under (its recipe's prior), from a key domain of their
own. Each configuration runs `--repeats` times, interleaved; the table gives the median and the best wall ms
per captcha, the median CPU ms (user + system: less moved by other processes on a shared machine), and the
strings read (the batched and the per-shift ensembles must agree). `--baseline REV` adds the beam search of
git revision REV (its trainer/decode.py, swapped in for the current one) for the beam alone and the batched
ensemble, in the same interleaved run: each configuration's speed-up over it, and whether the readings agree
(same strings, probabilities within 1e-5).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import time
import types
from pathlib import Path

import numpy as np

from synthstream.bench.report import machine, module_main, print_table, write_json

BENCH_SEED = 515151
ROOT = Path(__file__).resolve().parents[2]
PROB_TOL = 1e-5


def baseline_decode(rev: str):
    """trainer/decode.py as of git revision `rev`, as a module of its own (UserError if git cannot show it)."""
    from synthstream.errors import UserError

    try:
        source = subprocess.run(["git", "show", f"{rev}:trainer/decode.py"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise UserError(f"--baseline {rev}: git cannot show its trainer/decode.py "
                        f"({getattr(e, 'stderr', '') or e})".strip()) from None
    module = types.ModuleType(f"baseline_decode_{rev}")
    exec(compile(source, f"{rev}:trainer/decode.py", "exec"), module.__dict__)
    return module


@contextlib.contextmanager
def swapped_beam(module):
    """The beam search of `module` in place of trainer.decode's (what trainer/infer.py calls) for a while."""
    import trainer.decode

    current = trainer.decode.beam_search
    trainer.decode.beam_search = module.beam_search
    try:
        yield
    finally:
        trainer.decode.beam_search = current


def _with(module, call, images: np.ndarray) -> list:
    """`call(images)` with the beam search of `module`."""
    with swapped_beam(module):
        return call(images)


def same_readings(a: list, b: list) -> bool:
    """Per image the same most probable string, and every string's probability within PROB_TOL (0 where a
    posterior lacks it)."""
    def close(p, q) -> bool:
        pa, qa = dict(zip(p.strings, p.probs)), dict(zip(q.strings, q.probs))
        return p.map == q.map and all(abs(pa.get(s, 0.0) - qa.get(s, 0.0)) <= PROB_TOL for s in pa.keys() | qa)

    return len(a) == len(b) and all(close(p, q) for p, q in zip(a, b))


def _per_shift(reader, images: np.ndarray, shifts: int) -> list:
    """The shift ensemble as it ran before: one decoder call per shifted copy, then the mixture."""
    from trainer.infer import SHIFTS, decode_posteriors, mixture, shifted

    r = reader.recipe
    runs = [decode_posteriors(reader.model, reader.style, shifted(images, dy, dx), r.decoder, r.decoder_options(),
                              seed=k, train_style=reader.trained) for k, (dy, dx) in enumerate(SHIFTS[:shifts])]
    return [mixture(list(p)) for p in zip(*runs)]


def _time(call, images: np.ndarray) -> tuple[float, float, list]:
    """Wall and CPU (user + system) ms per captcha of one call, and its posteriors."""
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    w0, c0 = time.perf_counter(), cpu()
    posts = call(images)
    return 1000 * (time.perf_counter() - w0) / len(images), 1000 * (cpu() - c0) / len(images), posts


def run(checkpoint: str, n: int, shifts: int, repeats: int, batch: int, json_path: str | None,
        baseline: str | None = None, threads: int | None = None) -> dict:
    import os

    import torch

    from synthstream.generate import render
    from synthstream.trace import sample_traces
    from trainer.reader import load_reader

    single = load_reader(checkpoint, method="beam", shifts=1)
    ensemble = load_reader(checkpoint, method="beam", shifts=shifts)
    for r in (single, ensemble):
        r.batch_size = batch
    style = single.style
    traces = sample_traces(style, BENCH_SEED, 0, n)
    images, truths = render(style, traces), traces.texts()
    if threads:                                  # after rendering: numba's threading layer may reset torch's
        torch.set_num_threads(threads)

    def batched_per_shift(x):
        out = []
        for i in range(0, len(x), batch):
            out += _per_shift(ensemble, x[i:i + batch], shifts)
        return out

    one, many = "beam, 1 shift", f"beam, {shifts} shifts, batched (Reader)"
    configs = {one: single.posteriors, f"beam, {shifts} shifts, one call per shift (before)": batched_per_shift,
               many: ensemble.posteriors}
    base_of = {}
    if baseline:
        old = baseline_decode(baseline)
        for name, reader in ((one, single), (many, ensemble)):
            base_of[name] = f"{name} [baseline {baseline}]"
            configs[base_of[name]] = lambda x, reader=reader: _with(old, reader.posteriors, x)
    wall: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    posts: dict[str, list] = {}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, call in configs.items():
                w, c, posts[name] = _time(call, images)
                wall[name].append(w)
                cpu[name].append(c)
    rows, runs = [], []
    for name in configs:
        exact = float(np.mean([p.map == t for p, t in zip(posts[name], truths)]))
        med, best, med_cpu = float(np.median(wall[name])), float(min(wall[name])), float(np.median(cpu[name]))
        entry = {"config": name, "ms_per_captcha_median": med, "ms_per_captcha_best": best,
                 "cpu_ms_per_captcha_median": med_cpu, "exact": exact, "ms_per_captcha": wall[name],
                 "cpu_ms_per_captcha": cpu[name]}
        speedup = ""
        if name in base_of:
            b = base_of[name]
            entry["speedup_over_baseline"] = float(np.median(np.array(wall[b]) / np.array(wall[name])))
            entry["cpu_speedup_over_baseline"] = float(np.median(np.array(cpu[b]) / np.array(cpu[name])))
            entry["reads_as_baseline"] = same_readings(posts[name], posts[b])
            speedup = f"{entry['speedup_over_baseline']:.2f} (cpu {entry['cpu_speedup_over_baseline']:.2f})"
        runs.append(entry)
        rows.append([name, f"{med:.2f}", f"{best:.2f}", f"{med_cpu:.2f}", speedup, f"{exact:.3f}"])
    names = list(configs)
    agree = [p.map for p in posts[names[1]]] == [p.map for p in posts[names[2]]]
    print_table(["reader", "ms/captcha (median)", "best", "cpu ms (median)", "x baseline (median)",
                 "exact (synthetic)"], rows)
    load = os.getloadavg()
    print(f"batched and per-shift ensembles read the same strings: {agree}; torch threads {torch.get_num_threads()}; "
          f"load average {load[0]:.1f}")
    if base_of:
        print("reads as the baseline (same MAP, probabilities within "
              f"{PROB_TOL:g}): {all(r.get('reads_as_baseline', True) for r in runs)}")
    out = {"checkpoint": checkpoint, "style": style.name, "n": n, "shifts": shifts, "batch": batch,
           "repeats": repeats, "baseline": baseline, "runs": runs, "ensembles_agree": agree,
           "torch_threads": torch.get_num_threads(), "load_average": list(load), "machine": machine()}
    write_json(out, json_path)
    return out


def main(argv: list[str] | None = None) -> int:
    from synthstream import argtypes

    parser = argparse.ArgumentParser(prog="python -m synthstream.bench.reader", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="wikipedia")
    parser.add_argument("-n", type=argtypes.int_range(1, 100_000), default=256)
    parser.add_argument("--shifts", type=argtypes.int_range(2, 9), default=9)
    parser.add_argument("--repeats", type=argtypes.int_range(1, 100), default=3)
    parser.add_argument("--batch", type=argtypes.int_range(1, 4096), default=64)
    parser.add_argument("--json", default=None)
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time the beam search of this git revision (e.g. main), interleaved")
    parser.add_argument("--threads", type=argtypes.int_range(1, 256), default=None,
                        help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    return module_main(parser.prog, lambda: run(args.checkpoint, args.n, args.shifts, args.repeats, args.batch,
                                                args.json, args.baseline, args.threads))


if __name__ == "__main__":
    raise SystemExit(main())
