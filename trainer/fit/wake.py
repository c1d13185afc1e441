"""The wake-phase objective: how likely the real images are under a style, given a trained proposal's readings.

Wake phase (Le et al. 2017): read each real image x_i with a trained model M (its texts t_ij, probabilities
w_ij: the top few readings, renormalised, or one with weight 1), re-render each reading K times with the
candidate style S, the other latents (font, size, kerning) and the nuisance (warp, strokes, noise) drawn from
S's prior, and score the fit with importance sampling's ABC kernel (trainer/infer.py):

    log p^(x_i | S) = log sum_j w_ij (1/K) sum_k exp(log L(x_i | render_S(t_ij, key_ik)))
    objective(S) = - mean_i log p^(x_i | S)                      (lower is better, as the feature gap)

The readings are computed once per model and shared by every candidate style (`read_images`); the render keys
depend on (seed, i, k) only (common random numbers: the objective is deterministic and differs between
candidates by their parameters alone). The bandwidth is the caller's and must be one for all the candidates
compared: the kernel's scale is part of the objective (a style-dependent bandwidth would reward the style whose
own renders vary most). Nothing here reads a file or a label: images are arrays, texts come from the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthstream.generate import render
from synthstream.render.rng import sample_keys
from synthstream.style import Style
from synthstream.trace import codec_of, traces_from_classes
from trainer.infer import abc_log_likelihood, projection

Readings = Sequence[Sequence[tuple[str, float]]]     # per image: (text, weight) pairs, weights summing to 1
CHUNK = 2048                                         # renders scored at once (memory: CHUNK x H x W floats)


def read_images(reader, images: np.ndarray, top: int = 1, *, seed: int = 0) -> list[list[tuple[str, float]]]:
    """Each image's `top` most probable readings by a `trainer.reader.Reader` (its recipe), probabilities
    renormalised over them (`top` 1: the MAP reading, weight 1). uint8 [n, H, W] at the reader's style size."""
    out = []
    for p in reader.posteriors(images, seed=seed):
        p = p.tempered(reader.recipe.temperature)
        pairs = [(t, float(q)) for t, q in p.top(top) if q > 0] or [(p.map, 1.0)]
        total = sum(q for _, q in pairs)
        out.append([(t, q / total) for t, q in pairs])
    return out


def traces_of_texts(style: Style, texts: list[str], keys: np.ndarray):
    """Traces drawing `texts`, with every other latent (font, size, kerning) and the nuisance from the style's
    prior under `keys`. Raises ValueError for a text the style cannot draw (alphabet, length)."""
    codec = codec_of(style)
    classes = codec.sample(keys).astype(np.int64)
    drawn = codec.encode_texts(texts)
    classes[:, 0] = drawn[:, 0]                                   # num_chars
    classes[:, codec.char_start:] = drawn[:, codec.char_start:]
    return traces_from_classes(style, classes, keys)


def wake_log_likelihoods(style: Style, images: np.ndarray, readings: Readings, *, bandwidth: float,
                         renders: int = 32, seed: int = 0) -> np.ndarray:
    """log p^(x_i | style) per image [n] (module docstring); images uint8 [n, H, W] at the style's size."""
    if images.ndim != 3 or images.shape[1:] != (style.height, style.width):
        raise ValueError(f"images {images.shape}: need [n, {style.height}, {style.width}] for {style.name!r}")
    if len(readings) != len(images):
        raise ValueError(f"{len(readings)} readings for {len(images)} images")
    if any(len(pairs) == 0 for pairs in readings):
        raise ValueError("every image needs at least one reading")
    proj = projection(style.height, style.width)
    # one row per (image, reading, render); image i's render k has key (seed, i K + k) whatever its reading
    rows = [(i, t, w) for i, pairs in enumerate(readings) for t, w in pairs]
    image_of = np.repeat([r[0] for r in rows], renders)
    texts = [r[1] for r in rows for _ in range(renders)]
    keys = sample_keys(seed, image_of * renders + np.tile(np.arange(renders), len(rows)))
    log_lik = np.empty(len(texts))
    for a in range(0, len(texts), CHUNK):
        b = min(a + CHUNK, len(texts))
        rendered = render(style, traces_of_texts(style, texts[a:b], keys[a:b]))
        log_lik[a:b] = abc_log_likelihood(images[image_of[a:b]], rendered, proj, bandwidth)
    # log sum_j w_ij mean_k exp(.): per row (reading) a log-mean-exp, then a weighted log-sum-exp per image
    per_row = log_lik.reshape(len(rows), renders)
    top = per_row.max(axis=1, keepdims=True)
    row_ll = top[:, 0] + np.log(np.mean(np.exp(per_row - top), axis=1))
    weighted = row_ll + np.log(np.maximum([r[2] for r in rows], 1e-300))
    out = np.empty(len(images))
    row_image = np.array([r[0] for r in rows])
    for i in range(len(images)):
        v = weighted[row_image == i]
        out[i] = v.max() + np.log(np.sum(np.exp(v - v.max())))
    return out


def wake_objective(style: Style, images: np.ndarray, readings: Readings, *, bandwidth: float,
                   renders: int = 32, seed: int = 0) -> float:
    """- mean_i log p^(x_i | style): lower is better (module docstring)."""
    return float(-np.mean(wake_log_likelihoods(style, images, readings, bandwidth=bandwidth, renders=renders,
                                               seed=seed)))


def load_wake_reader(checkpoint: str, style: Style):
    """The reader of `checkpoint` (a shipped model's name, a checkpoint or a run folder, as every command
    resolves one), checked against the style being fitted: its readings must be drawable by it. UserError
    (one line) otherwise."""
    from synthstream.errors import UserError
    from trainer.reader import load_reader

    reader = load_reader(checkpoint)
    read = reader.style
    if (read.height, read.width) != (style.height, style.width):
        raise UserError(f"--checkpoint {checkpoint!r} reads {read.width}x{read.height} images; the style "
                        f"{style.name!r} draws {style.width}x{style.height}: the wake objective needs one size")
    missing = "".join(sorted(set(read.alphabet) - set(style.alphabet)))
    if missing:
        raise UserError(f"--checkpoint {checkpoint!r} reads characters {missing!r} that the style {style.name!r} "
                        f"cannot draw (not in its alphabet)")
    return reader


def wake_target(reader, checkpoint: str, style: Style, images: np.ndarray, *, bandwidth: float, renders: int,
                gap_weight: float, gap_cap: float = float("inf"), stat_caps: tuple = (), seed: int = 0,
                minimum: int = 1):
    """The wake objective's fixed parts for a fit: `images` read once by `reader` (its MAP reading), scored
    at `bandwidth` for every candidate (trainer.fit.objective.WakeTarget). An image whose reading the style
    cannot draw (nothing read, or a length outside its num_chars) is left out (`WakeTarget.left_out`); fewer
    than `minimum` drawable readings is one UserError."""
    from synthstream.errors import UserError
    from synthstream.trace import codec_of
    from trainer.fit.objective import WakeTarget

    codec = codec_of(style)
    keep, texts = [], []
    for i, pairs in enumerate(read_images(reader, images, 1, seed=seed)):
        try:
            codec.encode_texts([pairs[0][0]])
        except ValueError:
            continue
        keep.append(i)
        texts.append(pairs[0][0])
    if len(keep) < minimum:
        raise UserError(f"--checkpoint {checkpoint!r} read {len(keep)} of {len(images)} images as texts the style "
                        f"{style.name!r} can draw; the wake objective needs at least {minimum}")
    return WakeTarget(images=images[keep], readings=tuple(((t, 1.0),) for t in texts), bandwidth=float(bandwidth),
                      renders=renders, gap_weight=float(gap_weight), gap_cap=float(gap_cap), stat_caps=tuple(stat_caps),
                      checkpoint=checkpoint,
                      left_out=len(images) - len(keep))
