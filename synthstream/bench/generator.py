"""Generator throughput: captchas/s per core for each style vs the `captcha` package's ImageCaptcha.

The per-core figure is measured on **one pinned thread**: Numba runs one thread and every thread of this
process is pinned to one core, so neither the thread count nor the OS scheduler moving work between cores
flatters the figure. The baseline, PyPI `captcha`'s ImageCaptcha (Pillow, the usual way people make synthetic
captchas), makes a grey ndarray (`np.asarray(generate_image(text).convert("L"))`, as the generator returns)
on the same pinned core, in the same process and run. Each figure is the median rate over `repeats` spans
after a warm-up that pays the JIT. With `threads` > 1 each style is also timed unpinned on that many threads.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np

from synthstream.bench.report import machine, print_table, write_json
from synthstream.generate import generate
from synthstream.render.jit import get_threads, set_threads
from synthstream.style import builtin_styles, load_style

BASELINE_TEXTS = ("K7QZ", "AB12", "X9PL", "M4TW")


def _median_rate(fn: Callable[[], None], batch: int, seconds: float, repeats: int = 5) -> tuple[float, float]:
    """Median (images per wall second, images per CPU second of this process) over `repeats` spans. On a
    shared machine the CPU-time rate is the steadier per-core figure (time spent waiting for the core is
    not counted)."""
    wall, cpu = [], []
    for _ in range(repeats):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds / repeats:
            fn()
            n += batch
        wall.append(n / (time.perf_counter() - t0))
        cpu.append(n / max(time.process_time() - c0, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def _thread_ids() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


@contextlib.contextmanager
def pinned_to_one_core() -> Iterator[int]:
    """One Numba thread, and every thread of this process (Numba's workers included) on one core.
    Yields the core (-1 where the OS cannot pin, e.g. macOS: then only the thread count is 1)."""
    before_threads = get_threads()
    set_threads(1)
    if not hasattr(os, "sched_setaffinity"):
        try:
            yield -1
        finally:
            set_threads(before_threads)
        return
    allowed = os.sched_getaffinity(0)
    core = min(allowed)
    for tid in _thread_ids():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, {core})
    try:
        yield core
    finally:
        for tid in _thread_ids():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, allowed)
        set_threads(before_threads)


def _style_rate(name: str, batch: int, seconds: float) -> tuple[tuple[float, float], float]:
    """((images per wall s, per CPU s) on the current threads, first-call seconds)."""
    style = load_style(name)
    t0 = time.perf_counter()
    generate(style, 0, 0, 8)                        # JIT (or cache load) + glyph atlas
    first_call_s = time.perf_counter() - t0
    counter = iter(range(10**12))
    rate = _median_rate(lambda: generate(style, 1, next(counter) * batch, batch), batch, seconds)
    return rate, first_call_s


def _baseline_rate(seconds: float) -> tuple[float, float]:
    from captcha.image import ImageCaptcha

    gen = ImageCaptcha()
    texts = iter(range(10**12))

    def one() -> None:
        text = BASELINE_TEXTS[next(texts) % len(BASELINE_TEXTS)]
        np.asarray(gen.generate_image(text).convert("L"))

    one()
    return _median_rate(one, 1, seconds)


def run(styles: list[str] | None, threads: int | None, batch: int, seconds: float, json_path: str | None) -> dict:
    names = styles or builtin_styles()
    for n in names:
        load_style(n)  # fail fast on a bad name before timing anything
    threads = set_threads(threads) if threads else 1
    multi = {n: _style_rate(n, batch, seconds) for n in names} if threads > 1 else {}
    with pinned_to_one_core() as core:
        per_core = {n: _style_rate(n, batch, seconds) for n in names}
        baseline = _baseline_rate(min(seconds, 5.0))
    (base_wall, base_cpu) = baseline
    results = {}
    for n in names:
        s = load_style(n)
        (rate, cpu_rate), first_call_s = per_core[n]
        (multi_rate, _), first_call_s = multi.get(n, ((rate, cpu_rate), first_call_s))
        results[n] = {"images_per_s_per_core": rate, "x_baseline": rate / base_wall,
                      "images_per_cpu_s": cpu_rate, "x_baseline_cpu": cpu_rate / base_cpu,
                      "images_per_s": multi_rate, "threads": threads, "batch": batch,
                      "first_call_s": first_call_s, "height": s.height, "width": s.width}
    rows = [[n, r["images_per_s_per_core"], r["x_baseline"], r["images_per_cpu_s"], r["x_baseline_cpu"],
             r["threads"], r["images_per_s"], r["first_call_s"]] for n, r in results.items()]
    rows.append(["baseline: ImageCaptcha", base_wall, 1.0, base_cpu, 1.0, 1, base_wall, 0.0])
    print_table(["style", "images/s/core (1 pinned thread)", "x baseline", "images/cpu-s", "x baseline (cpu)",
                 "threads", "images/s", "first call s"], rows)
    out = {"styles": results,
           "baseline": {"name": "captcha.image.ImageCaptcha (PyPI captcha, 160x60, 4 chars) -> grey ndarray",
                        "images_per_s_per_core": base_wall, "images_per_cpu_s": base_cpu},
           "pinned_core": core, "machine": machine()}
    write_json(out, json_path)
    return out
