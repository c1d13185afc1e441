"""Generator throughput: captchas/s (and per core) for each style vs the `captcha` package's ImageCaptcha.

Each style renders batches of `batch` samples on `threads` Numba threads for `seconds`, after a warm-up
that pays the JIT; the figure is the median over repeats. The baseline, PyPI `captcha`'s ImageCaptcha
(Pillow, one thread, the usual way people make synthetic captchas), is timed in the same run.
"""

from __future__ import annotations

import statistics
import time

from synthstream.bench.report import machine, print_table, write_json
from synthstream.generate import generate
from synthstream.render.jit import get_threads, set_threads
from synthstream.style import builtin_styles, load_style


def _median_rate(fn, batch: int, seconds: float, repeats: int = 5) -> float:
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / repeats:
            fn()
            n += batch
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_style(name: str, threads: int, batch: int, seconds: float) -> dict:
    style = load_style(name)
    t0 = time.perf_counter()
    generate(style, 0, 0, 8)                        # JIT (or cache load) + glyph atlas
    first_call_s = time.perf_counter() - t0
    counter = iter(range(10**12))
    rate = _median_rate(lambda: generate(style, 1, next(counter) * batch, batch), batch, seconds)
    return {"images_per_s": rate, "images_per_s_per_core": rate / threads, "threads": threads,
            "batch": batch, "first_call_s": first_call_s, "height": style.height, "width": style.width}


def bench_baseline(seconds: float) -> dict:
    from captcha.image import ImageCaptcha

    gen = ImageCaptcha()
    gen.generate_image("AB12")
    rate = _median_rate(lambda: gen.generate_image("K7QZ"), 1, seconds)
    return {"name": "captcha.image.ImageCaptcha (PyPI captcha, 160x60, 1 thread)", "images_per_s_per_core": rate}


def run(styles: list[str] | None, threads: int | None, batch: int, seconds: float, json_path: str | None) -> dict:
    threads = set_threads(threads) if threads else get_threads()
    names = styles or builtin_styles()
    for n in names:
        load_style(n)  # fail fast on a bad name before timing anything
    results = {n: bench_style(n, threads, batch, seconds) for n in names}
    baseline = bench_baseline(min(seconds, 5.0))
    rows = [[n, r["threads"], r["images_per_s"], r["images_per_s_per_core"],
             r["images_per_s_per_core"] / baseline["images_per_s_per_core"], r["first_call_s"]]
            for n, r in results.items()]
    rows.append(["baseline: ImageCaptcha", 1, baseline["images_per_s_per_core"], baseline["images_per_s_per_core"],
                 1.0, 0.0])
    print_table(["style", "threads", "images/s", "images/s/core", "x baseline", "first call s"], rows)
    out = {"styles": results, "baseline": baseline, "machine": machine()}
    write_json(out, json_path)
    return out
