"""Text priors: which strings a style draws, with an exact, cheap log p(string).

* `chars`: `num_chars` uniform over its range, then each character uniform over the alphabet (the paper's
  prior). p(s) = 1/|lengths| * |alphabet|^-len(s).
* `words`: `words` words, each drawn from a word list (entries with characters outside the style's alphabet
  after the case rule are dropped, duplicates merged unless `count_duplicates`), keeping only words whose lengths lie in
  `word_length` (and, optionally, not starting with a letter of `not_first`, and, with `doubled_ends = false`,
  not starting or ending with a doubled letter: MediaWiki's captcha.py filter), joined without a separator;
  tuples whose total length falls outside `latents.num_chars` are excluded. Every valid tuple of words is
  equally likely, so p(s) = (ways to split s into valid words) / Z, with Z the number of valid tuples.
  With `count_duplicates = true` a word listed k times (after the case rule: `Mark` and `mark`) has weight k,
  as for a generator that draws lines of the raw list, and a tuple's weight is the product of its words'
  weights (p(s) = sum over the splits of s of that product / Z, Z the total weight). Sampling draws the tuple
  of word lengths from its exact categorical (weights = product of the total word weight of each length),
  then each word among words of its length in proportion to its weight: exact, no rejection.

The traced addresses stay characters (`num_chars`, `char/i`): they are what the image shows and what the
proposal network reads best; the word structure lives in the prior, which inference uses to restrict and
weigh strings (trainer/decode.py).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthstream.errors import UserError, not_installed

DICT_DIRS = ("/usr/share/dict",)


@dataclass(frozen=True)
class WordListSpec:
    file: str                 # a file name searched for in $SYNTHSTREAM_WORDS_PATH then /usr/share/dict, or a path
    package: str = ""         # Debian package that ships it, named in the error when it is missing


def find_word_list(spec: WordListSpec, style_name: str = "") -> Path:
    """The path of a word list. Raises UserError naming the file and how to install it."""
    if "/" in spec.file:
        candidates = [Path(spec.file)]
    else:
        dirs = [*filter(None, os.environ.get("SYNTHSTREAM_WORDS_PATH", "").split(os.pathsep)), *DICT_DIRS]
        candidates = [Path(d) / spec.file for d in dirs]
    for path in candidates:
        if path.is_file():
            return path
    raise not_installed("word list", spec.file, spec.package, style_name, "SYNTHSTREAM_WORDS_PATH")


@functools.lru_cache(maxsize=8)
def _read_words(path: str, alphabet: str, case: str, lo: int, hi: int, not_first: str, doubled_ends: bool,
                count_duplicates: bool, stamp: tuple) -> tuple[tuple[str, ...], tuple[int, ...], str]:
    """Usable words (sorted by length, then text), their weights (how often each is listed, or all 1) and the
    sha256 of that vocabulary (`stamp`: the file's size and mtime, so an edited file is read again)."""
    try:
        raw = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"word list {path!r} cannot be read ({e})") from None
    allowed = set(alphabet)
    words: dict[str, int] = {}
    for line in raw.splitlines():
        w = line.strip()
        if not w or "'" in w:
            continue
        w = w.lower() if case == "lower" else w.upper() if case == "upper" else w
        if not (lo <= len(w) <= hi and set(w) <= allowed) or w[0] in not_first:
            continue
        if doubled_ends or len(w) < 2 or (w[0] != w[1] and w[-1] != w[-2]):
            words[w] = words.get(w, 0) + 1 if count_duplicates else 1
    vocab = tuple(sorted(words, key=lambda w: (len(w), w)))
    weights = tuple(words[w] for w in vocab)
    listed = "\n".join(w if k == 1 else f"{w} {k}" for w, k in zip(vocab, weights))   # unweighted: the old digest
    return vocab, weights, hashlib.sha256(listed.encode()).hexdigest()


class CharsPrior:
    """Uniform length, uniform characters."""

    kind = "chars"

    def __init__(self, alphabet: str, num_chars: tuple[int, int]) -> None:
        self.alphabet, self.lengths = alphabet, num_chars
        self._log_len = -math.log(num_chars[1] - num_chars[0] + 1)
        self._log_char = -math.log(len(alphabet))

    def log_prob(self, text: str) -> float:
        if not self.contains(text):
            return -math.inf
        return self._log_len + len(text) * self._log_char

    def log_prob_length(self, n: int) -> float:
        return self._log_len if self.lengths[0] <= n <= self.lengths[1] else -math.inf

    def contains(self, text: str) -> bool:
        return self.lengths[0] <= len(text) <= self.lengths[1] and set(text) <= set(self.alphabet)


class WordsPrior:
    """`n_words` words from a vocabulary, uniform over valid tuples (see the module docstring)."""

    kind = "words"

    def __init__(self, alphabet: str, num_chars: tuple[int, int], n_words: int, vocab: tuple[str, ...],
                 digest: str, weights: tuple[int, ...] | None = None) -> None:
        self.alphabet, self.lengths, self.n_words, self.vocab, self.digest = alphabet, num_chars, n_words, vocab, digest
        self.weight = dict(zip(vocab, weights or [1] * len(vocab)))
        self.words = frozenset(vocab)
        length_weight: dict[int, int] = {}                  # total word weight per length
        for w in vocab:
            length_weight[len(w)] = length_weight.get(len(w), 0) + self.weight[w]
        tuples = [t for t in itertools.product(sorted(length_weight), repeat=n_words)
                  if num_chars[0] <= sum(t) <= num_chars[1]]
        if not tuples:
            raise UserError(f"no {n_words} words of lengths {sorted(length_weight)} have a total length within "
                            f"num_chars {list(num_chars)}")
        weights = np.array([math.prod(length_weight[n] for n in t) for t in tuples], np.float64)
        self.z = float(weights.sum())                     # total weight of the valid word tuples
        self.tuple_lengths = np.array(tuples, np.int32)   # [K, n_words]
        self.tuple_cdf = np.cumsum(weights) / self.z
        self.max_word = max(length_weight)
        # words as alphabet indices, grouped by length: rows start[len] .. start[len] + length_count[len]
        index = {c: i for i, c in enumerate(alphabet)}
        self.word_chars = np.full((len(vocab), self.max_word), -1, np.int32)
        for i, w in enumerate(vocab):
            self.word_chars[i, :len(w)] = [index[c] for c in w]
        self.length_start = np.zeros(self.max_word + 2, np.int64)
        self.length_count = np.zeros(self.max_word + 2, np.int64)
        self.word_cumulative = np.zeros(len(vocab), np.float64)   # running weight within each length's rows
        for i, w in enumerate(vocab):
            if self.length_count[len(w)] == 0:
                self.length_start[len(w)] = i
            self.length_count[len(w)] += 1
            first = i == self.length_start[len(w)]
            self.word_cumulative[i] = (0.0 if first else self.word_cumulative[i - 1]) + self.weight[w]
        self._length_mass: dict[int, float] = {}
        for t, wgt in zip(tuples, weights):
            self._length_mass[sum(t)] = self._length_mass.get(sum(t), 0.0) + wgt / self.z

    def split_weight(self, text: str, n: int | None = None) -> float:
        """Sum over the ways to cut `text` into `n` (default: n_words) words of the product of their weights."""
        n = self.n_words if n is None else n
        if n == 1:
            return float(self.weight.get(text, 0))
        return sum(self.weight[text[:i]] * self.split_weight(text[i:], n - 1)
                   for i in range(1, len(text)) if text[:i] in self.words)

    def log_prob(self, text: str) -> float:
        if not self.lengths[0] <= len(text) <= self.lengths[1]:
            return -math.inf
        k = self.split_weight(text)
        return math.log(k / self.z) if k else -math.inf

    def log_prob_length(self, n: int) -> float:
        mass = self._length_mass.get(n, 0.0)
        return math.log(mass) if mass > 0 else -math.inf

    def contains(self, text: str) -> bool:
        return self.log_prob(text) > -math.inf


TextPrior = CharsPrior | WordsPrior


def text_prior(style) -> TextPrior:
    """The text prior a style declares (its `[text]` table)."""
    t = style.params["text"]
    num_chars = style.latent_range("num_chars")
    if t["prior"] == "chars":
        return CharsPrior(style.alphabet, num_chars)
    spec = WordListSpec(*t["word_list"])
    path = find_word_list(spec, style.name)
    lo, hi = t["word_length"]
    stat = path.stat()
    vocab, weights, digest = _read_words(str(path), style.alphabet, t["case"], lo, hi, t["not_first"],
                                         t["doubled_ends"], t["count_duplicates"], (stat.st_size, stat.st_mtime_ns))
    if not vocab:
        raise UserError(f"style {style.name!r}: word list {str(path)!r} has no word of {lo}-{hi} characters "
                        f"from the alphabet")
    pinned = t.get("sha256", "")
    if pinned and pinned != digest:
        raise UserError(f"style {style.name!r}: word list {str(path)!r} on this machine differs from the one the "
                        f"style was made with (sha256 {digest[:12]} != {pinned[:12]}); install the same list")
    return WordsPrior(style.alphabet, num_chars, t["words"], vocab, digest, weights)
