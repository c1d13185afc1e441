"""Posterior inference with a trained proposal network: q alone, q + the text prior, or importance sampling.

The decoders are plugins (trainer/decoders, one module each: `proposal`, `beam`, `is`); this module holds what
they share: posteriors, the beam's scoring, the samplers, the shift ensemble, per-image seeds and `infer`.

* `proposal` (q alone): K traces from q(latents | image) (the network run K times, ancestral sampling) -> a
  distribution over strings by frequency; K = 1 is q's greedy decode.
* `beam` (q + prior): beam search of q restricted to the text prior's support (trainer/decode.py); each
  complete hypothesis scores log q(trace) + log p(s) - log p_train(s), normalised over the beam: no mass off
  the support. The correction is zero when q was trained under the same text prior; after a prior swap
  (`train_style`: the style q was trained on, whose text prior differs) it turns q ~ p_train(s | x) into the
  posterior under the new prior, p(s | x) ∝ q(s | x) p(s) / p_train(s).
* `is` (the paper's method): latents proposed from q restricted to the support (so no particle is wasted on
  a string of prior probability 0; the weights divide by that restricted proposal's density), nuisance (warp,
  strokes, noise) from the prior via fresh keys, re-rendered with the style's own kernels;
  log w = log p(latents) + log L(image | render) - log q(latents), with the text prior's exact log p(s).
  L is an ABC kernel: a Gaussian on a fixed random projection of the pixel difference. Its bandwidth is
  configurable; by default it is calibrated per style so that re-rendering the *same* trace with fresh
  nuisance moves log L by about one nat (sigma^2 = std of ||P d||^2 over such pairs / 2): the nuisance alone
  then cannot collapse the weights, while wrong strings still lose. Weights are summed per string -> MAP,
  top-k with probabilities, effective sample size. For synthetic images whose sample keys are known,
  `own_keys` re-renders every particle with the image's own nuisance instead: what a perfect nuisance
  proposal would give, the ceiling of IS (`synthstream bench importance` measures both).

Shift ensemble (`shifts` K > 1, proposal and beam): the posterior is the mean of the posteriors of K copies of
the image moved by small fixed offsets (`SHIFTS`, the identity first, edges repeated). The network was
trained on one layout prior and is not invariant to where real text sits; averaging over placements it
might have seen marginalises that nuisance at test time, so a read that flips under a two-pixel move loses
confidence. It costs K network runs. Importance sampling compares the image itself with its renders and
takes no shifts.

Determinism: image j's randomness (q's draws, the nuisance keys) comes from a seed hashed from (seed, its
pixels) (`image_seeds`) and the particle's index, so its posterior does not depend on which other images
share the call or the batch. The shifted copies of the ensemble are decoded as one batch.

Everything is batched over images x particles (in chunks of at most `chunk` rows, so memory stays bounded
however many particles are asked for; weights are accumulated per string as they come). A temperature T
(fitted on synthetic data by trainer/evaluate.py) flattens (T > 1) or sharpens the string probabilities:
p_T(s) ∝ p(s)^(1/T).
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
MAX_PARTICLES = 100_000               # per image: ~15 s of CPU each at this bound; refused above it
MISMATCH_ESS_FRACTION = 0.02          # IS: an ESS below 2% of the particles = q and the model disagree
BANDWIDTH_RANGE = (1e-4, 1e4)         # ABC bandwidths outside it under/overflow the weights
BEAM_ROWS = 1024                      # beam hypotheses per batch: 9 x 64 images at once ran ~1.4x slower per image
SHIFTS = ((0, 0), (0, 2), (0, -2), (1, 0), (-1, 0), (2, 0), (-2, 0), (1, 2), (-1, -2))   # (dy, dx) pixels


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
        """The most probable string ("" when no particle had a positive weight)."""
        return self.strings[0] if self.strings else ""

    @property
    def map_prob(self) -> float:
        return self.probs[0] if self.probs else 0.0

    @property
    def mismatch(self) -> bool | None:
        """Importance sampling only: the image looks unlike the style (the weights collapsed)."""
        return None if self.ess is None else bool(self.ess < max(2.0, MISMATCH_ESS_FRACTION * self.particles))

    def tempered(self, temperature: float) -> Posterior:
        """p_T(s) ∝ p(s)^(1/T): the same ranking, calibrated confidence."""
        if temperature == 1.0 or not self.probs:
            return self
        log_p = np.log(np.maximum(np.array(self.probs), 1e-300)) / temperature
        p = np.exp(log_p - log_p.max())
        return Posterior(self.strings, list(p / p.sum()), self.ess, self.log_evidence, self.particles)

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


def kernel_bandwidth(style: Style, bandwidth: float | None = None) -> float:
    """The ABC bandwidth importance sampling uses: `bandwidth` when given, else the style's calibrated one."""
    return bandwidth if bandwidth is not None else calibrated_bandwidth(style)


def abc_log_likelihood(observed: np.ndarray, rendered: np.ndarray, proj: np.ndarray,
                       bandwidth: float) -> np.ndarray:
    """log N(P (x - r) / 255; 0, bandwidth^2 I) up to a constant; observed [N, H, W], rendered [N, H, W]."""
    diff = (observed.reshape(len(observed), -1).astype(np.float32) -
            rendered.reshape(len(rendered), -1).astype(np.float32)) / 255.0
    z = (diff @ proj).astype(np.float64)
    inv_var = math.exp(min(-2.0 * math.log(bandwidth), 690.0))    # 1 / bandwidth^2, capped below overflow
    return -0.5 * np.sum(z * z, axis=1) * inv_var


def _collect(texts: list[str], log_w: np.ndarray) -> tuple[list[str], list[float], float]:
    """Normalised weights summed per string, most probable first, and the ESS."""
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    by_text: dict[str, float] = {}
    for t, wi in zip(texts, w):
        by_text[t] = by_text.get(t, 0.0) + float(wi)
    ranked = sorted(by_text.items(), key=lambda kv: -kv[1])
    return [t for t, _ in ranked], [p for _, p in ranked], float(1.0 / np.sum(w * w))


class _Weights:
    """One image's importance weights, summed per string as chunks of particles arrive (scaled by the
    largest log weight seen so far, rescaled when a larger one arrives)."""

    def __init__(self) -> None:
        self.by_text: dict[str, float] = {}
        self.ref, self.s1, self.s2, self.count = -math.inf, 0.0, 0.0, 0

    def add(self, texts: list[str], log_w: np.ndarray) -> None:
        self.count += len(texts)
        finite = np.isfinite(log_w)
        if not finite.any():
            return
        top = float(log_w[finite].max())
        if top > self.ref:
            scale = math.exp(self.ref - top) if self.ref > -math.inf else 0.0
            self.by_text = {t: w * scale for t, w in self.by_text.items()}
            self.s1, self.s2, self.ref = self.s1 * scale, self.s2 * scale * scale, top
        w = np.where(finite, np.exp(np.where(finite, log_w, 0.0) - self.ref), 0.0)
        self.s1 += float(w.sum())
        self.s2 += float((w * w).sum())
        for t, wi in zip(texts, w.tolist()):
            if wi > 0:
                self.by_text[t] = self.by_text.get(t, 0.0) + wi

    def posterior(self, weighted: bool) -> Posterior:
        ranked = sorted(self.by_text.items(), key=lambda kv: -kv[1])
        strings, probs = [t for t, _ in ranked], [min(1.0, w / self.s1) for _, w in ranked]   # no 1 + 2e-16
        if not weighted:
            return Posterior(strings, probs, particles=self.count)
        if self.s1 == 0:
            return Posterior([], [], ess=0.0, log_evidence=-math.inf, particles=self.count)
        return Posterior(strings, probs, ess=self.s1 ** 2 / self.s2,
                         log_evidence=self.ref + math.log(self.s1 / self.count), particles=self.count)


def text_prior_differs(style: Style, train_style: Style | None) -> bool:
    return train_style is not None and train_style.params["text"] != style.params["text"]


def prior_correction(style: Style, train_style: Style | None, classes: np.ndarray) -> np.ndarray:
    """log p(s) - log p_train(s) per row [n] (0 without a prior swap; -inf off the new support). The scalar
    latents' supports are the same in both styles, so the difference of log priors is the strings' alone."""
    if not text_prior_differs(style, train_style):
        return np.zeros(classes.shape[0])
    with np.errstate(invalid="ignore"):
        return codec_of(style).log_prior(classes) - codec_of(train_style).log_prior(classes)


def beam_posteriors(model: ProposalNet, style: Style, images: np.ndarray, width: int,
                    train_style: Style | None = None) -> list[Posterior]:
    """q + prior: the constrained beam, scored log q + prior correction, normalised per image over its beam.
    The beam runs on at most BEAM_ROWS hypotheses at a time (bigger batches spill the CPU's caches)."""
    from trainer.decode import beam_search

    if len(images) == 0:
        return []
    x = torch.from_numpy(np.ascontiguousarray(images))
    step = max(1, BEAM_ROWS // width)
    parts = [beam_search(model, style, x[i:i + step], width) for i in range(0, len(x), step)]
    classes = np.concatenate([b.classes for b in parts])
    log_q = np.concatenate([b.log_q for b in parts])
    B, W, T = classes.shape
    classes = classes.reshape(B * W, T)
    alive = np.isfinite(log_q.reshape(-1))
    score = np.full(B * W, -math.inf)
    score[alive] = log_q.reshape(-1)[alive] + prior_correction(style, train_style, classes[alive])
    texts = codec_of(style).texts(np.where(alive[:, None], classes, -1))
    out = []
    for j in range(B):
        acc = _Weights()
        acc.add(texts[j * W:(j + 1) * W], score[j * W:(j + 1) * W])
        p = acc.posterior(weighted=False)
        out.append(Posterior(p.strings, p.probs, particles=width))
    return out


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """images [n, H, W] moved dy rows down and dx columns right; the pixels moved in repeat the edge."""
    if dy == dx == 0:
        return images
    pad = max(abs(dy), abs(dx))
    H, W = images.shape[1:]
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    return np.ascontiguousarray(padded[:, pad - dy:pad - dy + H, pad - dx:pad - dx + W])


def mixture(posteriors: list[Posterior]) -> Posterior:
    """The equal-weight mixture of one image's posteriors (a string missing from one counts 0 there)."""
    mass: dict[str, float] = {}
    for p in posteriors:
        for s, q in zip(p.strings, p.probs):
            mass[s] = mass.get(s, 0.0) + q / len(posteriors)
    ranked = sorted(mass.items(), key=lambda kv: -kv[1])
    return Posterior([s for s, _ in ranked], [min(1.0, q) for _, q in ranked],
                     particles=sum(p.particles for p in posteriors))


def image_seeds(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """One seed per image [n] uint64, from (seed, the image's shape and pixels): a decoder that draws from it
    gives an image the same posterior whatever other images share the call."""
    import hashlib

    out = np.empty(len(images), np.uint64)
    for i, im in enumerate(images):
        h = hashlib.blake2b(digest_size=8, person=b"synthstream-rd")
        h.update(int(seed).to_bytes(8, "little", signed=False))
        h.update(np.asarray(im.shape, np.int64).tobytes())
        h.update(np.ascontiguousarray(im, np.uint8).tobytes())
        out[i] = np.frombuffer(h.digest(), np.uint64)[0]
    return out


@torch.no_grad()
def decode_posteriors(model: ProposalNet, style: Style, images: np.ndarray, decoder, options, *, seed: int = 0,
                      train_style: Style | None = None, shifts: int = 1, chunk: int = 4096,
                      own_keys: np.ndarray | None = None) -> list[Posterior]:
    """Untempered posteriors of uint8 images [n, H, W] by a registered decoder (trainer/decoders) with its
    options; `shifts` > 1: the shift ensemble (its k-th copy seeded seed + k). Each image's randomness comes
    from (seed, its pixels), so its posterior does not depend on the other images of the call."""
    from trainer.decoders import Context

    if not 1 <= shifts <= len(SHIFTS) or (shifts > 1 and not decoder.shiftable):
        raise ValueError(f"shifts {shifts}: must be in [1, {len(SHIFTS)}], and 1 for {decoder.name}")
    if own_keys is not None and len(own_keys) != len(images):
        raise ValueError("own_keys: one key per image")
    n, placements = len(images), SHIFTS[:shifts]
    # the shifted copies go through the decoder as one batch (one network call per step for all of them)
    moved = np.concatenate([shifted(images, dy, dx) for dy, dx in placements]) if shifts > 1 else images
    seeds = np.concatenate([image_seeds(images, seed + k) for k in range(shifts)])
    keys = None if own_keys is None else np.tile(np.asarray(own_keys, np.uint64), shifts)
    context = Context(seeds=seeds, train_style=train_style, chunk=chunk, own_keys=keys)
    posts = decoder.decode(model, style, moved, options, context)
    if shifts == 1:
        return posts
    return [mixture([posts[k * n + i] for k in range(shifts)]) for i in range(n)]


def infer(model: ProposalNet, style: Style, images: np.ndarray, *, method: str = "proposal", seed: int = 0,
          train_style: Style | None = None, temperature: float = 1.0, shifts: int = 1, chunk: int = 4096,
          own_keys: np.ndarray | None = None, **options) -> list[Posterior]:
    """Posteriors for uint8 images [n, H, W] of the model's style by the decoder `method` (trainer/decoders;
    `options`: its options, e.g. particles, beam_width, bandwidth; those of other decoders are ignored).
    `style` is the style to infer under; `train_style` the one q was trained on, when its text prior differs
    (a prior swap, see the module docstring); `shifts` > 1: the shift ensemble; `own_keys` uint64 [n] (`is`
    only, synthetic images): the images' sample keys, whose nuisance every particle is re-rendered with."""
    from trainer.decoders import get, make_options

    decoder = get(method)
    if temperature <= 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature {temperature}: must be a positive number")
    if own_keys is not None and method != "is":
        raise ValueError("own_keys: one key per image, and only for importance sampling")
    posts = decode_posteriors(model, style, images, decoder, make_options(decoder, options), seed=seed,
                              train_style=train_style, shifts=shifts, chunk=chunk, own_keys=own_keys)
    return [p.tempered(temperature) for p in posts] if temperature != 1.0 else posts


@torch.no_grad()
def sampled_posteriors(model: ProposalNet, style: Style, images: np.ndarray, particles: int, context,
                       weighted: bool, bandwidth: float | None = None) -> list[Posterior]:
    """q's samples (`weighted` False: by frequency) or importance sampling (True), particles in chunks of at
    most `context.chunk` rows, weights accumulated per image. Image j's draws come from `context.seeds[j]`
    and the particle's index alone (uniforms for q, keys for the nuisance), never from its neighbours."""
    from trainer.decode import sample_on_support

    n = images.shape[0]
    codec = codec_of(style)
    x = torch.from_numpy(np.ascontiguousarray(images))
    if weighted:
        proj = projection(style.height, style.width)
        bw = kernel_bandwidth(style, bandwidth)
    per_chunk = max(1, context.chunk // particles)                # images per network call
    part = min(particles, context.chunk)                          # particles per image per network call
    acc = [_Weights() for _ in range(n)]
    for i in range(0, n, per_chunk):
        imgs = x[i:i + per_chunk]
        seeds = [int(s) for s in context.seeds[i:i + per_chunk]]
        for p0 in range(0, particles, part):
            k = min(part, particles - p0)
            uniforms = np.concatenate([np.random.default_rng([s, p0]).random((k, codec.steps)) for s in seeds])
            values, log_q = sample_on_support(model, style, imgs, k, uniforms=uniforms, restrict=weighted)
            if not weighted:
                log_w = np.zeros(len(values))
            else:
                if context.own_keys is None:                          # fresh nuisance from the prior
                    keys = np.concatenate([sample_keys(s, np.arange(p0, p0 + k)) for s in seeds])
                else:                                                 # each image's own, for every particle
                    keys = np.repeat(np.asarray(context.own_keys, np.uint64)[i:i + per_chunk], k)
                rendered = render(style, traces_from_classes(style, values, keys))
                log_lik = abc_log_likelihood(np.repeat(images[i:i + per_chunk], k, axis=0), rendered, proj, bw)
                log_w = codec.log_prior(values) + log_lik - log_q
            texts = codec.texts(values)
            for j in range(imgs.shape[0]):
                acc[i + j].add(texts[j * k:(j + 1) * k], log_w[j * k:(j + 1) * k])
    return [a.posterior(weighted=weighted) for a in acc]


def swap_text_prior(model_style: Style, prior_style: Style) -> Style:
    """`model_style` with `prior_style`'s text prior (everything else, nuisance included, stays). The two must
    agree on the alphabet and the lengths: q's heads are over the model style's supports."""
    from synthstream.errors import UserError
    from synthstream.style import parse_style

    if prior_style.alphabet != model_style.alphabet:
        raise UserError(f"--prior {prior_style.name!r}: its alphabet {prior_style.alphabet!r} differs from the "
                        f"model's {model_style.alphabet!r}; use a style with the same alphabet")
    if prior_style.latent_range("num_chars") != model_style.latent_range("num_chars"):
        raise UserError(f"--prior {prior_style.name!r}: its lengths {list(prior_style.latent_range('num_chars'))} "
                        f"differ from the model's {list(model_style.latent_range('num_chars'))}; use a style with "
                        f"the same num_chars")
    raw = model_style.to_raw()
    raw["text"] = prior_style.to_raw()["text"]
    swapped = parse_style(raw, f"{model_style.source} with the text prior of {prior_style.name}")
    codec_of(swapped)                      # reads the word list now: a missing one is one UserError line
    return swapped
