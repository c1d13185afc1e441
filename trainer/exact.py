"""Exact posteriors by enumeration, for styles small enough (`tiny`: 60 traces), to check q and IS.

Target: the same model importance sampling targets, p(trace | x) ∝ p(trace) E_nuisance[L(x | render)], with
L the ABC kernel of trainer/infer.py. Every trace is enumerated; the expectation over nuisance is a mean over
M fresh nuisance draws per trace (exact in the traces, Monte Carlo in the nuisance). q's own distribution over
strings is also computed exactly, by scoring every trace with the teacher-forced network.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from synthstream.generate import render
from synthstream.render.rng import sample_keys
from synthstream.style import Style
from synthstream.trace import codec_of, traces_from_classes
from trainer.infer import abc_log_likelihood, kernel_bandwidth, projection
from trainer.model import ProposalNet

MAX_TRACES = 10_000


def support_strings(style: Style) -> list[str]:
    """Every string the style's text prior can draw. Raises ValueError (before enumerating) above MAX_TRACES."""
    from synthstream.text import WordsPrior

    text = codec_of(style).text
    lo, hi = text.lengths
    if isinstance(text, WordsPrior):
        if text.z > MAX_TRACES:
            raise ValueError(f"style {style.name!r} has {text.z:.3g} word tuples: too many to enumerate")
        tuples = itertools.product(text.vocab, repeat=text.n_words)
        return sorted({"".join(t) for t in tuples if lo <= sum(map(len, t)) <= hi})
    count = sum(len(style.alphabet) ** n for n in range(lo, hi + 1))
    if count > MAX_TRACES:
        raise ValueError(f"style {style.name!r} has {count:.3g} strings: too many to enumerate")
    return ["".join(chars) for n in range(lo, hi + 1) for chars in itertools.product(style.alphabet, repeat=n)]


def all_traces(style: Style) -> np.ndarray:
    """Every trace of the prior as class indices [N, T] (-1 past num_chars): every string of the support times
    every value of the other scalar latents."""
    codec = codec_of(style)
    others = codec.family_sizes[1:codec.char_start]
    strings = support_strings(style)
    if len(strings) * int(np.prod(others)) > MAX_TRACES:
        raise ValueError(f"style {style.name!r} has more than {MAX_TRACES} traces: too many to enumerate")
    text_classes = codec.encode_texts(strings)                       # num_chars and characters
    rows = []
    for scalars in itertools.product(*(range(n) for n in others)):
        block = text_classes.copy()
        block[:, 1:codec.char_start] = scalars
        rows.append(block)
    return np.concatenate(rows).astype(np.int64)


def _by_string(texts: list[str], log_p: np.ndarray) -> dict[str, float]:
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    out: dict[str, float] = {}
    for t, pi in zip(texts, p):
        out[t] = out.get(t, 0.0) + float(pi)
    return out


def exact_posterior(style: Style, image: np.ndarray, nuisance_draws: int = 64, seed: int = 0,
                    bandwidth: float | None = None) -> dict[str, float]:
    """p(string | image) under the ABC model, enumerating traces."""
    codec = codec_of(style)
    traces = all_traces(style)
    n, m = len(traces), nuisance_draws
    values = np.repeat(traces, m, axis=0)
    keys = sample_keys(seed + 7, np.arange(n * m))
    rendered = render(style, traces_from_classes(style, values, keys))
    log_lik = abc_log_likelihood(np.broadcast_to(image, rendered.shape), rendered,
                                 projection(style.height, style.width),
                                 kernel_bandwidth(style, bandwidth)).reshape(n, m)
    log_marginal = log_lik.max(1) + np.log(np.mean(np.exp(log_lik - log_lik.max(1, keepdims=True)), axis=1))
    return _by_string(codec.texts(traces), codec.log_prior(traces) + log_marginal)


@torch.no_grad()
def proposal_posterior(model: ProposalNet, style: Style, image: np.ndarray) -> dict[str, float]:
    """q(string | image), summing q over every trace with that string."""
    traces = all_traces(style)
    x = torch.from_numpy(np.ascontiguousarray(image))[None].expand(len(traces), *image.shape)
    nll, _ = model.eval()(x, torch.from_numpy(traces))
    return _by_string(codec_of(style).texts(traces), -nll.double().numpy())


def kl(p: dict[str, float], q: dict[str, float], floor: float = 1e-6) -> float:
    """KL(p || q) in nats over strings; q is floored (and renormalised) where it put no mass."""
    keys = sorted(set(p) | set(q))
    pv = np.array([p.get(k, 0.0) for k in keys])
    qv = np.maximum(np.array([q.get(k, 0.0) for k in keys]), floor)
    qv /= qv.sum()
    mask = pv > 0
    return float(np.sum(pv[mask] * (np.log(pv[mask]) - np.log(qv[mask]))))
