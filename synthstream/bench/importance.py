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
    from synthstream.commands.infer import model_and_style
    from synthstream.errors import UserError
    from synthstream.generate import render
    from synthstream.trace import sample_traces
    from trainer.infer import BANDWIDTH_RANGE, infer, kernel_bandwidth

    model, style, trained = model_and_style(checkpoint, None, prior=prior)
    traces = sample_traces(style, EVAL_SEED + seed, 0, n)
    images, truths = render(style, traces), traces.texts()
    calibrated = kernel_bandwidth(style)
    for scale in scales:
        if not BANDWIDTH_RANGE[0] <= scale * calibrated <= BANDWIDTH_RANGE[1]:
            raise UserError(f"--scales {scale:g}: bandwidth {scale * calibrated:.3g} is outside "
                            f"[{BANDWIDTH_RANGE[0]:g}, {BANDWIDTH_RANGE[1]:g}]")

    def timed(**kwargs) -> dict:
        t0 = time.perf_counter()
        posteriors = infer(model, style, images, particles=particles, seed=seed, train_style=trained, **kwargs)
        return _scored(posteriors, truths, time.perf_counter() - t0)

    runs = [{"method": "beam", **timed(method="beam")},
            {"method": "proposal", **timed(method="proposal")}]
    for scale in scales:
        for nuisance in ("prior", "own"):
            own = traces.keys if nuisance == "own" else None
            runs.append({"method": "is", "bandwidth_scale": scale, "bandwidth": scale * calibrated,
                         "nuisance": nuisance, **timed(method="is", bandwidth=scale * calibrated, own_keys=own)})
    rows = [[r["method"], "" if r["method"] != "is" else f"x {r['bandwidth_scale']:g} ({r['bandwidth']:.3g})",
             r.get("nuisance", ""), f"{r['exact']:.3f}",
             "" if r["median_ess"] is None else f"{r['median_ess']:.1f}", r["ms_per_captcha"]]
            for r in runs]
    print_table(["method", "bandwidth", "nuisance", "exact", "median ESS", "ms/captcha"], rows)
    out = {"checkpoint": checkpoint, "style": style.name, "prior": prior, "trained_on": trained.name, "n": n,
           "particles": particles, "seed": seed, "calibrated_bandwidth": calibrated, "runs": runs,
           "machine": machine()}
    write_json(out, json_path)
    return out
