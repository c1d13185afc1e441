"""Text priors: exact p(string) and a sampler that draws from it."""
import math

import numpy as np
import pytest

from synthstream.errors import UserError
from synthstream.style import load_style, parse_style
from synthstream.text import WordsPrior
from synthstream.trace import codec_of, sample_traces


def words_style(tmp_path, words, **text):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n")
    raw = load_style("tiny").to_raw()
    raw["alphabet"] = "abcdefgh"
    raw["latents"]["num_chars"] = [2, 4]
    raw["text"] = {"prior": "words", "words": 2, "word_list": {"file": str(path)}, "word_length": [1, 3], **text}
    return parse_style(raw, "test")


def test_words_prior_is_exact_and_its_sampler_matches_it(tmp_path):
    style = words_style(tmp_path, ["a", "ab", "b", "abc", "Ab", "a'b", "zz"])
    prior = codec_of(style).text
    assert isinstance(prior, WordsPrior)
    assert set(prior.vocab) == {"a", "ab", "b", "abc"}             # case folded, apostrophes and foreign dropped
    # valid pairs: total length 2..4 out of {a, b, ab, abc}: every pair except (abc, ab) and (ab, abc), (abc, abc)
    assert prior.z == 16 - 3
    # "aab" splits as a|ab only; "ab" + "b" = "abb"; "abab" = ab|ab; "ab" as a|b
    assert prior.log_prob("ab") == pytest.approx(math.log(1 / 13))
    assert prior.log_prob("abab") == pytest.approx(math.log(1 / 13))
    assert prior.log_prob("abcab") == -math.inf and prior.log_prob("hh") == -math.inf
    traces = sample_traces(style, 3, 0, 20_000)
    texts = traces.texts()
    support = {a + b for a in prior.vocab for b in prior.vocab if 2 <= len(a + b) <= 4}
    assert set(texts) <= support
    freq = {t: texts.count(t) / len(texts) for t in support}
    for t in support:
        assert freq[t] == pytest.approx(math.exp(prior.log_prob(t)), abs=0.01)
    np.testing.assert_allclose(traces.log_prior(), [prior.log_prob(t) - math.log(3) for t in texts])  # 3 sizes
    assert all(traces.trace(i).log_prior == pytest.approx(traces.log_prior()[i]) for i in range(20))


def test_words_can_be_filtered_as_mediawikis_generator_does(tmp_path):
    words = ["abc", "bad", "hag", "aab", "abb", "cab", "a"]
    assert set(codec_of(words_style(tmp_path, words)).text.vocab) == set(words)
    prior = codec_of(words_style(tmp_path, words, not_first="h", doubled_ends=False)).text
    assert set(prior.vocab) == {"abc", "bad", "cab", "a"}                   # hag: h first; aab, abb: doubled ends
    assert prior.log_prob("abca") > -math.inf and prior.log_prob("aaba") == -math.inf
    raw = load_style("tiny").to_raw()
    raw["text"] = {"not_first": "x"}
    with pytest.raises(UserError, match="text.not_first.*only a 'words' prior"):
        parse_style(raw, "t")
    raw["text"] = {"prior": "words", "word_list": {"file": "x"}, "doubled_ends": "no"}
    with pytest.raises(UserError, match="text.doubled_ends"):
        parse_style(raw, "t")


def test_duplicates_can_count_as_a_generator_drawing_raw_lines_does(tmp_path):
    words = ["a", "A", "b", "ab", "c"]                     # "a" is listed twice once case is folded
    merged = codec_of(words_style(tmp_path, words)).text
    assert merged.z == 3 * 3 + 3 + 3 + 1 and merged.weight["a"] == 1
    style = words_style(tmp_path, words, count_duplicates=True)
    prior = codec_of(style).text
    assert prior.weight == {"a": 2, "ab": 1, "b": 1, "c": 1}
    # length-1 weight 4, length-2 weight 1: pairs of total length 2..4: 4*4 + 4*1 + 1*4 + 1*1 = 25
    assert prior.z == 25
    assert prior.log_prob("aa") == pytest.approx(math.log(4 / 25))           # a|a
    assert prior.log_prob("aab") == pytest.approx(math.log((2 * 1 + 0) / 25))  # a|ab only (aa is not a word)
    assert prior.log_prob("abc") == pytest.approx(math.log(1 / 25))           # ab|c
    texts = sample_traces(style, 5, 0, 30_000).texts()
    for t in ("aa", "ab", "bc", "aab", "abab"):
        assert texts.count(t) / len(texts) == pytest.approx(math.exp(prior.log_prob(t)), abs=0.01), t
    assert merged.digest != prior.digest


def test_wikipedia_draws_two_dictionary_words_of_four_or_five_letters():
    style = load_style("wikipedia")
    prior = codec_of(style).text
    texts = sample_traces(style, 0, 0, 4000).texts()
    lengths = np.bincount([len(t) for t in texts], minlength=11)[8:] / len(texts)
    np.testing.assert_allclose(lengths, [0.119, 0.452, 0.429], atol=0.03)
    assert all(prior.split_weight(t) >= 1 for t in texts[:200])
    assert prior.log_prob("allowgates") > -math.inf and prior.log_prob("qqqqqqqq") == -math.inf
    assert not any(w[0] == "f" or w[0] == w[1] or w[-1] == w[-2] for w in prior.vocab)   # MediaWiki's filter
    assert prior.log_prob("womanchews") > -math.inf and prior.log_prob("womanchess") == -math.inf
    assert prior.weight["mark"] == 2 and prior.weight["gate"] == 1       # `Mark` and `mark` are two lines


def test_mediawikis_word_rules_fit_the_real_wikipedia_labels(real_captchas):
    """The README's evidence for MediaWiki's word filter and for counting duplicates, from the dev labels."""
    raw = load_style("wikipedia").to_raw()
    variants = {}
    for name, text in {"plain": {"not_first": "", "doubled_ends": True, "count_duplicates": False},
                       "filtered": {"count_duplicates": False}, "counted": {}}.items():
        r = {**raw, "text": {**raw["text"], **text, "sha256": ""}}
        variants[name] = codec_of(parse_style(r, name)).text
    plain, filtered, counted = variants["plain"], variants["filtered"], variants["counted"]
    assert (len(plain.vocab), len(filtered.vocab)) == (9182, 8424)
    doubles = {w for w, k in counted.weight.items() if k > 1}                  # listed more than once
    assert len(doubles) == 367 and counted.weight["mark"] == 2 and counted.weight["wasp"] == 3
    labels = [p.stem for p in (real_captchas / "wikipedia").iterdir() if p.suffix == ".png"]
    in_plain = [t for t in labels if plain.log_prob(t) > -math.inf]
    assert len(labels) == 250 and len(in_plain) == 242
    assert all(filtered.log_prob(t) > -math.inf for t in in_plain)              # every one passes the filter
    expected_failing = len(in_plain) * (1 - (len(filtered.vocab) / len(plain.vocab)) ** 2)
    assert expected_failing == pytest.approx(38.3, abs=0.1)                      # ... where ~38 would not
    kept = len(filtered.vocab) / len(plain.vocab)
    assert 1 - kept == pytest.approx(0.083, abs=0.001) and 1 - kept ** 2 == pytest.approx(0.158, abs=0.001)
    assert 1e-19 < kept ** (2 * len(in_plain)) < 1e-18                          # none failing by chance
    words = [w for t in in_plain for w in next((t[:i], t[i:]) for i in (4, 5) if t[:i] in filtered.words
                                               and t[i:] in filtered.words)]
    assert len(words) == 484 and sum(w in doubles for w in words) == 43
    merged_share = len(doubles) / len(filtered.vocab)
    counted_share = sum(counted.weight[w] for w in doubles) / sum(counted.weight.values())
    assert 484 * merged_share == pytest.approx(21.1, abs=0.1) and 484 * counted_share == pytest.approx(40.5, abs=0.1)


def test_a_word_list_that_differs_from_the_styles_digest_is_refused(tmp_path):
    style = words_style(tmp_path, ["a", "b"])
    raw = style.to_raw()
    (tmp_path / "words.txt").write_text("a\nb\nab\n")
    with pytest.raises(UserError, match="differs from the one the style was made with"):
        parse_style(raw, "test")


def test_bad_text_fields_are_named(tmp_path):
    raw = load_style("tiny").to_raw()
    raw["text"] = {"prior": "syllables"}
    with pytest.raises(UserError, match="text.prior"):
        parse_style(raw, "t")
    raw["text"] = {"prior": "words", "word_list": {"file": str(tmp_path / "none.txt")}}
    with pytest.raises(UserError, match="word list .* not found"):
        parse_style(raw, "t")
