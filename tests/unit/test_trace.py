import numpy as np
import pytest

from synthstream.style import load_style
from synthstream.trace import codec_of, sample_traces, traces_from_texts


def test_log_prior_is_the_sum_of_site_log_probs():
    style = load_style("wikipedia_letters")
    traces = sample_traces(style, 5, 0, 50)
    lp = traces.log_prior()
    for i in range(50):
        t = traces.trace(i)
        assert t.log_prior == pytest.approx(lp[i])
        assert [s.address for s in t.sites][:4] == ["num_chars", "font", "font_size", "kerning"]
        assert len(t.sites) == 4 + t["num_chars"]
    # uniform prior: log p = -log(3 * 3 * 6 * 2) - n log 26
    n = traces.num_chars
    np.testing.assert_allclose(lp, -np.log(3 * 3 * 6 * 2) - n * np.log(26))


def test_prior_marginals_cover_each_support_uniformly():
    style = load_style("facebook")
    codec = codec_of(style)
    t = sample_traces(style, 0, 0, 20_000)
    for values, support in [(t.num_chars, codec.support("num_chars")), (t.font_size, codec.support("font_size")),
                            (t.kerning, codec.support("kerning")), (t.font, range(len(style.fonts)))]:
        freq = np.array([(values == v).mean() for v in support])
        assert freq.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(freq, 1 / len(support), atol=0.02)
    letters = t.chars[t.chars >= 0]
    assert np.bincount(letters, minlength=61).min() > 0.6 * letters.size / 61
    assert ((t.chars >= 0).sum(1) == t.num_chars).all()


def test_texts_and_traces_agree():
    style = load_style("lepture")
    traces = sample_traces(style, 1, 10, 20)
    texts = traces.texts()
    assert all(len(s) == 4 and set(s) <= set(style.alphabet) for s in texts)
    assert [traces.trace(i).text for i in range(20)] == texts
    assert traces.trace(3).index == 13


def test_traces_from_texts_validates_the_alphabet():
    style = load_style("tiny")
    t = traces_from_texts(style, ["AB", "C"])
    assert t.texts() == ["AB", "C"]
    with pytest.raises(ValueError, match="not in style 'tiny'"):
        traces_from_texts(style, ["AZ"])
    with pytest.raises(ValueError, match="length 3"):
        traces_from_texts(style, ["ABC"])
