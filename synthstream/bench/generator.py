"""Generator throughput: captchas/s per core for each style vs the `captcha` package's ImageCaptcha.

The per-core figure is measured on **one pinned thread**: Numba runs one thread and every thread of this
process is pinned to one core, so neither the thread count nor the OS scheduler moving work between cores
flatters the figure. The baseline, PyPI `captcha`'s ImageCaptcha (Pillow, the usual way people make synthetic
captchas), makes a grey ndarray (`np.asarray(generate_image(text).convert("L"))`, as the generator returns)
on the same pinned core, in the same process and run. Style and baseline are timed in **interleaved rounds**
(a style span, then a baseline span, half a second each, `seconds` of each per style), so load from other
processes on a shared machine hits both alike: each round gives one wall-clock ratio, reported as median and
range (`x_baseline`, `x_min`, `x_max`). Beside it, the ratio of images per CPU second of the pinned process
(time spent waiting for the core is not counted). The copy bandwidth of the pinned core (DRAM- and L2-sized
arrays) places each style on the memory roofline. With `threads` > 1 each style is also timed unpinned on
that many threads.
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


def _span_rate(fn: Callable[[], None], batch: int, seconds: float) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) over one span of `seconds`."""
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - t0), n / max(time.process_time() - c0, 1e-9)


def _median_rate(fn: Callable[[], None], batch: int, seconds: float, repeats: int = 5) -> tuple[float, float]:
    """Median (images per wall second, images per CPU second) over `repeats` spans."""
    rates = [_span_rate(fn, batch, seconds / repeats) for _ in range(repeats)]
    return statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)


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


def _style_fn(name: str, batch: int) -> tuple[Callable[[], None], float]:
    """(one batch of the style, fresh indices each call; first-call seconds: JIT or cache load + atlas)."""
    style = load_style(name)
    t0 = time.perf_counter()
    generate(style, 0, 0, 8)
    first_call_s = time.perf_counter() - t0
    counter = iter(range(10**12))
    return (lambda: generate(style, 1, next(counter) * batch, batch)), first_call_s


def _baseline_fn() -> Callable[[], None]:
    from captcha.image import ImageCaptcha

    gen = ImageCaptcha()
    texts = iter(range(10**12))

    def one() -> None:
        text = BASELINE_TEXTS[next(texts) % len(BASELINE_TEXTS)]
        np.asarray(gen.generate_image(text).convert("L"))

    one()
    return one


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """GB/s of `np.copyto` between two arrays of `nbytes` (bytes read + bytes written, best of `repeats`
    passes of >= 64 MiB each): the memory (or, for a small `nbytes`, cache) bandwidth of the calling core."""
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    passes = max(1, (64 << 20) // nbytes)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(passes):
            np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes * passes / best / 1e9


def interleaved(style_fn: Callable[[], None], batch: int, base_fn: Callable[[], None], seconds: float,
                repeats: int | None = None) -> dict:
    """`repeats` rounds (default: two per second of `seconds`, at least 5) of (a style span, a baseline span),
    each seconds / repeats long, so that both see the same load: per round the wall-clock rates and their
    ratio; medians and the ratio's range."""
    repeats = repeats or max(5, int(2 * seconds))
    rounds = []
    for _ in range(repeats):
        wall, cpu = _span_rate(style_fn, batch, seconds / repeats)
        base_wall, base_cpu = _span_rate(base_fn, 1, seconds / repeats)
        rounds.append({"wall": wall, "cpu": cpu, "base_wall": base_wall, "base_cpu": base_cpu,
                       "ratio": wall / base_wall})
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratios = [r["ratio"] for r in rounds]
    return {"wall": med["wall"], "cpu": med["cpu"], "base_wall": med["base_wall"], "base_cpu": med["base_cpu"],
            "ratio": med["ratio"], "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ratio_cpu": med["cpu"] / med["base_cpu"], "rounds": rounds}


def run(styles: list[str] | None, threads: int | None, batch: int, seconds: float, json_path: str | None) -> dict:
    names = styles or builtin_styles()
    for n in names:
        load_style(n)  # fail fast on a bad name before timing anything
    threads = set_threads(threads) if threads else 1
    fns = {n: _style_fn(n, batch) for n in names}
    multi = {n: _median_rate(fns[n][0], batch, seconds)[0] for n in names} if threads > 1 else {}
    with pinned_to_one_core() as core:
        base_fn = _baseline_fn()
        per_core = {n: interleaved(fns[n][0], batch, base_fn, seconds) for n in names}
        bandwidth = {"dram_copy_GBps": copy_bandwidth(256 << 20), "l2_copy_GBps": copy_bandwidth(256 << 10)}
    base_wall = statistics.median(r["base_wall"] for m in per_core.values() for r in m["rounds"])
    base_cpu = statistics.median(r["base_cpu"] for m in per_core.values() for r in m["rounds"])
    results = {}
    for n in names:
        s, m = load_style(n), per_core[n]
        results[n] = {"images_per_s_per_core": m["wall"], "x_baseline": m["ratio"], "x_min": m["ratio_min"],
                      "x_max": m["ratio_max"], "images_per_cpu_s": m["cpu"], "x_baseline_cpu": m["ratio_cpu"],
                      "images_per_s": multi.get(n, m["wall"]), "threads": threads, "batch": batch,
                      "first_call_s": fns[n][1], "height": s.height, "width": s.width,
                      # the image (uint8) is the only per-image DRAM traffic: scratch, atlas and the
                      # normal table stay in cache
                      "dram_share": m["wall"] * s.height * s.width / (bandwidth["dram_copy_GBps"] * 1e9),
                      "rounds": m["rounds"]}
    rows = [[n, r["images_per_s_per_core"], r["x_baseline"], f"{r['x_min']:.1f}-{r['x_max']:.1f}",
             r["images_per_cpu_s"], r["x_baseline_cpu"], r["threads"], r["images_per_s"], r["first_call_s"]]
            for n, r in results.items()]
    rows.append(["baseline: ImageCaptcha", base_wall, 1.0, "", base_cpu, 1.0, 1, base_wall, 0.0])
    print_table(["style", "images/s/core (1 pinned thread, wall)", "x baseline", "x range", "images/cpu-s",
                 "x baseline (cpu)", "threads", "images/s", "first call s"], rows)
    print(f"copy bandwidth of the pinned core: {bandwidth['dram_copy_GBps']:.1f} GB/s (256 MiB arrays), "
          f"{bandwidth['l2_copy_GBps']:.1f} GB/s (256 KiB)")
    out = {"styles": results,
           "baseline": {"name": "captcha.image.ImageCaptcha (PyPI captcha, 160x60, 4 chars) -> grey ndarray",
                        "images_per_s_per_core": base_wall, "images_per_cpu_s": base_cpu},
           "method": "one process, one Numba thread, every thread pinned to one core; style and baseline "
                     "timed in interleaved wall-clock rounds; x_baseline = median per-round ratio",
           "pinned_core": core, "machine": {**machine(), **bandwidth}}
    write_json(out, json_path)
    return out
