"""Traces and the latent codec: the one place that knows which latents a style traces.

`LatentCodec(style)` (get one with `codec_of(style)`) declares the traced addresses in program order — the
scalar latents of `SCALARS` (`num_chars`, `font`, `font_size`, `kerning`), then `char/0 .. char/{max-1}` —
with each address's support, value <-> class index both ways, strings from values, and the exact log prior
of a batch (uniform scalars times the style's text prior, synthstream/text.py). The Arrow schema, the
proposal network's heads, inference and evaluation all read it; adding a latent is an entry in `SCALARS` plus
its field in the style.

A batch of traces is one int32 array of class indices `values` [n, T] (-1 past the text's end) plus each
sample's `key` (from (seed, index), which also fixes its nuisance randomness) and `index`; no per-sample
Python. `TraceBatch.trace(i)` gives one sample as a read-only `Trace` of `Site`s with pyprob's words.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import prange

from synthstream.render.jit import ngjit_parallel
from synthstream.render.rng import STREAM_LATENT, _mix64_np, hash2, randint, sample_keys, uniform
from synthstream.style import Style
from synthstream.text import CharsPrior, WordsPrior, text_prior


@dataclass(frozen=True)
class Scalar:
    """A traced scalar latent, uniform over its support (num_chars: the text prior's length marginal)."""

    address: str
    support: Callable[[Style], tuple]


def _int_range(key: str) -> Callable[[Style], tuple]:
    return lambda style: tuple(range(style.latent_range(key)[0], style.latent_range(key)[1] + 1))


# program order: the proposal network's first steps; `num_chars` must come first (it bounds the characters)
SCALARS: tuple[Scalar, ...] = (
    Scalar("num_chars", _int_range("num_chars")),
    Scalar("font", lambda style: tuple(f.file for f in style.fonts)),
    Scalar("font_size", _int_range("font_size")),
    Scalar("kerning", _int_range("kerning")),
)


class LatentCodec:
    """Addresses, supports, class indices, strings and log prior of one style's traces."""

    def __init__(self, style: Style) -> None:
        self.style = style
        self.text = text_prior(style)
        self.scalars = SCALARS
        self.supports = {s.address: s.support(style) for s in SCALARS}
        self.char_start = len(SCALARS)              # first character step
        self.max_chars = style.max_chars
        self.addresses = tuple(self.supports) + tuple(f"char/{i}" for i in range(self.max_chars))
        self.families = tuple(self.supports) + ("char",)
        self.family_sizes = tuple(len(v) for v in self.supports.values()) + (len(style.alphabet),)
        self.num_chars_lo = self.supports["num_chars"][0]
        self._alphabet_codes = np.frombuffer(style.alphabet.encode("utf-32-le"), np.uint32)
        # offset that turns a scalar's class index into its value (0 for non-numeric supports such as fonts)
        self._offsets = np.array([v[0] if isinstance(v[0], int) else 0 for v in self.supports.values()], np.int64)

    @property
    def steps(self) -> int:
        return len(self.addresses)

    def family(self, step: int) -> int:
        """Index of the head (family) that predicts step `step`."""
        return min(step, self.char_start)

    def support(self, address: str) -> tuple:
        if address in self.supports:
            return self.supports[address]
        if address.startswith("char/") and 0 <= int(address[5:]) < self.max_chars:
            return tuple(self.style.alphabet)
        raise KeyError(f"style {self.style.name!r} has no latent {address!r}; it has {list(self.addresses)}")

    # -- values <-> classes -----------------------------------------------------------------------------------
    def to_values(self, classes: np.ndarray) -> np.ndarray:
        """Class indices [n, T] -> the values stored in Arrow columns (scalars as numbers or font indices,
        characters as alphabet indices; -1 stays -1)."""
        out = classes.astype(np.int64, copy=True)
        out[:, :self.char_start] += self._offsets
        return out

    def to_classes(self, values: np.ndarray) -> np.ndarray:
        out = values.astype(np.int64, copy=True)
        out[:, :self.char_start] -= self._offsets
        return out

    def num_chars(self, classes: np.ndarray) -> np.ndarray:
        return (classes[:, 0] + self.num_chars_lo).astype(np.int32)

    def texts(self, classes: np.ndarray) -> list[str]:
        """Strings of class-index rows [n, T] (characters up to the first absent one)."""
        chars = classes[:, self.char_start:]
        absent = chars < 0
        length = np.where(absent.any(1), absent.argmax(1), chars.shape[1])
        codes = np.where(np.arange(chars.shape[1]) < length[:, None], self._alphabet_codes[np.maximum(chars, 0)], 0)
        return [row.tobytes().decode("utf-32-le").rstrip("\x00") for row in codes.astype(np.uint32)]

    def log_prior(self, classes: np.ndarray) -> np.ndarray:
        """log p(trace) per row, float64 [n]: uniform scalars (but num_chars) + the text prior's log p(string)."""
        scalars = -sum(math.log(len(v)) for a, v in self.supports.items() if a != "num_chars")
        if isinstance(self.text, CharsPrior):       # vectorised: -log |lengths| - n log |alphabet|
            return scalars + self.text._log_len + self.num_chars(classes) * self.text._log_char
        return scalars + np.array([self.text.log_prob(t) for t in self.texts(classes)])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Class indices of the characters (and num_chars) of some strings [n, T]; other scalars are 0.
        Raises ValueError for a string the style cannot draw."""
        out = np.full((len(texts), self.steps), -1, np.int64)
        out[:, 1:self.char_start] = 0
        lo, hi = self.num_chars_lo, self.max_chars
        for i, t in enumerate(texts):
            if not lo <= len(t) <= hi:
                raise ValueError(f"text {t!r}: length {len(t)} outside the style's num_chars {(lo, hi)}")
            bad = [c for c in t if c not in self.style.alphabet]
            if bad:
                raise ValueError(f"text {t!r}: characters {''.join(bad)!r} are not in style "
                                 f"{self.style.name!r}'s alphabet")
            out[i, 0] = len(t) - lo
            out[i, self.char_start:self.char_start + len(t)] = [self.style.alphabet.index(c) for c in t]
        return out

    # -- the prior's sampler ------------------------------------------------------------------------------
    def sample(self, keys: np.ndarray) -> np.ndarray:
        """Class indices [n, T] drawn from the prior, one row per sample key."""
        values = np.empty((keys.shape[0], self.steps), np.int32)
        sizes = np.array(self.family_sizes[:self.char_start], np.int64)
        if isinstance(self.text, WordsPrior):
            t = self.text
            _sample_words(keys, sizes, self.num_chars_lo, t.tuple_cdf, t.tuple_lengths, t.length_start,
                          t.length_count, t.word_cumulative, t.word_chars, values)
        else:
            _sample_chars(keys, sizes, len(self.style.alphabet), self.num_chars_lo, values)
        return values


@functools.lru_cache(maxsize=32)
def codec_of(style: Style) -> LatentCodec:
    """The (cached) codec of a style."""
    return LatentCodec(style)


@ngjit_parallel
def _sample_chars(keys, sizes, n_alpha, nc_lo, values):
    """values [n, S + max_chars]: scalar j uniform over sizes[j] (counter j), char c uniform (counter S + c)."""
    S = sizes.shape[0]
    for i in prange(keys.shape[0]):
        k = hash2(keys[i], STREAM_LATENT)
        for j in range(S):
            values[i, j] = randint(k, j, 0, sizes[j] - 1)
        n = values[i, 0] + nc_lo
        for c in range(values.shape[1] - S):
            values[i, S + c] = randint(k, S + c, 0, n_alpha - 1) if c < n else -1


@ngjit_parallel
def _sample_words(keys, sizes, nc_lo, tuple_cdf, tuple_lengths, length_start, length_count, word_cumulative,
                  word_chars, values):
    """values [n, S + max_chars]: the tuple of word lengths from its categorical (counter 0), scalars j >= 1
    uniform (counter j), word w among words of its length in proportion to its weight (counter S + w; with
    weights all 1 this is the uniform index floor(u x count))."""
    S = sizes.shape[0]
    for i in prange(keys.shape[0]):
        k = hash2(keys[i], STREAM_LATENT)
        for j in range(1, S):
            values[i, j] = randint(k, j, 0, sizes[j] - 1)
        t = min(np.searchsorted(tuple_cdf, uniform(k, 0), side="right"), tuple_cdf.shape[0] - 1)
        pos = S
        for w in range(tuple_lengths.shape[1]):
            length = tuple_lengths[t, w]
            start, count = length_start[length], length_count[length]
            block = word_cumulative[start:start + count]
            row = start + min(np.searchsorted(block, uniform(k, S + w) * block[count - 1], side="right"), count - 1)
            for c in range(length):
                values[i, pos] = word_chars[row, c]
                pos += 1
        values[i, 0] = pos - S - nc_lo
        for c in range(pos, values.shape[1]):
            values[i, c] = -1


@dataclass(frozen=True)
class Site:
    address: str
    value: object
    log_prob: float


@dataclass(frozen=True)
class Trace:
    sites: tuple[Site, ...]
    key: int
    index: int

    @property
    def log_prior(self) -> float:
        return float(sum(s.log_prob for s in self.sites))

    @property
    def text(self) -> str:
        return "".join(str(s.value) for s in self.sites if s.address.startswith("char/"))

    def __getitem__(self, address: str):
        for s in self.sites:
            if s.address == address:
                return s.value
        raise KeyError(address)


@dataclass(frozen=True)
class TraceBatch:
    """n traces of one style: class indices per address plus each sample's key and global index."""

    codec: LatentCodec
    classes: np.ndarray     # int32 [n, T], -1 past num_chars
    keys: np.ndarray        # uint64 [n]
    indices: np.ndarray     # int64 [n]

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def value(self, address: str) -> np.ndarray:
        """int32 [n]: a scalar latent's values (fonts as indices into the style's fonts)."""
        j = self.codec.addresses.index(address)
        return (self.classes[:, j] + self.codec._offsets[j]).astype(np.int32)

    # what the renderer reads
    num_chars = property(lambda self: self.value("num_chars"))
    font = property(lambda self: self.value("font"))
    font_size = property(lambda self: self.value("font_size"))
    kerning = property(lambda self: self.value("kerning"))
    chars = property(lambda self: np.ascontiguousarray(self.classes[:, self.codec.char_start:], np.int32))

    def texts(self) -> list[str]:
        return self.codec.texts(self.classes)

    def log_prior(self) -> np.ndarray:
        """log p(trace) per sample, float64 [n]."""
        return self.codec.log_prior(self.classes)

    def trace(self, i: int) -> Trace:
        """Sample i as Sites; num_chars carries log p(length), char/0 log p(string | length)."""
        c = self.codec
        row = self.classes[i]
        text = c.texts(row[None])[0]
        sites = [Site("num_chars", len(text), c.text.log_prob_length(len(text)))]
        for j, address in enumerate(c.addresses[1:c.char_start], start=1):
            support = c.supports[address]
            sites.append(Site(address, support[row[j]], -math.log(len(support))))
        rest = float(c.log_prior(row[None])[0]) - sum(s.log_prob for s in sites)
        sites += [Site(f"char/{j}", ch, rest if j == 0 else 0.0) for j, ch in enumerate(text)]
        return Trace(tuple(sites), int(self.keys[i]), int(self.indices[i]))

    def take(self, idx) -> TraceBatch:
        return TraceBatch(self.codec, np.ascontiguousarray(self.classes[idx]), np.ascontiguousarray(self.keys[idx]),
                          np.ascontiguousarray(self.indices[idx]))


def sample_traces(style: Style, seed: int, first_index: int, n: int) -> TraceBatch:
    """Draw n traces from the style's prior for global indices first_index .. first_index + n - 1."""
    return traces_at(style, seed, np.arange(first_index, first_index + n, dtype=np.int64))


def traces_at(style: Style, seed: int, indices: np.ndarray) -> TraceBatch:
    """The prior's traces for any global sample indices: the same (seed, index) gives the same trace whichever
    call draws it."""
    indices = np.asarray(indices, np.int64)
    keys = sample_keys(seed, indices)
    codec = codec_of(style)
    return TraceBatch(codec, codec.sample(keys), keys, indices)


VALIDATION_SALT = np.uint64(0x56414C4944415445)    # "VALIDATE"


def validation_keys(n: int) -> np.ndarray:
    """Keys of validation samples: a key domain of their own (one more mixing round, salted), so no training
    seed's keys coincide with them."""
    return _mix64_np(sample_keys(0, np.arange(n)) ^ VALIDATION_SALT)


def traces_from_classes(style: Style, classes: np.ndarray, keys: np.ndarray) -> TraceBatch:
    """Traces from class indices [n, T] (e.g. a proposal network's output) and nuisance keys."""
    n = classes.shape[0]
    return TraceBatch(codec_of(style), np.ascontiguousarray(classes, np.int32), np.asarray(keys, np.uint64),
                      np.arange(n, dtype=np.int64))


def traces_from_texts(style: Style, texts: list[str], *, font: int = 0, font_size: int | None = None,
                      kerning: int | None = None, keys: np.ndarray | None = None) -> TraceBatch:
    """Traces with given strings (and fixed other latents), e.g. to render a chosen text."""
    codec = codec_of(style)
    classes = codec.encode_texts(texts)
    classes[:, codec.addresses.index("font")] = font
    for address, value in (("font_size", font_size), ("kerning", kerning)):
        if value is not None:
            classes[:, codec.addresses.index(address)] = codec.supports[address].index(value)
    keys = sample_keys(0, np.arange(len(texts))) if keys is None else keys
    return traces_from_classes(style, classes, keys)
