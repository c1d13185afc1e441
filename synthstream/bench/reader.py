"""The reader's cost per captcha: the beam alone, and the shift ensemble batched (all shifted copies in one
decoder call, what `Reader` does) against one decoder call per shift (the way it ran before), in one run.

    python -m synthstream.bench.reader --checkpoint wikipedia [-n 256] [--shifts 9] [--repeats 3] [--json F]

Images: synthetic captchas of the style the model reads under (its recipe's prior), from a key domain of their
own. Each configuration runs `--repeats` times, interleaved; the table gives the median and the best ms per
captcha, and the strings read (the batched and the per-shift ensembles must agree).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from synthstream.bench.report import machine, module_main, print_table, write_json

BENCH_SEED = 515151


def _per_shift(reader, images: np.ndarray, shifts: int) -> list:
    """The shift ensemble as it ran before: one decoder call per shifted copy, then the mixture."""
    from trainer.infer import SHIFTS, decode_posteriors, mixture, shifted

    r = reader.recipe
    runs = [decode_posteriors(reader.model, reader.style, shifted(images, dy, dx), r.decoder, r.decoder_options(),
                              seed=k, train_style=reader.trained) for k, (dy, dx) in enumerate(SHIFTS[:shifts])]
    return [mixture(list(p)) for p in zip(*runs)]


def run(checkpoint: str, n: int, shifts: int, repeats: int, batch: int, json_path: str | None) -> dict:
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

    def batched_per_shift(x):
        out = []
        for i in range(0, len(x), batch):
            out += _per_shift(ensemble, x[i:i + batch], shifts)
        return out

    configs = {"beam, 1 shift": lambda x: single.posteriors(x),
               f"beam, {shifts} shifts, one call per shift (before)": batched_per_shift,
               f"beam, {shifts} shifts, batched (Reader)": lambda x: ensemble.posteriors(x)}
    times: dict[str, list[float]] = {k: [] for k in configs}
    reads: dict[str, list[str]] = {}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, call in configs.items():
                t0 = time.perf_counter()
                posts = call(images)
                times[name].append(1000 * (time.perf_counter() - t0) / n)
                reads[name] = [p.map for p in posts]
    rows, runs = [], []
    for name in configs:
        exact = float(np.mean([a == b for a, b in zip(reads[name], truths)]))
        med, best = float(np.median(times[name])), float(min(times[name]))
        runs.append({"config": name, "ms_per_captcha_median": med, "ms_per_captcha_best": best, "exact": exact,
                     "ms_per_captcha": times[name]})
        rows.append([name, f"{med:.2f}", f"{best:.2f}", f"{exact:.3f}"])
    names = list(configs)
    agree = reads[names[1]] == reads[names[2]]
    print_table(["reader", "ms/captcha (median)", "best", "exact (synthetic)"], rows)
    print(f"batched and per-shift ensembles read the same strings: {agree}; torch threads {torch.get_num_threads()}")
    out = {"checkpoint": checkpoint, "style": style.name, "n": n, "shifts": shifts, "batch": batch,
           "repeats": repeats, "runs": runs, "ensembles_agree": agree, "torch_threads": torch.get_num_threads(),
           "machine": machine()}
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
    args = parser.parse_args(argv)
    return module_main(parser.prog, lambda: run(args.checkpoint, args.n, args.shifts, args.repeats, args.batch,
                                                args.json))


if __name__ == "__main__":
    raise SystemExit(main())
