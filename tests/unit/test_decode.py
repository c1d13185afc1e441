"""Decoding on the text prior's support (trainer/decode.py), the prior swap and calibration, on toy word styles
small enough to enumerate."""
import math
import re

import numpy as np
import pytest
import torch

from synthstream.errors import UserError
from synthstream.generate import generate
from synthstream.style import load_style, parse_style
from synthstream.trace import codec_of
from trainer.decode import beam_search, sample_on_support
from trainer.evaluate import (
    calibration,
    calibration_set,
    escape,
    fit_temperature,
    write_report,
)
from trainer.exact import all_traces
from trainer.infer import (
    Posterior,
    beam_posteriors,
    infer,
    prior_correction,
    swap_text_prior,
)
from trainer.model import build_model

WORDS = ["A", "AB", "BC", "C", "D", "DA"]       # "ABC" parses as A|BC and AB|C: the trie must keep both


def words_style(tmp_path, words=WORDS, name="toywords"):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n")
    raw = load_style("tiny").to_raw()
    raw.update(name=name, text={"prior": "words", "words": 2, "word_length": [1, 2], "word_list": {"file": str(path)},
                                "case": "as-is"})
    raw["latents"] = {"num_chars": [2, 4], "font_size": [18, 18], "kerning": [0, 0]}
    return parse_style(raw, "test")


def letters_style():
    raw = load_style("tiny").to_raw()
    raw["latents"] = {"num_chars": [2, 4], "font_size": [18, 18], "kerning": [0, 0]}
    return parse_style(raw, "test")


def support_strings(style):
    text = codec_of(style).text
    return {a + b for a in text.words for b in text.words if 2 <= len(a + b) <= 4}


@torch.no_grad()
def exact_q(model, style, image):
    """log q of every trace of the style (one per string here: the other scalars have one value)."""
    traces = all_traces(style)
    x = torch.from_numpy(image)[None].expand(len(traces), *image.shape)
    nll, _ = model(x, torch.from_numpy(traces))
    return dict(zip(codec_of(style).texts(traces), (-nll.double()).tolist()))


@pytest.fixture(scope="module", params=["cpu", "cpu-columns"])
def toy(tmp_path_factory, request):
    torch.manual_seed(0)
    style = words_style(tmp_path_factory.mktemp("words"))
    model = build_model(request.param, style).eval()
    images, _ = generate(style, 3, 0, 6)
    return model, style, images


def test_step_api_matches_teacher_forcing(toy):
    model, style, images = toy
    _, traces = generate(style, 3, 0, 6)
    targets = torch.from_numpy(traces.classes.astype(np.int64))
    nll, _ = model(torch.from_numpy(images), targets)
    state, prev, log_q = model.start(torch.from_numpy(images)), None, torch.zeros(6)
    for t in range(targets.shape[1]):
        logp, state = model.step(state, prev, t)
        v = targets[:, t]
        log_q += torch.where(v >= 0, logp.gather(1, v.clamp(min=0)[:, None]).squeeze(1), 0.0)
        prev = v
    torch.testing.assert_close(-log_q, nll, rtol=1e-5, atol=1e-5)


def test_beam_and_restricted_samples_stay_on_the_support(toy):
    model, style, images = toy
    support = support_strings(style)
    codec = codec_of(style)
    beams = beam_search(model, style, torch.from_numpy(images), width=4)
    texts = codec.texts(beams.classes.reshape(-1, codec.steps))
    alive = np.isfinite(beams.log_q.reshape(-1))
    assert alive.all() and {t for t, a in zip(texts, alive) if a} <= support
    values, log_q = sample_on_support(model, style, torch.from_numpy(images), 50, torch.Generator().manual_seed(0))
    assert set(codec.texts(values)) <= support and np.isfinite(log_q).all() and (log_q <= 0).all()


def test_wide_beam_is_exact_q_over_the_support(toy):
    """Width >= |support|: the beam holds every string of the support (both parses of ambiguous prefixes
    kept), its top-1 is the exact argmax of q over the support, its probabilities q renormalised there."""
    model, style, images = toy
    support = support_strings(style)
    posts = beam_posteriors(model, style, images, width=64)
    for image, post in zip(images, posts):
        assert set(post.strings) == support
        q = {s: v for s, v in exact_q(model, style, image).items() if s in support}
        z = np.logaddexp.reduce(list(q.values()))
        assert post.map == max(q, key=q.get)
        for s, p in zip(post.strings, post.probs):
            assert p == pytest.approx(math.exp(q[s] - z), rel=1e-4, abs=1e-7)
    narrow = beam_posteriors(model, style, images, width=3)        # approximate: on the support, never above
    for image, post, wide in zip(images, narrow, posts):
        q = exact_q(model, style, image)
        assert post.map in support and q[post.map] <= q[wide.map] + 1e-6


class Stepwise:
    """The network stepped by `ProposalNet.start`/`step`, every hypothesis' state copied on a take: the
    reference that the beam's own step (`beam_start`/`beam_step`) must read like."""

    def __init__(self, model) -> None:
        self.model = model

    def beam_start(self, images):
        return self.model.start(images)

    def beam_step(self, state, prev, t):
        return self.model.step(state, prev, t)


def test_beam_step_matches_step(toy):
    """Hypotheses reordered within their images (duplicated parents, dropped rows): beam_step gives step's
    log-probabilities."""
    model, style, images = toy
    x, gen = torch.from_numpy(images), torch.Generator().manual_seed(1)
    ref, beam, prev = model.start(x), model.beam_start(x), None
    for t in range(codec_of(style).steps):
        want, ref = model.step(ref, prev, t)
        got, beam = model.beam_step(beam, prev, t)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        per, n = want.shape[0] // len(images), len(images)
        rows = (torch.arange(n)[:, None] * per + torch.randint(per, (n, 3), generator=gen)).reshape(-1)
        ref, beam = ref.take(rows), beam.take(rows)
        prev = torch.randint(want.shape[1], (len(rows),), generator=gen)


def test_beam_reads_real_captchas_as_the_stepwise_network(real_captchas):
    """The shipped wikipedia reader's beam on real captchas: the same reading, every string's probability
    within 1e-5."""
    from trainer.reader import load_reader

    reader = load_reader("wikipedia", method="beam", shifts=1)
    x, _ = reader.images(sorted((real_captchas / "wikipedia").glob("*.png"))[:12])
    got = beam_posteriors(reader.model, reader.style, x, 16, reader.trained)
    want = beam_posteriors(Stepwise(reader.model), reader.style, x, 16, reader.trained)
    for g, w in zip(got, want):
        pg, pw = dict(zip(g.strings, g.probs)), dict(zip(w.strings, w.probs))
        assert g.map == w.map and all(abs(pg.get(s, 0) - pw.get(s, 0)) <= 1e-5 for s in pg.keys() | pw)


def test_prior_swap(toy):
    """q trained under uniform letters, inferred under the word prior: p(s | x) ∝ q(s | x) p(s) / p_train(s)."""
    model, words, images = toy
    letters = letters_style()
    swapped = swap_text_prior(letters, words)
    assert swapped.params["text"] == words.params["text"] and swapped.params["warp"] == letters.params["warp"]
    codec = codec_of(swapped)
    rows = codec.encode_texts(["ABC", "DA", "BB"])
    corr = prior_correction(swapped, letters, rows)
    z = codec.text.z
    # p_train = 1/3 * 4^-n; p_new = splits / Z
    assert corr[0] == pytest.approx(math.log(2 / z) - math.log(1 / 3 * 4.0 ** -3))
    assert corr[1] == pytest.approx(math.log(1 / z) - math.log(1 / 3 * 4.0 ** -2))   # D|A only
    assert corr[2] == -math.inf
    assert (prior_correction(words, words, rows[:2]) == 0).all()
    posts = beam_posteriors(model, swapped, images, width=64, train_style=letters)
    for image, post in zip(images, posts):
        q = exact_q(model, words, image)
        score = {s: q[s] + prior_correction(swapped, letters, codec.encode_texts([s]))[0] for s in post.strings}
        zz = np.logaddexp.reduce(list(score.values()))
        assert post.probs == pytest.approx([math.exp(score[s] - zz) for s in post.strings], rel=1e-4, abs=1e-7)
    other = load_style("wikipedia")
    with pytest.raises(UserError, match="alphabet"):
        swap_text_prior(letters, other)


def test_importance_sampling_puts_no_mass_off_the_support(toy):
    model, style, images = toy
    support = support_strings(style)
    for p in infer(model, style, images, method="is", particles=40):
        assert set(p.strings) <= support and sum(p.probs) == pytest.approx(1.0)
    for p in infer(model, style, images, method="beam", beam_width=8):
        assert set(p.strings) <= support and sum(p.probs) == pytest.approx(1.0)


def test_temperature_fitted_on_synthetic_data_reduces_ece():
    """Posteriors three times too sharp (logits x3 of the ones the truth is drawn from): T comes out ~3 and
    the ECE of the MAP probability drops."""
    rng = np.random.default_rng(0)
    posts, truths = [], []
    for _ in range(2000):
        logits = rng.normal(0, 1.2, 5)
        true_p = np.exp(logits) / np.exp(logits).sum()
        sharp = np.exp(3 * logits) / np.exp(3 * logits).sum()
        order = np.argsort(-sharp)
        posts.append(Posterior([str(i) for i in order], list(sharp[order])))
        truths.append(str(rng.choice(5, p=true_p)))
    T = fit_temperature(posts, truths)
    correct = np.array([p.map == t for p, t in zip(posts, truths)])
    before = calibration(np.array([p.map_prob for p in posts]), correct)[0]
    after = calibration(np.array([p.tempered(T).map_prob for p in posts]), correct)[0]
    assert 2.3 < T < 3.8 and after < before / 2 and after < 0.03


def test_calibration_set_is_labelled_and_has_its_own_seed():
    style = load_style("tiny")
    items = calibration_set(style, 16)
    again = calibration_set(style, 16)
    assert [it.label for it in items] == [it.label for it in again]
    assert all((a.image == b.image).all() for a, b in zip(items, again))
    train, _ = generate(style, 0, 0, 16)
    assert not any((it.image == im).all() for it, im in zip(items, train))


def test_failures_page_escapes_labels(tmp_path):
    nasty = "a|b<i>*_`#[x]\\&\n"
    assert re.fullmatch(r"(?:[abix]|&#\d+;)*", escape(nasty)), escape(nasty)
    from trainer.evaluate import evaluate
    from trainer.images import Loaded
    style = load_style("tiny")
    images, _ = generate(style, 0, 0, 2)
    model = build_model("cpu", style).eval()
    items = [Loaded(path=tmp_path / f"{i}.png", image=im, label=lab) for i, (im, lab) in
             enumerate(zip(images, ["A|B", "<b>"]))]
    report, rows = evaluate(model, style, items, method="proposal", particles=4, bandwidth=None)
    write_report(tmp_path / "r", report, rows, "t|itle")
    table = [ln for ln in (tmp_path / "r" / "failures.md").read_text().splitlines() if ln.startswith("| ![")]
    assert len(table) == 2 and all(ln.count("|") == 8 for ln in table)
    assert "<b>" not in (tmp_path / "r" / "failures.md").read_text()


def test_an_importance_sampling_report_names_its_bandwidth():
    from trainer.evaluate import evaluate
    from trainer.images import Loaded
    from trainer.infer import calibrated_bandwidth
    style = load_style("tiny")
    images, traces = generate(style, 0, 0, 2)
    items = [Loaded(path=f"{i}", image=im, label=lab) for i, (im, lab) in enumerate(zip(images, traces.texts()))]
    model = build_model("cpu", style).eval()
    assert evaluate(model, style, items, method="is", particles=4, bandwidth=None)[0]["bandwidth"] == \
        calibrated_bandwidth(style)
    assert evaluate(model, style, items, method="is", particles=4, bandwidth=0.5)[0]["bandwidth"] == 0.5
    assert evaluate(model, style, items, method="proposal", particles=4, bandwidth=0.5)[0]["bandwidth"] is None
