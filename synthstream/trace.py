"""Traces: the latents a style's prior draws, in program order, with their log-probabilities.

A batch of traces is a set of arrays (no per-sample Python): `num_chars`, `font` (index into the style's
fonts), `font_size` (points), `kerning` (pixels), `chars` (indices into the alphabet, -1 past num_chars),
plus each sample's `key` (from (seed, index), which also fixes its nuisance randomness) and `index`.
`TraceBatch.trace(i)` gives one sample as a read-only `Trace` of `Site`s with pyprob's words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import prange

from synthstream.render.jit import ngjit_parallel
from synthstream.render.rng import STREAM_LATENT, hash2, randint, sample_keys
from synthstream.style import Style


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
    keys: np.ndarray        # uint64 [n]
    indices: np.ndarray     # int64 [n]
    num_chars: np.ndarray   # int32 [n]
    font: np.ndarray        # int32 [n]
    font_size: np.ndarray   # int32 [n]
    kerning: np.ndarray     # int32 [n]
    chars: np.ndarray       # int32 [n, max_chars], -1 padded

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def texts(self, style: Style) -> list[str]:
        table = np.frombuffer(style.alphabet.encode("utf-32-le"), np.uint32)
        codes = np.where(self.chars >= 0, table[np.maximum(self.chars, 0)], 0).astype(np.uint32)
        return [row.tobytes().decode("utf-32-le").rstrip("\x00") for row in codes]

    def log_prior(self, style: Style) -> np.ndarray:
        """log p(trace) per sample, float64 [n] (uniform priors: a sum of -log |support|)."""
        t = style.log_prior_terms()
        return t["num_chars"] + t["font"] + t["font_size"] + t["kerning"] + self.num_chars * t["char"]

    def trace(self, style: Style, i: int) -> Trace:
        t = style.log_prior_terms()
        sites = [Site("num_chars", int(self.num_chars[i]), t["num_chars"]),
                 Site("font", style.fonts[int(self.font[i])].file, t["font"]),
                 Site("font_size", int(self.font_size[i]), t["font_size"]),
                 Site("kerning", int(self.kerning[i]), t["kerning"])]
        sites += [Site(f"char/{j}", style.alphabet[int(self.chars[i, j])], t["char"])
                  for j in range(int(self.num_chars[i]))]
        return Trace(tuple(sites), int(self.keys[i]), int(self.indices[i]))

    def take(self, idx) -> "TraceBatch":
        return TraceBatch(*(np.ascontiguousarray(getattr(self, f)[idx]) for f in self.__dataclass_fields__))


@ngjit_parallel
def _sample_latents(keys, nc_lo, nc_hi, n_fonts, fs_lo, fs_hi, k_lo, k_hi, n_alpha,
                    num_chars, font, font_size, kerning, chars):
    for i in prange(keys.shape[0]):
        k = hash2(keys[i], STREAM_LATENT)
        n = randint(k, 0, nc_lo, nc_hi)
        num_chars[i] = n
        font[i] = randint(k, 1, 0, n_fonts - 1)
        font_size[i] = randint(k, 2, fs_lo, fs_hi)
        kerning[i] = randint(k, 3, k_lo, k_hi)
        for j in range(chars.shape[1]):
            chars[i, j] = randint(k, 4 + j, 0, n_alpha - 1) if j < n else -1


def sample_traces(style: Style, seed: int, first_index: int, n: int) -> TraceBatch:
    """Draw n traces from the style's prior for global indices first_index .. first_index + n - 1."""
    indices = np.arange(first_index, first_index + n, dtype=np.int64)
    keys = sample_keys(seed, indices)
    num_chars, font, font_size, kerning = (np.empty(n, np.int32) for _ in range(4))
    chars = np.empty((n, style.max_chars), np.int32)
    (nc_lo, nc_hi), (fs_lo, fs_hi), (k_lo, k_hi) = (style.latent_range(a) for a in
                                                    ("num_chars", "font_size", "kerning"))
    _sample_latents(keys, nc_lo, nc_hi, len(style.fonts), fs_lo, fs_hi, k_lo, k_hi, len(style.alphabet),
                    num_chars, font, font_size, kerning, chars)
    return TraceBatch(keys, indices, num_chars, font, font_size, kerning, chars)


def traces_from_texts(style: Style, texts: list[str], *, font: int = 0, font_size: int | None = None,
                      kerning: int | None = None, keys: np.ndarray | None = None) -> TraceBatch:
    """Traces with given strings (and fixed other latents), e.g. to render a chosen text."""
    n = len(texts)
    chars = np.full((n, style.max_chars), -1, np.int32)
    for i, t in enumerate(texts):
        if not style.latent_range("num_chars")[0] <= len(t) <= style.max_chars:
            raise ValueError(f"text {t!r}: length {len(t)} outside the style's num_chars {style.latent_range('num_chars')}")
        bad = [c for c in t if c not in style.alphabet]
        if bad:
            raise ValueError(f"text {t!r}: characters {''.join(bad)!r} are not in style {style.name!r}'s alphabet")
        chars[i, :len(t)] = [style.alphabet.index(c) for c in t]
    keys = sample_keys(0, np.arange(n)) if keys is None else np.asarray(keys, np.uint64)
    size = font_size if font_size is not None else style.latent_range("font_size")[0]
    kern = kerning if kerning is not None else style.latent_range("kerning")[0]
    return TraceBatch(keys, np.arange(n, dtype=np.int64), np.array([len(t) for t in texts], np.int32),
                      np.full(n, font, np.int32), np.full(n, size, np.int32), np.full(n, kern, np.int32), chars)
