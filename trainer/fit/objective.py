"""The fit's objective, which needs no labels: how far a style's samples are from the real images.

`objective = feature gap` (synthstream/fidelity.py): the mean over the fidelity classifier's ~100 features
(image statistics, grey-level / gradient / orientation / ink-run histograms, row and column ink profiles) of
the squared difference of the two sets' means in pooled standard deviations. 0 = alike; two samples of one
style give ~2/n per feature by chance. It is cheap (milliseconds on a few hundred images) and smooth in the
style's parameters when the synthetic set is drawn with common random numbers (a fixed seed, so only the
parameters change between trials). The real images' features are computed once; their file names (labels)
are never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthstream.fidelity import STATISTICS, feature_gap, features
from synthstream.style import Style


@dataclass(frozen=True)
class Target:
    """What a fit is compared with: the real images' features (rows: images), nothing else."""

    features: np.ndarray
    height: int
    width: int

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


def target_of(images: np.ndarray) -> Target:
    """The target of grey uint8 images [n, H, W]."""
    return Target(features(images), int(images.shape[1]), int(images.shape[2]))


def statistic_gaps(real: np.ndarray, synthetic: np.ndarray) -> dict[str, float]:
    """Each image statistic's (synthetic - real) mean difference in pooled sds (the features' first columns)."""
    a, b = real[:, :len(STATISTICS)], synthetic[:, :len(STATISTICS)]
    pooled = np.sqrt((a.var(axis=0) + b.var(axis=0)) / 2)
    diff = np.where(pooled > 1e-12, (b.mean(axis=0) - a.mean(axis=0)) / np.maximum(pooled, 1e-12), 0.0)
    return {name: round(float(d), 4) for name, d in zip(STATISTICS, diff)}


def synthetic_images(style: Style, n: int, seed: int) -> np.ndarray:
    from synthstream.generate import generate

    return generate(style, seed, 0, n)[0]


def residuals(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Per feature, (synthetic mean - real mean) / pooled sd: the feature gap is their mean square."""
    pooled = np.sqrt((real.var(axis=0) + synthetic.var(axis=0)) / 2)
    diff = synthetic.mean(axis=0) - real.mean(axis=0)
    return np.where(pooled > 1e-12, diff / np.maximum(pooled, 1e-12), 0.0)


def score(style: Style, target: Target, n: int, seed: int) -> dict:
    """{"objective": feature gap, "stats": {statistic: gap in sds}, "residuals": per-feature gaps} of n samples
    of the style (seed fixed)."""
    synthetic = features(synthetic_images(style, n, seed))
    r = residuals(target.features, synthetic)
    gap = feature_gap(target.features, synthetic)
    assert abs(gap - float(np.mean(r ** 2))) < 1e-9 * max(1.0, gap)
    return {"objective": gap, "stats": statistic_gaps(target.features, synthetic),
            "residuals": [round(float(v), 5) for v in r]}
