"""Importance sampling against the ABC kernel's width, with nuisance from the prior or the image's own.

On synthetic captchas of the model's style (their sample keys known), each bandwidth (the calibrated one times
each scale) is run twice with the same particles from q: re-rendered with fresh nuisance from the prior (what
`--method is` does) and with the image's own nuisance (what a perfect nuisance proposal would give: the
ceiling of IS). Baselines in the same run: the beam (q + prior) and q's own samples (the most frequent
string). Figures: exact whole-string rate and the median effective sample size.

    synthstream bench importance --checkpoint wikipedia --prior wikipedia [-n 200] [--particles 100]
"""

from __future__ import annotations

import time

import numpy as np

from synthstream.bench.report import machine, print_table, write_json

EVAL_SEED = 424242                  # the synthetic test set's key domain: not a training seed's


def _scored(posteriors, truths: list[str], seconds: float) -> dict:
    ess = [p.ess for p in posteriors if p.ess is not None]
    return {"exact": float(np.mean([p.map == t for p, t in zip(posteriors, truths)])),
            "median_ess": float(np.median(ess)) if ess else None,
            "ms_per_captcha": 1000 * seconds / len(truths)}


def run(checkpoint: str, prior: str | None, n: int, particles: int, scales: list[float], seed: int,
        json_path: str | None) -> dict:
    from synthstream.errors import UserError
    from synthstream.generate import render
    from synthstream.trace import sample_traces
    from trainer.decoders import get, make_options, names
    from trainer.infer import BANDWIDTH_RANGE, decode_posteriors, kernel_bandwidth
    from trainer.reader import load_reader

    reader = load_reader(checkpoint, prior=prior)
    model, style, trained = reader.model, reader.style, reader.trained
    traces = sample_traces(style, EVAL_SEED + seed, 0, n)
    images, truths = render(style, traces), traces.texts()
    calibrated = kernel_bandwidth(style)
    for scale in scales:
        if not BANDWIDTH_RANGE[0] <= scale * calibrated <= BANDWIDTH_RANGE[1]:
            raise UserError(f"--scales {scale:g}: bandwidth {scale * calibrated:.3g} is outside "
                            f"[{BANDWIDTH_RANGE[0]:g}, {BANDWIDTH_RANGE[1]:g}]")

    def timed(method: str, own_keys=None, **options) -> dict:
        decoder = get(method)
        opts = make_options(decoder, {"particles": particles, **options})
        t0 = time.perf_counter()
        posteriors = decode_posteriors(model, style, images, decoder, opts, seed=seed, train_style=trained,
                                       own_keys=own_keys)
        return {"method": method, **_scored(posteriors, truths, time.perf_counter() - t0)}

    runs = [timed(name) for name in names() if name != "is"]          # every other registered decoder: baselines
    for scale in scales:
        for nuisance in ("prior", "own"):
            own = traces.keys if nuisance == "own" else None
            runs.append({**timed("is", own_keys=own, bandwidth=scale * calibrated), "bandwidth_scale": scale,
                         "bandwidth": scale * calibrated, "nuisance": nuisance})
    rows = [[r["method"], "" if r["method"] != "is" else f"x {r['bandwidth_scale']:g} ({r['bandwidth']:.3g})",
             r.get("nuisance", ""), f"{r['exact']:.3f}",
             "" if r["median_ess"] is None else f"{r['median_ess']:.1f}", r["ms_per_captcha"]]
            for r in runs]
    print_table(["method", "bandwidth", "nuisance", "exact", "median ESS", "ms/captcha"], rows)
    out = {"checkpoint": checkpoint, "style": style.name, "prior": reader.recipe.prior, "trained_on": trained.name,
           "n": n, "particles": particles, "seed": seed, "calibrated_bandwidth": calibrated, "runs": runs,
           "machine": machine()}
    write_json(out, json_path)
    return out
