"""Posterior inference with a trained proposal network: q alone, or importance sampling against the style.

* `proposal`: K traces from q(latents | image) (the network run K times, ancestral sampling) -> a distribution
  over strings by frequency.
* `is` (the paper's method): latents from q, nuisance (warp, strokes, noise) from the prior via fresh keys,
  re-rendered with the style's own kernels; log w = log p(latents) + log L(image | render) - log q(latents).
  L is an ABC kernel: a Gaussian on a fixed random projection of the pixel difference. Its bandwidth is
  configurable; by default it is calibrated per style so that re-rendering the *same* trace with fresh
  nuisance moves log L by about one nat (sigma^2 = std of ||P d||^2 over such pairs / 2): the nuisance alone
  then cannot collapse the weights, while wrong strings still lose. Weights are summed per string -> MAP,
  top-k with probabilities, effective sample size.

Everything is batched over images x particles: one network pass, one `render` call.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from synthstream.generate import render
from synthstream.render.rng import sample_keys
from synthstream.style import Style
from synthstream.trace import codec_of, sample_traces, traces_from_classes
from trainer.model import ProposalNet

PROJECTION_DIM = 256
PROJECTION_SEED = 20170302            # fixed: the likelihood must not change between runs
CALIBRATION_PAIRS = 128


@dataclass
class Posterior:
    """One image's posterior over strings."""

    strings: list[str]                 # most probable first
    probs: list[float]
    ess: float | None = None           # importance sampling only
    log_evidence: float | None = None  # log mean weight (importance sampling only)
    particles: int = 0

    @property
    def map(self) -> str:
        return self.strings[0]

    @property
    def map_prob(self) -> float:
        return self.probs[0]

    def top(self, k: int) -> list[tuple[str, float]]:
        return list(zip(self.strings[:k], self.probs[:k]))


def projection(height: int, width: int, dim: int = PROJECTION_DIM) -> np.ndarray:
    """A fixed Gaussian random projection [H*W, dim] (scaled so a pixel-difference norm is kept on average)."""
    rng = np.random.default_rng(PROJECTION_SEED)
    return (rng.standard_normal((height * width, dim)) / math.sqrt(dim)).astype(np.float32)


@functools.lru_cache(maxsize=16)
def calibrated_bandwidth(style: Style) -> float:
    """The default ABC bandwidth for a style (see the module docstring)."""
    traces = sample_traces(style, 12345, 0, CALIBRATION_PAIRS)
    a = render(style, traces)
    b = render(style, traces_from_classes(style, traces.classes, sample_keys(54321, np.arange(CALIBRATION_PAIRS))))
    z = (a.reshape(len(a), -1).astype(np.float32) - b.reshape(len(b), -1)) / 255.0 @ projection(style.height,
                                                                                                 style.width)
    return float(np.sqrt(max(np.std(np.sum(z * z, axis=1)), 1e-6) / 2.0))


def abc_log_likelihood(observed: np.ndarray, rendered: np.ndarray, proj: np.ndarray,
                       bandwidth: float) -> np.ndarray:
    """log N(P (x - r) / 255; 0, bandwidth^2 I) up to a constant; observed [N, H, W], rendered [N, H, W]."""
    diff = (observed.reshape(len(observed), -1).astype(np.float32) -
            rendered.reshape(len(rendered), -1).astype(np.float32)) / 255.0
    z = diff @ proj
    return -0.5 * np.sum(z * z, axis=1) / bandwidth**2


def _collect(texts: list[str], log_w: np.ndarray) -> tuple[list[str], list[float], float]:
    """Normalised weights summed per string, most probable first, and the ESS."""
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    by_text: dict[str, float] = {}
    for t, wi in zip(texts, w):
        by_text[t] = by_text.get(t, 0.0) + float(wi)
    ranked = sorted(by_text.items(), key=lambda kv: -kv[1])
    return [t for t, _ in ranked], [p for _, p in ranked], float(1.0 / np.sum(w * w))


@torch.no_grad()
def infer(model: ProposalNet, style: Style, images: np.ndarray, *, method: str = "proposal", particles: int = 100,
          bandwidth: float | None = None, seed: int = 0, chunk: int = 4096) -> list[Posterior]:
    """Posteriors for uint8 images [n, H, W] of the model's style (bandwidth None: calibrated)."""
    if method not in ("proposal", "is"):
        raise ValueError(f"method {method!r}: use 'proposal' or 'is'")
    n = images.shape[0]
    codec = codec_of(style)
    if method == "proposal" and particles == 1:
        values, _ = model.decode(torch.from_numpy(images))
        texts = codec.texts(values.numpy())
        return [Posterior([t], [1.0], particles=1) for t in texts]
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(images))
    values, log_q = [], []
    per_chunk = max(1, chunk // particles)                        # images per decode call
    for i in range(0, n, per_chunk):                              # rows come out image-major: [n * K, T]
        v, lq = model.decode(x[i:i + per_chunk], sample=True, generator=generator, repeats=particles)
        values.append(v)
        log_q.append(lq)
    values = torch.cat(values).numpy()
    log_q = torch.cat(log_q).numpy().astype(np.float64)
    texts = codec.texts(values)
    if method == "proposal":
        log_w = np.zeros(len(texts))
    else:
        keys = sample_keys(seed + 1_000_003, np.arange(values.shape[0]))    # fresh nuisance per particle
        rendered = render(style, traces_from_classes(style, values, keys))
        log_lik = abc_log_likelihood(np.repeat(images, particles, axis=0), rendered,
                                     projection(style.height, style.width),
                                     bandwidth if bandwidth is not None else calibrated_bandwidth(style))
        log_w = codec.log_prior(values) + log_lik - log_q
    out = []
    for j in range(n):
        sl = slice(j * particles, (j + 1) * particles)
        strings, probs, ess = _collect(texts[sl], log_w[sl])
        if method == "proposal":
            out.append(Posterior(strings, probs, particles=particles))
        else:
            lw = log_w[sl]
            evidence = float(lw.max() + np.log(np.mean(np.exp(lw - lw.max()))))
            out.append(Posterior(strings, probs, ess=ess, log_evidence=evidence, particles=particles))
    return out
