"""Benchmarks of `synthstream fit`'s parts (JSON + table; baselines in the same run).

    python -m synthstream.bench.fit search [--budget 33] [--starts 4] [--json F]
        Self-recovery: images of a known style (the tiny style with background 220, ink 40, blur 0.8, noise 10)
        are the "real" set; each algorithm (lm, cma, random) starts from `--starts` random points of the
        envelope and gets the same budget of trials (run one at a time in this process: the algorithms are
        compared, not the cluster). Reported: the final objective and the largest parameter error (as a share
        of its envelope), medians over the starts.
    python -m synthstream.bench.fit ranking --real DIR STYLE=RATE ... [--encoder M ...] [--checkpoint M
                                          [--renders 32] [--top 3] [--bandwidth B] [--oracle]] [--json F]
        Does the objective rank styles as reading accuracy does? The objective (feature gap) of each style
        against DIR, beside the rate a model trained on it reached (measured elsewhere, given here), and the
        Spearman correlation of the two (a negative one is the agreement: a lower gap, a higher rate); beside
        it the coverage gap (how far real images lie outside the style's range), the cover objective and the
        spread gap (the features' sds compared, not their means); with `--encoder M` (repeatable), the seen
        objective (the gap over reader M's CNN features) and the spread gap over those features.
        With `--checkpoint M`, also the wake-phase objective (trainer/fit/wake.py): DIR read once by M (its
        MAP reading, and its top `--top` readings), each style re-rendering those texts `--renders` times,
        one ABC bandwidth for all (M's training style's calibrated one unless `--bandwidth`); beside it, the
        mean paired difference from the style with the highest rate (per image, +- its standard error).
        `--oracle` (a measurement, never an objective) also scores the folder's labels as the readings: how
        much M's reading (and M's training style) drives the ranking. A control column scores texts drawn
        from M's text prior instead of read (how much the reading matters at all).
    python -m synthstream.bench.fit confidence --real DIR RUN=RATE ... [--synthetic N] [--json F]
        Does a reader's confidence on the real images rank readers as their reading rates do? Each RUN (a
        reader: run folder, checkpoint or shipped name) reads DIR's images (never their names) in one beam
        pass at temperature 1 (`trainer.fit.select.confidence`, what a fit with a sleep phase selects by);
        beside its mean and median top-reading probability, the rate it reached (measured elsewhere, on held-out
        images, given here), and the Spearman correlation of the two (+1: the same order). Each reader's
        paired difference from the first one listed (per image, in standard errors) is what a fit with a
        sleep phase decides by: a fitted round replaces the start (list it first) above +2. `--synthetic N`
        also reads N of each reader's own style's samples: its confidence there, and real minus that (a
        candidate normalisation: an easy style makes a confident reader).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from synthstream.bench.report import machine, module_main, print_table, write_json

TRUTH = {"background": 220, "ink": 40, "blur_sigma": 0.8, "noise_sigma": 10.0}
CONTROL_SEED = 99                     # the wake control's texts: drawn from M's text prior, not read
OWN_SAMPLES_SEED = 777                # confidence: a reader's own style's samples
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


def ranking(real: str, pairs: list[str], n: int, wake: dict | None = None, encoders: tuple[str, ...] = ()) -> dict:
    from synthstream.fidelity import load_real_images
    from synthstream.style import load_style
    from trainer.fit.objective import OBJECTIVES, score, target_of

    cover_weight = OBJECTIVES["cover"].coverage_weight
    rows, out = [], []
    for pair in pairs:
        path, rate = _pair(pair)
        style = load_style(path)
        real_images = load_real_images(real, style, limit=500)
        result = score(style, target_of(real_images, cover_weight), n, 0)      # the gap and coverage come along
        out.append({"style": path, "rate": rate, "objective": result["gap"],
                    "coverage": result["coverage"], "cover": result["objective"], "spread": result["spread"]})
        rows.append([path, f"{rate:.3f}", f"{result['gap']:.3f}", f"{result['coverage']:.4f}",
                     f"{result['objective']:.3f}", f"{result['spread']:.3f}"])
        for encoder in encoders:                                  # the seen objective, one reader's features each
            seen = score(style, target_of(real_images, encoder=encoder), n, 0)
            out[-1][f"seen_{encoder}"], out[-1][f"seen_spread_{encoder}"] = seen["seen"], seen["seen_spread"]
            rows[-1] += [f"{seen['seen']:.3f}", f"{seen['seen_spread']:.3f}"]
    headers = ["style", "reading rate (given)", "objective (feature gap)", "coverage gap",
               f"cover (gap + {cover_weight:g} x coverage)", "spread gap",
               *(f"{k} ({e})" for e in encoders for k in ("seen", "seen spread"))]
    objectives = {"feature gap": "objective", "coverage gap": "coverage", "cover": "cover", "spread gap": "spread",
                  **{f"{k} ({e})": f"{key}_{e}" for e in encoders for k, key in (("seen", "seen"),
                                                                                 ("seen spread", "seen_spread"))}}
    result = {"benchmark": "fit ranking", "real": real, "styles": out}
    if wake is not None:
        result["wake"] = _wake_columns(real, out, rows, headers, objectives, **wake)
    print_table(headers, rows)
    for name, key in objectives.items():
        rho = _spearman([r[key] for r in out], [r["rate"] for r in out])
        result["spearman" if key == "objective" else f"spearman_{key}"] = rho
        print(f"Spearman correlation {name} vs rate: {rho:+.2f} over {len(out)} styles (-1: perfect agreement)")
    return {**result, "machine": machine()}


def _wake_columns(real: str, out: list[dict], rows: list[list], headers: list[str], objectives: dict,
                  checkpoint: str, renders: int, top: int, bandwidth: float | None, oracle: bool) -> dict:
    """Add the wake objective's columns (M's MAP reading, its top readings, the labels with `oracle`)."""
    from synthstream.errors import UserError
    from synthstream.fidelity import load_real_images
    from synthstream.labelled import read_labelled_folder
    from synthstream.style import load_style
    from synthstream.trace import sample_traces
    from trainer.fit.wake import read_images, wake_log_likelihoods
    from trainer.infer import calibrated_bandwidth
    from trainer.reader import load_reader

    reader = load_reader(checkpoint)
    styles = {r["style"]: load_style(r["style"]) for r in out}
    for path, style in styles.items():
        if (style.height, style.width) != (reader.style.height, reader.style.width):
            raise UserError(f"{path}: {style.width}x{style.height} differs from --checkpoint {checkpoint}'s "
                            f"{reader.style.width}x{reader.style.height}; the wake objective needs one image size")
    images = load_real_images(real, reader.style, limit=500)          # images only: names are not read here
    t0 = time.perf_counter()
    tops = read_images(reader, images, top)
    readings = {"wake": [[(pairs[0][0], 1.0)] for pairs in tops], f"wake_top{top}": tops}   # MAP = the first
    read_s = time.perf_counter() - t0
    if oracle:
        labels = [text for _, text in read_labelled_folder(real, "--real")][:len(images)]
        if len(labels) != len(images):
            raise UserError(f"--oracle: {len(labels)} labels for {len(images)} images in {real}")
        readings["wake_oracle"] = [[(text, 1.0)] for text in labels]
    drawn = sample_traces(reader.style, CONTROL_SEED, 0, len(images)).texts()   # texts unrelated to the images
    readings["wake_random_texts"] = [[(text, 1.0)] for text in drawn]
    bw = bandwidth if bandwidth is not None else calibrated_bandwidth(reader.trained)
    reference = max(range(len(out)), key=lambda i: out[i]["rate"])
    per_image: dict[str, list[np.ndarray]] = {key: [] for key in readings}
    t0 = time.perf_counter()
    for r in out:
        style = styles[r["style"]]
        for key, texts in readings.items():
            try:
                ll = wake_log_likelihoods(style, images, texts, bandwidth=bw, renders=renders)
            except ValueError as e:
                raise UserError(f"{r['style']}: {e}") from None
            per_image[key].append(ll)
            r[key] = float(-ll.mean())
    for key in readings:
        for r, ll, row in zip(out, per_image[key], rows):
            d = per_image[key][reference] - ll                     # > 0: the reference style fits better
            se = float(d.std(ddof=1) / np.sqrt(len(d)))
            r[f"{key}_vs_best_rate"] = [float(d.mean()), se]
            row.append(f"{r[key]:.3f}" + (f" ({d.mean():+.3f} +- {se:.3f})" if key == "wake" else ""))
    headers += [f"wake (M's reading; vs best-rate style, {len(images)} images)", f"wake (top {top} readings)"]
    objectives.update({"wake": "wake", f"wake (top {top})": f"wake_top{top}"})
    if oracle:
        headers.append("wake (labels as readings: oracle)")
        objectives["wake (oracle readings)"] = "wake_oracle"
    headers.append("wake (random texts: control)")
    objectives["wake (random texts)"] = "wake_random_texts"
    return {"checkpoint": checkpoint, "trained_on": reader.trained.name, "recipe": reader.recipe.parts(),
            "renders": renders, "top": top, "bandwidth": bw, "images": len(images), "read_seconds": round(read_s, 1),
            "score_seconds": round(time.perf_counter() - t0, 1)}


def confidence_ranking(real: str, pairs: list[str], synthetic: int = 0) -> dict:
    from synthstream.fidelity import load_real_images
    from synthstream.generate import generate
    from trainer.fit.select import confidence, confidence_reader, paired_z

    rows, out, first = [], [], None
    for pair in pairs:
        run, rate = _pair(pair)
        reader = confidence_reader(run)
        trained = reader.trained
        read = confidence(reader, load_real_images(real, trained, limit=500))
        first = read["probabilities"] if first is None else first
        z = paired_z(first, read["probabilities"]) if len(first) == read["n"] else float("nan")
        out.append({"reader": run, "trained_on": trained.name, "rate": rate, "confidence": read["mean"],
                    "median_confidence": read["median"], "images": read["n"], "z_vs_first": z})
        rows.append([run, trained.name, f"{rate:.3f}", f"{read['mean']:.3f}", f"{read['median']:.3f}", f"{z:+.1f}"])
        if synthetic:
            own = confidence(reader, generate(trained, OWN_SAMPLES_SEED, 0, synthetic)[0])["mean"]
            out[-1].update(synthetic_confidence=own, real_minus_synthetic=read["mean"] - own)
            rows[-1] += [f"{own:.3f}", f"{read['mean'] - own:+.3f}"]
    print_table(["reader", "trained on", "reading rate (given)", "mean confidence", "median confidence",
                 "vs the first (paired, se)"] + (["on own samples", "real - own"] if synthetic else []), rows)
    result = {"benchmark": "fit confidence", "real": real, "readers": out, "synthetic": synthetic}
    for key in ("confidence", "median_confidence") + (("synthetic_confidence", "real_minus_synthetic")
                                                       if synthetic else ()):
        rho = _spearman([r[key] for r in out], [r["rate"] for r in out])
        result[f"spearman_{key}"] = rho
        print(f"Spearman correlation {key.replace('_', ' ')} vs rate: {rho:+.2f} over {len(out)} readers "
              f"(+1: the same order)")
    return {**result, "machine": machine()}


def _pair(text: str) -> tuple[str, float]:
    """NAME=RATE as (NAME, RATE); anything else is one line."""
    from synthstream.errors import UserError

    name, _, rate = text.rpartition("=")
    try:
        value = float(rate)
    except ValueError:
        value = float("nan")
    if not name or not 0 <= value <= 1:
        raise UserError(f"{text!r} must be NAME=RATE, RATE a reading rate in [0, 1]")
    return name, value


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
    r.add_argument("--checkpoint", help="a reader (shipped name, checkpoint, run folder): add the wake objective")
    r.add_argument("--renders", type=argtypes.positive_int, default=32)
    r.add_argument("--top", type=argtypes.positive_int, default=3)
    r.add_argument("--bandwidth", type=argtypes.positive_float)
    r.add_argument("--oracle", action="store_true", help="also score the folder's labels as readings (measurement)")
    r.add_argument("--encoder", action="append", default=[], help="a reader whose CNN features the seen objective "
                   "compares (repeatable: a column each)")
    r.add_argument("--json")
    c = sub.add_parser("confidence")
    c.add_argument("--real", required=True)
    c.add_argument("pairs", nargs="+", metavar="RUN=RATE")
    c.add_argument("--synthetic", type=argtypes.nonneg_int, default=0)
    c.add_argument("--json")
    args = parser.parse_args(argv)
    if args.which == "ranking" and args.checkpoint is None and args.oracle:
        parser.error("--oracle scores the wake objective: give --checkpoint")
    if args.which == "search":
        return module_main(parser.prog, lambda: write_json(search(args.budget, args.starts, args.n), args.json))
    if args.which == "confidence":
        return module_main(parser.prog, lambda: write_json(confidence_ranking(args.real, args.pairs,
                                                                                          args.synthetic), args.json))
    wake = None if args.checkpoint is None else {"checkpoint": args.checkpoint, "renders": args.renders,
                                                 "top": args.top, "bandwidth": args.bandwidth,
                                                 "oracle": args.oracle}
    return module_main(parser.prog, lambda: write_json(ranking(args.real, args.pairs, args.n, wake,
                                                               tuple(args.encoder)), args.json))


if __name__ == "__main__":
    sys.exit(main())
