"""Choosing among a fit's styles without labels: how confidently a reader trained on each reads the real images.

A reader trained on a style close to the real scheme reads the real images with a high posterior probability;
one trained on a style that misses them spreads its probability. Measured over 30 readers of three schemes
(docs/fit.md, "Choosing without labels"), the mean probability of the top reading orders the readers by their
reading rates on every scheme (Spearman +0.46 to +0.82), which no style objective did, but close readers come
in the wrong order: a guard against a fit that costs its reader much, not a fine selector. A fitted round
replaces the start only where its reader is more confident on the same images by more than `Z_REPLACE`
standard errors of the paired difference. It needs a trained reader per candidate, so it chooses between a
fit's rounds (with a sleep phase), not between the search's trials."""

from __future__ import annotations

import numpy as np

CONFIDENCE_READING = {"method": "beam", "shifts": 1, "temperature": 1.0}   # one plain pass, no calibration
Z_REPLACE = 2.0


def confidence_reader(checkpoint: str):
    """`checkpoint` loaded to read as `confidence` does (a `trainer.reader.Reader`)."""
    from trainer.reader import load_reader

    return load_reader(checkpoint, **CONFIDENCE_READING)


def confidence(reader, images: np.ndarray) -> dict:
    """How confidently `reader` (a checkpoint, or a Reader from `confidence_reader`) reads `images` (uint8
    [n, H, W]; images only: no label is read), with the beam in one pass at temperature 1: each image's
    top-reading probability, their mean and median."""
    if isinstance(reader, str):
        reader = confidence_reader(reader)
    p = np.array([r.probability for r in reader.read(list(images))], np.float64)
    return {"mean": float(p.mean()), "median": float(np.median(p)), "n": int(len(p)),
            "probabilities": [round(float(v), 5) for v in p]}


def paired_z(start: list[float], other: list[float]) -> float:
    """The mean of other - start over the same images, in standard errors of that mean (0 where they agree)."""
    d = np.asarray(other, np.float64) - np.asarray(start, np.float64)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean() / se) if se > 0 else 0.0


def choose(start: list[float], rounds: dict[int, list[float]], z: float = Z_REPLACE) -> int:
    """The round (0: the start) to keep: of the rounds whose readers read the same images more confidently
    than the start's by more than `z` standard errors of the paired difference, the most confident one (the
    earlier on a tie); the start if there is none."""
    best, best_mean = 0, -np.inf
    for round_no in sorted(rounds):
        p = rounds[round_no]
        if len(p) != len(start):
            raise ValueError(f"round {round_no} read {len(p)} images, the start {len(start)}")
        if paired_z(start, p) > z and float(np.mean(p)) > best_mean:
            best, best_mean = round_no, float(np.mean(p))
    return best
