"""Decoding the proposal network on the text prior's support: beam search and restricted sampling.

The support of a text prior (synthstream/text.py) as an automaton over characters, stepped in torch for a
whole batch of hypotheses at once:

* `WordsPrior` (n words from a vocabulary): a trie of the vocabulary. A hypothesis' state is the *set* of its
  parses, each (trie node, words completed): a prefix such as `bears` can be `bears|...` or `bear|s...`, and
  keeping one parse would lose strings. Parse states are ids `k * nodes + node` (k words done, node in the
  word being read; the id `n_words * nodes` means all words done), at most a few per hypothesis, held in a
  padded int tensor and deduplicated after every step. For every parse state a bitmask says which numbers of
  remaining characters can still complete exactly `n_words` words; a character is allowed when some parse
  reaches a state that can finish in exactly the characters left before the decoded `num_chars`. So every
  surviving hypothesis completes to a string of the support: no dead ends, no strings off the support.
* `CharsPrior` (uniform letters): every character allowed; the length is the decoded `num_chars`.

`num_chars` is decoded jointly with the string: beam search branches over every length the prior allows (the
top `width` of them by q), so a 9-letter and a 10-letter reading compete on their full log q. The other
scalar latents (font, size, kerning) are nuisance for the string: each hypothesis takes q's mode for them
(branching on them would fill the beam with copies of one string in different fonts).

Scores are log q(trace); turning them into a posterior over strings (and adding a prior correction) is
trainer/infer.py's job.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from synthstream.style import Style
from synthstream.text import WordsPrior
from synthstream.trace import LatentCodec, codec_of
from trainer.model import ProposalNet

NEG_INF = float("-inf")


class FreeText:
    """The support of a `CharsPrior`: any character, any length the style draws."""

    def __init__(self, codec: LatentCodec) -> None:
        self.alphabet_size = len(codec.style.alphabet)
        self.length_ok = torch.ones(codec.family_sizes[0], dtype=torch.bool)

    def initial(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 1, dtype=torch.long)

    def allowed(self, states: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        return torch.ones(states.shape[0], self.alphabet_size, dtype=torch.bool)

    def advance(self, states: torch.Tensor, chars: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        return states


class WordTrie:
    """The support of a `WordsPrior` as an automaton over parse-state sets (see the module docstring)."""

    def __init__(self, prior: WordsPrior, codec: LatentCodec) -> None:
        V = len(codec.style.alphabet)
        children: list[list[int]] = [[-1] * V]
        terminal = [False]
        for row in prior.word_chars:
            node = 0
            for c in row[row >= 0]:
                nxt = children[node][c]
                if nxt < 0:
                    nxt = children[node][c] = len(children)
                    children.append([-1] * V)
                    terminal.append(False)
                node = nxt
            terminal[node] = True
        nodes = len(children)
        child = np.array(children, np.int64)
        term = np.array(terminal, bool)
        # lengths (relative to the node's depth) of the words below each node, as bitmasks; children come later
        below = term.astype(np.int64)
        for node in range(nodes - 1, -1, -1):
            kids = child[node][child[node] >= 0]
            if kids.size:
                below[node] |= np.bitwise_or.reduce(below[kids] << 1)
        n = prior.n_words
        lengths = sorted({len(w) for w in prior.vocab})
        rest = [1]                                      # rest[j]: total lengths of j more words
        for _ in range(n):
            rest.append(functools.reduce(lambda acc, L: acc | (rest[-1] << L), lengths, 0))
        finish = np.zeros(n * nodes + 2, np.int64)      # + the all-done state + a padding row
        for k in range(n):
            f = np.zeros(nodes, np.int64)
            for b in range(int(below.max()).bit_length()):
                f |= np.where(((below >> b) & 1) == 1, np.int64(rest[n - k - 1] << b), 0)
            finish[k * nodes:(k + 1) * nodes] = f
        finish[n * nodes] = 1                           # all words done: complete with 0 more characters
        self.nodes, self.n_words, self.pad = nodes, n, n * nodes + 1
        self.child = torch.from_numpy(child)
        self.terminal = torch.from_numpy(term)
        self.finish = torch.from_numpy(finish)
        # finish mask after reading character c in parse state s: [states + pad, V]
        ids = torch.arange(n * nodes)
        kid = self.child[ids % nodes]                                      # [n * nodes, V]
        after = torch.where(kid >= 0, self.finish[(ids // nodes)[:, None] * nodes + kid.clamp(min=0)], 0)
        self.next_finish = torch.cat([after, torch.zeros(2, V, dtype=torch.long)])
        lo = codec.num_chars_lo
        self.length_ok = torch.tensor([prior.log_prob_length(lo + i) > NEG_INF for i in range(codec.family_sizes[0])])

    def initial(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 1, dtype=torch.long)         # (no word done, at the root)

    def allowed(self, states: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        """[N, V]: characters after which some parse can still finish in exactly `remaining` - 1 more."""
        idx = torch.where(states >= 0, states, self.pad)
        shift = (remaining - 1).clamp(min=0)[:, None, None]
        return ((self.next_finish[idx] >> shift) & 1).bool().any(dim=1)

    def advance(self, states: torch.Tensor, chars: torch.Tensor, remaining: torch.Tensor) -> torch.Tensor:
        """The parse sets after reading `chars` [N], keeping parses that can finish in `remaining` [N]."""
        live = (states >= 0) & (states < self.n_words * self.nodes)
        k, node = states.clamp(min=0) // self.nodes, states.clamp(min=0) % self.nodes
        kid = self.child[node, chars[:, None].expand_as(node)]
        live &= kid >= 0
        kid = kid.clamp(min=0)
        within = torch.where(live, k * self.nodes + kid, -1)
        next_word = torch.where(live & self.terminal[kid], (k + 1) * self.nodes, -1)   # k+1 = n: all done
        cand = torch.cat([within, next_word], dim=1)
        ok = (cand >= 0) & ((self.finish[cand.clamp(min=0)] >> remaining.clamp(min=0)[:, None]) & 1).bool()
        big = self.pad + 1
        cand = torch.where(ok, cand, big).sort(dim=1).values
        dup = torch.zeros_like(cand, dtype=torch.bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        cand = torch.where(dup, big, cand).sort(dim=1).values
        width = max(1, int((cand < big).sum(1).max()))
        cand = cand[:, :width]
        return torch.where(cand == big, -1, cand)


@functools.lru_cache(maxsize=8)
def support_of(style: Style) -> FreeText | WordTrie:
    """The (cached) support automaton of a style's text prior."""
    codec = codec_of(style)
    return WordTrie(codec.text, codec) if isinstance(codec.text, WordsPrior) else FreeText(codec)


@dataclass
class Beams:
    """Per image, `width` hypotheses: class indices [B, W, T] and log q(trace) [B, W] (-inf: no hypothesis)."""

    classes: np.ndarray
    log_q: np.ndarray


def _scalars(model: ProposalNet, codec: LatentCodec, support, images: torch.Tensor, keep: int):
    """Steps before the characters: the `keep` best allowed num_chars per image, then q's mode of the other
    scalars. Returns (state, class rows [B * keep, T], log q [B * keep], prev, rows per image)."""
    B = images.shape[0]
    state = model.beam_start(images)
    logp, state = model.beam_step(state, None, 0)
    logp = logp.masked_fill(~support.length_ok, NEG_INF)
    keep = min(keep, int(support.length_ok.sum()))
    score, nc = logp.topk(keep, dim=1)
    state = state.take(torch.arange(B).repeat_interleave(keep))
    score, prev = score.reshape(-1), nc.reshape(-1)
    values = torch.full((B * keep, codec.steps), -1, dtype=torch.long)
    values[:, 0] = prev
    for t in range(1, codec.char_start):
        logp, state = model.beam_step(state, prev, t)
        best, prev = logp.max(dim=1)
        score = score + best
        values[:, t] = prev
    return state, values, score, prev, keep


@torch.no_grad()
def beam_search(model: ProposalNet, style: Style, images: torch.Tensor, width: int = 16) -> Beams:
    """Beam search of q restricted to the style's text-prior support, batched over images: every step is
    one network step for all B x width hypotheses and one top-k per image over width x alphabet candidates."""
    codec, support = codec_of(style), support_of(style)
    B, V = images.shape[0], len(style.alphabet)
    state, values, score, prev, keep = _scalars(model, codec, support, images, width)
    if keep < width:                                           # pad each image's beam with dead hypotheses
        pick = torch.cat([torch.arange(keep), torch.zeros(width - keep, dtype=torch.long)])
        rows = (torch.arange(B)[:, None] * keep + pick).reshape(-1)
        dead = torch.cat([torch.zeros(keep, dtype=torch.bool), torch.ones(width - keep, dtype=torch.bool)])
        state, values, prev = state.take(rows), values[rows], prev[rows]
        score = score[rows].masked_fill(dead.repeat(B), NEG_INF)
    n_chars = values[:, 0] + codec.num_chars_lo
    states = support.initial(B * width)
    image_rows = torch.arange(B)[:, None] * width
    for i in range(codec.max_chars):
        remaining = n_chars - i                                 # characters still to read, this one included
        active = remaining > 0
        if not bool(active.any()):
            break
        t = codec.char_start + i
        logp, state = model.beam_step(state, prev, t)
        ok = support.allowed(states, remaining) & active[:, None]
        cand = torch.where(ok, score[:, None] + logp, NEG_INF)
        cand[:, 0] = torch.where(active, cand[:, 0], score)    # a finished hypothesis continues once, unchanged
        top, idx = cand.view(B, width * V).topk(width, dim=1)
        rows = (image_rows + idx // V).reshape(-1)
        chars = (idx % V).reshape(-1)
        score, active, remaining = top.reshape(-1), active[rows], remaining[rows]
        values = values[rows]
        values[:, t] = torch.where(active, chars, -1)
        states = support.advance(states[rows], chars, remaining - 1)
        # the network state of a hypothesis that has read all its characters is never read again: it continues
        # its image's first hypothesis' row, so that the next step computes nothing for it
        more = remaining > 1
        state = state.take(torch.where(more, rows, rows.view(B, width)[:, :1].expand(B, width).reshape(-1)))
        n_chars, prev = n_chars[rows], values[:, t]
    return Beams(values.view(B, width, -1).numpy(), score.view(B, width).double().numpy())


def inverse_cdf(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Draws from the rows of p [N, V] (unnormalised, non-negative) given uniforms u [N] in (0, 1): the first
    class whose cumulative mass reaches u of the row's total (never a class of zero mass)."""
    cdf = p.double().cumsum(1)
    target = u.double().clamp(min=1e-300)[:, None] * cdf[:, -1:]
    return (cdf < target).sum(1).clamp(max=p.shape[1] - 1)


@torch.no_grad()
def sample_on_support(model: ProposalNet, style: Style, images: torch.Tensor, repeats: int,
                      generator: torch.Generator | None = None, *, uniforms: np.ndarray | None = None,
                      restrict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ancestral samples of q restricted to the support (each step's categorical renormalised over the
    allowed values), `repeats` per image, image-major. Returns class indices [B * repeats, T] and the log
    density of the restricted proposal that drew them (what importance weights divide by). `uniforms`
    [B * repeats, T] in (0, 1) fix the draws (inverse CDF; each row's own, so a row's sample does not depend
    on the others), else `generator` drives torch.multinomial; `restrict` False: q itself, unrestricted."""
    codec, support = codec_of(style), support_of(style)
    state = model.start(images, repeats)
    N = state.h.shape[1]
    values = torch.full((N, codec.steps), -1, dtype=torch.long)
    log_q = torch.zeros(N, dtype=torch.float64)
    states = support.initial(N)
    u = None if uniforms is None else torch.from_numpy(np.asarray(uniforms, np.float64))
    n_chars = None
    prev = None
    for t in range(codec.steps):
        logp, state = model.step(state, prev, t)
        if t == 0:
            if restrict:
                logp = logp.masked_fill(~support.length_ok, NEG_INF)
            active = torch.ones(N, dtype=torch.bool)
        elif t >= codec.char_start:
            remaining = n_chars - (t - codec.char_start)
            active = remaining > 0
            if not bool(active.any()):
                break
            if restrict:
                ok = support.allowed(states, remaining) | ~active[:, None]      # finished rows: anything (unused)
                logp = logp.masked_fill(~ok, NEG_INF)
        logp = torch.log_softmax(logp, dim=1)
        if u is None:
            v = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        else:
            v = inverse_cdf(logp.exp(), u[:, t])
        log_q += torch.where(active, logp.gather(1, v[:, None]).squeeze(1).double(), 0.0)
        values[:, t] = torch.where(active, v, -1)
        if t == 0:
            n_chars = v + codec.num_chars_lo
        elif t >= codec.char_start and restrict:
            states = support.advance(states, v, remaining - 1)
        prev = values[:, t]
    return values.numpy(), log_q.numpy()
