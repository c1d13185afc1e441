"""Benchmarks of `synthstream fit`'s parts (JSON + table; baselines in the same run).

    python -m synthstream.bench.fit search [--budget 33] [--starts 4] [--json F]
        Self-recovery: images of a known style (the tiny style with background 220, ink 40, blur 0.8, noise 10)
        are the "real" set; each algorithm (lm, cma, random) starts from `--starts` random points of the
        envelope and gets the same budget of trials (run one at a time in this process: the algorithms are
        compared, not the cluster). Reported: the final objective and the largest parameter error (as a share
        of its envelope), medians over the starts.
    python -m synthstream.bench.fit ranking --real DIR STYLE=RATE ... [--json F]
        Does the objective rank styles as reading accuracy does? The objective (feature gap) of each style
        against DIR, beside the rate a model trained on it reached (measured elsewhere, given here), and the
        Spearman correlation of the two (a negative one is the agreement: a lower gap, a higher rate).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from synthstream.bench.report import machine, module_main, print_table, write_json

TRUTH = {"background": 220, "ink": 40, "blur_sigma": 0.8, "noise_sigma": 10.0}
BOUNDS = {"background": (150, 255), "ink": (0, 120), "blur_sigma": (0, 2), "noise_sigma": (0, 30)}


def _tiny(values: dict) -> dict:
    return {"name": "tiny", "height": 32, "width": 48, "alphabet": "ABCD",
            "fonts": [{"file": "DejaVuSans-Bold.ttf", "package": "fonts-dejavu-core"}],
            "latents": {"num_chars": [1, 2], "font_size": [18, 20]},
            "layout": {"start_x": "center", "baseline": "center"},
            "warp": {"elastic_alpha": 6.0, "elastic_sigma": 4.0}, "ink": dict(values),
            "fit": {"fixed": ["warp.elastic_alpha", "warp.elastic_sigma", "latents.font_size"],
                    "bounds": {f"ink.{k}": list(v) for k, v in BOUNDS.items()}}}


def search(budget: int, starts: int, n: int) -> dict:
    from synthstream.style import parse_style
    from trainer.fit.objective import score, synthetic_images, target_of
    from trainer.fit.search import make_searcher, run_serial
    from trainer.fit.space import build_space

    target = target_of(synthetic_images(parse_style(_tiny(TRUTH)), 150, 123))
    rng = np.random.default_rng(0)
    points = [{k: (int(round(v)) if k in ("background", "ink") else round(float(v), 3))
               for k, v in ((k, rng.uniform(*BOUNDS[k])) for k in BOUNDS)} for _ in range(starts)]
    rows, out = [], {}
    for alg in ("lm", "cma", "random"):
        finals, errors, t0 = [], [], time.perf_counter()
        for s, start in enumerate(points):
            space = build_space(_tiny(start), "bench")
            searcher = make_searcher(alg, space.n_continuous, [], space.encode(parse_style(_tiny(start))),
                                     population=8, seed=s)
            run_serial(searcher, lambda c, sp=space: score(sp.decode(c["u"], c["k"]), target, n, 0), budget)
            value, best = searcher.best()
            fitted = space.decode(best["u"], best["k"]).params["ink"]
            finals.append(value)
            errors.append(max(abs(fitted[k][0] - TRUTH[k]) / (BOUNDS[k][1] - BOUNDS[k][0]) for k in TRUTH))
        out[alg] = {"final_objective": finals, "max_parameter_error": errors,
                    "median_objective": float(np.median(finals)), "median_error": float(np.median(errors)),
                    "seconds": round(time.perf_counter() - t0, 1)}
        rows.append([alg, f"{np.median(finals):.4f}", f"{np.median(errors):.3f}", f"{max(errors):.3f}",
                     f"{out[alg]['seconds']:.0f}"])
    print(f"self-recovery of 4 ink parameters, {budget} trials each, {starts} random starts, {n} images per trial")
    print_table(["algorithm", "objective (median)", "max param error (median)", "worst", "s"], rows)
    return {"benchmark": "fit search", "budget": budget, "starts": starts, "n_synthetic": n, "truth": TRUTH,
            "results": out, "machine": machine()}


def ranking(real: str, pairs: list[str], n: int) -> dict:
    from synthstream.fidelity import load_real_images
    from synthstream.style import load_style
    from trainer.fit.objective import score, target_of

    rows, out = [], []
    for pair in pairs:
        path, _, rate = pair.rpartition("=")
        style = load_style(path)
        real_images = load_real_images(real, style, limit=500)
        result = score(style, target_of(real_images), n, 0)
        out.append({"style": path, "rate": float(rate), "objective": result["objective"]})
        rows.append([path, rate, f"{result['objective']:.3f}"])
    rho = _spearman([r["objective"] for r in out], [r["rate"] for r in out])
    print_table(["style", "reading rate (given)", "objective (feature gap)"], rows)
    print(f"Spearman correlation objective vs rate: {rho:+.2f} over {len(out)} styles (-1: perfect agreement)")
    return {"benchmark": "fit ranking", "real": real, "styles": out, "spearman": rho, "machine": machine()}


def _spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else float("nan")


def main(argv: list[str] | None = None) -> int:
    from synthstream import argtypes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    s = sub.add_parser("search")
    s.add_argument("--budget", type=argtypes.positive_int, default=33)
    s.add_argument("--starts", type=argtypes.positive_int, default=4)
    s.add_argument("-n", type=argtypes.positive_int, default=100)
    s.add_argument("--json")
    r = sub.add_parser("ranking")
    r.add_argument("--real", required=True)
    r.add_argument("pairs", nargs="+", metavar="STYLE=RATE")
    r.add_argument("-n", type=argtypes.positive_int, default=200)
    r.add_argument("--json")
    args = parser.parse_args(argv)
    if args.which == "search":
        return module_main(parser.prog, lambda: write_json(search(args.budget, args.starts, args.n), args.json))
    return module_main(parser.prog, lambda: write_json(ranking(args.real, args.pairs, args.n), args.json))


if __name__ == "__main__":
    sys.exit(main())
