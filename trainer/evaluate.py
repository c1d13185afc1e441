"""Evaluating a proposal network on labelled captchas (real or synthetic): accuracy, calibration, mismatch.

Report (`report.json`): `exact_rate`, `ece`, `n`, `seconds_per_captcha`, per-character accuracy, normalised
Levenshtein distance, rates by length, coverage-accuracy points, the model-mismatch rate, the IS kernel
bandwidth, and the images that could not be evaluated. Plots: reliability diagram and coverage-accuracy
curve (PNG). `failures.md` lists every miss with its top guesses (labels and strings escaped: they come from
file names).

Calibration: a temperature T on the method's string probabilities (p_T ∝ p^(1/T), trainer/infer.py), fitted on
a labelled *synthetic* set rendered in memory from a key domain of its own (never the evaluated data, never
a training seed) by minimising the log loss of "the MAP string is right" at the MAP probability, the quantity
ECE measures. The network reads its own style almost perfectly, so a set drawn from that style fits a T that
only sharpens; drawing it with the nuisance prior widened (`scale` > 1) puts the set off the training
distribution, as real captchas are, while staying synthetic. T changes no ranking, so accuracy and top-k are
unchanged; the report gives ECE before and after.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthstream.render.rng import _mix64_np, sample_keys
from synthstream.trace import TraceBatch, codec_of
from trainer.images import Loaded
from trainer.infer import Posterior

CALIBRATION_SALT = np.uint64(0x43414C4942524154)     # "CALIBRAT": the calibration set's own key domain
TEMPERATURES = np.exp(np.linspace(np.log(0.1), np.log(20.0), 121))


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass
class Row:
    path: str
    truth: str
    posterior: Posterior
    in_support: bool

    @property
    def correct(self) -> bool:
        return self.posterior.map == self.truth

    def mismatch(self) -> bool | None:
        return self.posterior.mismatch


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error of the MAP probability, and the reliability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if inside.any():
            acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
            ece += inside.mean() * abs(acc - conf)
            table.append({"lo": float(lo), "hi": float(hi), "n": int(inside.sum()), "accuracy": acc,
                          "confidence": conf})
    return float(ece), table


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    """Answer only when the MAP probability >= t: coverage and accuracy of the answered, per threshold."""
    points = []
    for t in np.linspace(0.0, 0.95, 20):
        answered = confidence >= t
        points.append({"threshold": float(t), "coverage": float(answered.mean()),
                       "accuracy": float(correct[answered].mean()) if answered.any() else float("nan")})
    return points


def calibration_set(style, n: int) -> list[Loaded]:
    """n labelled synthetic captchas of the style, rendered in memory from the calibration key domain."""
    from synthstream.generate import render

    keys = _mix64_np(sample_keys(0, np.arange(n)) ^ CALIBRATION_SALT)
    codec = codec_of(style)
    traces = TraceBatch(codec, codec.sample(keys), keys, np.arange(n, dtype=np.int64))
    images = render(style, traces)
    return [Loaded(path=f"synthetic/{i}", image=im, label=t) for i, (im, t) in enumerate(zip(images, traces.texts()))]


def fit_temperature(posteriors: list[Posterior], truths: list[str]) -> float:
    """The temperature (grid, log-spaced 0.1-20) minimising the log loss of MAP correctness."""
    correct = np.array([p.map == t for p, t in zip(posteriors, truths)], dtype=float)
    probs = [np.maximum(np.array(p.probs if p.probs else [1.0]), 1e-300) for p in posteriors]
    width = max(len(p) for p in probs)
    log_p = np.full((len(probs), width), -np.inf)
    for i, p in enumerate(probs):
        log_p[i, :len(p)] = np.log(p)
    losses = []
    for T in TEMPERATURES:
        z = log_p / T
        m = np.clip(z[:, 0] - np.logaddexp.reduce(z, axis=1), -700, 0)       # log p_T(MAP)
        miss = np.log(-np.expm1(np.minimum(m, -1e-12)))
        losses.append(-np.mean(correct * m + (1 - correct) * miss))
    return float(TEMPERATURES[int(np.argmin(losses))])


def run_inference(reader, items: list[Loaded], *, seed: int = 0) -> tuple[list[Posterior], float]:
    """Untempered posteriors of the readable items (the reader batches) and the seconds it took."""
    usable = [it for it in items if it.image is not None]
    t0 = time.perf_counter()
    posteriors = reader.posteriors(np.stack([it.image for it in usable]), seed=seed) if usable else []
    return posteriors, time.perf_counter() - t0


def calibrate(reader, n: int, scale: float = 1.0, seed: int = 0) -> dict:
    """Fit the temperature of the reader's recipe on n synthetic captchas of the style it reads under, its
    nuisance prior widened `scale` times (Style.widened): {"temperature", "n", "scale", "synthetic_..."}."""
    items = calibration_set(reader.style.widened(scale), n)
    posteriors, _ = run_inference(reader, items, seed=seed)
    truths = [it.label for it in items]
    T = fit_temperature(posteriors, truths)
    correct = np.array([p.map == t for p, t in zip(posteriors, truths)])
    before = calibration(np.array([p.map_prob for p in posteriors]), correct)[0]
    after = calibration(np.array([p.tempered(T).map_prob for p in posteriors]), correct)[0]
    return {"temperature": T, "n": n, "scale": scale, "synthetic_exact_rate": float(correct.mean()),
            "synthetic_ece_before": before, "synthetic_ece_after": after}


def evaluate(model, style, items: list[Loaded], *, method: str = "proposal", particles: int = 100,
             bandwidth: float | None = None, batch: int = 64, seed: int = 0, beam_width: int = 16,
             train_style=None, temperature: float = 1.0, shifts: int = 1) -> tuple[dict, list[Row]]:
    """`evaluate_reader` for a network and a style read with these recipe parts."""
    from trainer.reader import Reader
    from trainer.recipe import resolve

    recipe = resolve(None, {"method": method, "particles": particles, "bandwidth": bandwidth,
                            "beam_width": beam_width, "shifts": shifts, "temperature": temperature})
    reader = Reader(model, style, train_style or style, recipe, batch_size=batch)
    return evaluate_reader(reader, items, seed=seed)


def evaluate_reader(reader, items: list[Loaded], *, seed: int = 0) -> tuple[dict, list[Row]]:
    """Figures on the labelled items; posteriors tempered by the recipe's temperature (ECE before it is
    reported too). The report's search fields (beam width, particles, bandwidth) are the decoder's own."""
    style, recipe = reader.style, reader.recipe
    temperature = recipe.temperature
    usable = [it for it in items if it.image is not None]
    raw, seconds = run_inference(reader, usable, seed=seed)
    posteriors = [p.tempered(temperature) for p in raw]
    rows = [Row(str(it.path), it.label, p, it.in_support) for it, p in zip(usable, posteriors)]
    scored = [r for r in rows if r.in_support]
    correct = np.array([r.correct for r in scored], dtype=bool)
    confidence = np.array([r.posterior.map_prob for r in scored])
    ece, bins = calibration(confidence, correct)
    char_hits = sum(sum(a == b for a, b in zip(r.posterior.map, r.truth)) for r in scored)
    by_length: dict[int, list[bool]] = {}
    for r in scored:
        by_length.setdefault(len(r.truth), []).append(r.correct)
    flags = [r.mismatch() for r in scored]
    raw_conf = np.array([p.map_prob for p, it in zip(raw, usable) if it.in_support])
    text = codec_of(style).text
    in_prior = [r for r in scored if text.log_prob(r.truth) > -np.inf]     # the labels any reader could get
    prior_correct = np.array([r.correct for r in in_prior], dtype=bool)
    search = recipe.decoder.report_fields(recipe.decoder_options(), style)
    report = {
        "n": len(scored), "method": recipe.method, **search, "shifts": recipe.shifts,
        "text_prior": text.kind,
        "prior_swapped": reader.trained.params["text"] != style.params["text"],
        "labels_off_text_prior": len(scored) - len(in_prior),
        "labels_in_text_prior": {"n": len(in_prior),
                                 "exact_rate": float(prior_correct.mean()) if in_prior else float("nan"),
                                 "ece": calibration(np.array([r.posterior.map_prob for r in in_prior]),
                                                    prior_correct)[0] if in_prior else float("nan")},
        "exact_rate": float(correct.mean()) if len(scored) else float("nan"),
        "top3_rate": float(np.mean([r.truth in r.posterior.strings[:3] for r in scored])) if scored else float("nan"),
        "exact_rate_including_unsupported": float(np.mean([r.correct for r in rows])) if rows else float("nan"),
        "per_character_accuracy": char_hits / max(1, sum(len(r.truth) for r in scored)),
        "normalised_levenshtein": float(np.mean([levenshtein(r.posterior.map, r.truth) / len(r.truth)
                                                 for r in scored])) if scored else float("nan"),
        "rate_by_length": {str(k): {"n": len(v), "exact_rate": float(np.mean(v))}
                           for k, v in sorted(by_length.items())},
        "bandwidth": search.get("bandwidth"),
        "ece": ece, "temperature": temperature,
        "ece_before_calibration": calibration(raw_conf, correct)[0] if len(scored) else float("nan"),
        "reliability": bins, "coverage_accuracy": coverage_curve(confidence, correct),
        "mean_map_probability": float(confidence.mean()) if len(scored) else float("nan"),
        "mismatch_rate": (float(np.mean([bool(f) for f in flags])) if flags and flags[0] is not None else None),
        "seconds_per_captcha": seconds / max(1, len(usable)),
        "unsupported_labels": [{"path": r.path, "label": r.truth} for r in rows if not r.in_support],
        "not_evaluated": [{"path": str(it.path), "why": it.note} for it in items if it.image is None],
        "resized": sum(1 for it in usable if it.note.startswith("resized")),
    }
    return report, rows


REPORT_FILES = ("report.json", "reliability.png", "coverage.png", "failures.md")
REPORT_KIND = "evaluation report"


def check_report_dir(path: str | Path) -> Path:
    """Before any work: the report folder must be new, empty or an earlier report synthstream wrote there
    (which it replaces); a folder holding anything else is refused (synthstream.output)."""
    from synthstream.output import owned_output_dir

    return owned_output_dir(path, REPORT_KIND)


def write_report(out_dir: Path, report: dict, rows: list[Row], title: str) -> None:
    """The report folder, written whole and then put in place; an earlier report there is replaced only once
    the new one is complete, and nothing but that report is ever removed (synthstream.output)."""
    from synthstream.output import replace_owned_dir

    def fill(tmp: Path) -> None:
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        _plots(tmp, report, title)
        _failures_page(tmp, report, rows, title)

    replace_owned_dir(out_dir, REPORT_KIND, fill)


def _plots(out_dir: Path, report: dict, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    bins = report["reliability"]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["accuracy"] for b in bins], width=0.09, alpha=0.7,
           label="accuracy in bin")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3")
    ax.set_xlabel("MAP probability")
    ax.set_ylabel("fraction correct")
    ax.set_title(f"{title}\nECE {report['ece']:.3f}, n={report['n']}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / "reliability.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.2, 4))
    pts = report["coverage_accuracy"]
    ax.plot([p["coverage"] for p in pts], [p["accuracy"] for p in pts], "o-")
    ax.set_xlabel("coverage (answered fraction)")
    ax.set_ylabel("accuracy of answered")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: abstain below a MAP-probability threshold", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "coverage.png", dpi=110)
    plt.close(fig)


_MARKDOWN_SPECIALS = set("\\`*_{}[]<>#|&~")


def escape(text: str) -> str:
    """A string (label, guess, path) as literal text in a markdown table cell: markdown and HTML specials and
    control characters become numeric character references, so no file name can break the page."""
    return "".join(f"&#{ord(c)};" if c in _MARKDOWN_SPECIALS or not c.isprintable() else c for c in text)


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _search_size(report: dict) -> str:
    return f"beam width {report['beam_width']}" if report["method"] == "beam" else f"{report['particles']} particles"


def _failures_page(out_dir: Path, report: dict, rows: list[Row], title: str) -> None:
    lines = [f"# {escape(title)}", "",
             f"exact-string rate **{report['exact_rate']:.3f}** on {report['n']} captchas "
             f"(method `{report['method']}`, {_search_size(report)}); ECE {report['ece']:.3f} "
             f"(temperature {report['temperature']:.2f}; {report['ece_before_calibration']:.3f} before); "
             f"{report['seconds_per_captcha'] * 1e3:.1f} ms per captcha.", "",
             "![reliability](reliability.png) ![coverage](coverage.png)", "",
             "| image | truth | MAP | p(MAP) | top guesses | ESS | mismatch |", "|---|---|---|---:|---|---:|---|"]
    for r in rows:
        if r.correct:
            continue
        p = r.posterior
        top = ", ".join(f"{_code(s)} {q:.2f}" for s, q in p.top(3))
        lines.append(f"| ![]({_image_uri(r.path)}) | {_code(r.truth)} | {_code(p.map)} | {p.map_prob:.2f} | "
                     f"{top} | {'' if p.ess is None else f'{p.ess:.1f}'} | "
                     f"{'' if r.mismatch() is None else ('yes' if r.mismatch() else 'no')} |")
    if report["not_evaluated"]:
        lines += ["", "## Not evaluated", ""] + [f"- {_code(x['path'])}: {escape(x['why'])}"
                                                 for x in report["not_evaluated"]]
    (out_dir / "failures.md").write_text("\n".join(lines) + "\n")


def _image_uri(path: str) -> str:
    """A file URI with every special character percent-encoded (so `)` or `|` in a name cannot end the link)."""
    from urllib.parse import quote

    p = Path(path)
    return "file://" + quote(str(p.resolve()), safe="/") if not str(path).startswith("synthetic/") else ""
