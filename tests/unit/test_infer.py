import numpy as np
import pytest
import torch

from synthstream.generate import generate, render
from synthstream.style import load_style
from synthstream.trace import codec_of, traces_from_classes
from trainer.evaluate import calibration, coverage_curve, levenshtein
from trainer.exact import all_traces, kl
from trainer.infer import (
    SHIFTS,
    _collect,
    abc_log_likelihood,
    calibrated_bandwidth,
    infer,
    projection,
    shifted,
)
from trainer.model import build_model


def test_network_values_map_back_to_renderable_traces():
    style = load_style("facebook")
    images, traces = generate(style, 3, 0, 6)
    from synthstream.batch import targets_of, to_record_batch
    values = targets_of(style, to_record_batch(style, images, traces, 3))
    again = traces_from_classes(style, values, traces.keys)
    np.testing.assert_array_equal(render(style, again), images)
    np.testing.assert_allclose(codec_of(style).log_prior(values), traces.log_prior())


def test_abc_likelihood_and_collecting_weights():
    style = load_style("tiny")
    images, _ = generate(style, 0, 0, 3)
    proj = projection(32, 48)
    assert proj.shape == (32 * 48, 256)
    same = abc_log_likelihood(images, images, proj, 1.0)
    np.testing.assert_array_equal(same, 0.0)
    other = abc_log_likelihood(images, images[::-1].copy(), proj, 1.0)
    assert other[0] < 0 and other[1] == 0
    strings, probs, ess = _collect(["A", "B", "A", "C"], np.log(np.array([0.4, 0.2, 0.3, 0.1])))
    assert strings == ["A", "B", "C"] and probs == pytest.approx([0.7, 0.2, 0.1])
    assert ess == pytest.approx(1 / (0.16 + 0.04 + 0.09 + 0.01))


def test_bandwidth_is_calibrated_per_style():
    tiny, wiki = calibrated_bandwidth(load_style("tiny")), calibrated_bandwidth(load_style("wikipedia"))
    assert 0.1 < tiny < wiki < 100


@pytest.mark.parametrize("method", ["proposal", "is"])
def test_posteriors_are_distributions(method):
    torch.manual_seed(0)
    style = load_style("tiny")
    model = build_model("cpu", style).eval()
    images, _ = generate(style, 0, 0, 3)
    posts = infer(model, style, images, method=method, particles=16)
    assert len(posts) == 3
    for p in posts:
        assert sum(p.probs) == pytest.approx(1.0) and p.probs == sorted(p.probs, reverse=True)
        assert set(p.map) <= set("ABCD") and 1 <= len(p.map) <= 2 and p.particles == 16
        if method == "is":
            assert 1.0 <= p.ess <= 16.0 + 1e-9 and np.isfinite(p.log_evidence)
        else:
            assert p.ess is None
    again = infer(model, style, images, method=method, particles=16)
    assert [p.strings for p in again] == [p.strings for p in posts]     # seeded: reproducible


def test_the_shift_ensemble_is_the_mixture_of_reads_of_moved_images():
    torch.manual_seed(0)
    style = load_style("tiny")
    model = build_model("cpu", style).eval()
    images, _ = generate(style, 0, 0, 3)
    moved = shifted(images, 1, -2)                                 # one row down, two columns left
    assert (moved[:, 1:, :-2] == images[:, :-1, 2:]).all() and (moved[:, 0, :-2] == images[:, 0, 2:]).all()
    assert (moved[:, :, -2:] == moved[:, :, -3:-2]).all()          # the columns moved in repeat the edge
    posts = infer(model, style, images, method="beam", beam_width=4, shifts=3)
    parts = [infer(model, style, shifted(images, dy, dx), method="beam", beam_width=4) for dy, dx in SHIFTS[:3]]
    for i, p in enumerate(posts):
        expected: dict[str, float] = {}
        for part in parts:
            for s, q in zip(part[i].strings, part[i].probs):
                expected[s] = expected.get(s, 0.0) + q / 3
        assert dict(zip(p.strings, p.probs)) == pytest.approx(expected) and p.probs == sorted(p.probs, reverse=True)
        assert sum(p.probs) == pytest.approx(1.0) and p.particles == 12
    assert [p.probs for p in infer(model, style, images, method="beam", beam_width=4, shifts=1)] == \
        [p.probs for p in parts[0]]
    for bad in ({"method": "is", "shifts": 2}, {"method": "beam", "shifts": len(SHIFTS) + 1}):
        with pytest.raises(ValueError, match="shifts"):
            infer(model, style, images, **bad)


def test_enumeration_and_kl():
    traces = all_traces(load_style("tiny"))
    assert traces.shape == (3 * (4 + 16), 6)
    assert kl({"A": 1.0}, {"A": 1.0}) == 0.0
    assert kl({"A": 0.5, "B": 0.5}, {"A": 1.0}) > 5
    with pytest.raises(ValueError, match="too many to enumerate"):
        all_traces(load_style("wikipedia"))


def test_metrics_helpers():
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "ab") == 2 and levenshtein("ab", "ab") == 0
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, True, True, False])
    ece, bins = calibration(conf, correct)
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert sum(b["n"] for b in bins) == 4
    curve = coverage_curve(conf, correct)
    assert curve[0]["coverage"] == 1.0 and curve[0]["accuracy"] == 0.75
    assert [c for c in curve if c["threshold"] >= 0.6][0]["accuracy"] == 1.0


def test_many_particles_are_chunked_and_absurd_counts_refused():
    torch.manual_seed(0)
    style = load_style("tiny")
    model = build_model("cpu", style).eval()
    images, _ = generate(style, 0, 0, 2)
    for method in ("proposal", "is"):
        posts = infer(model, style, images, method=method, particles=50, chunk=16)    # 4 chunks per image
        assert all(p.particles == 50 and sum(p.probs) == pytest.approx(1.0) for p in posts)
    from trainer.infer import MAX_PARTICLES
    with pytest.raises(ValueError, match="particles"):
        infer(model, style, images, particles=MAX_PARTICLES + 1)


@pytest.mark.parametrize("bandwidth", [1e300, 1e-300])
def test_extreme_bandwidths_give_finite_posteriors(bandwidth):
    torch.manual_seed(0)
    style = load_style("tiny")
    model = build_model("cpu", style).eval()
    images, _ = generate(style, 0, 0, 2)
    for p in infer(model, style, images, method="is", particles=16, bandwidth=bandwidth):
        assert np.isfinite(p.probs).all() and np.isfinite(p.map_prob) and 0 < p.map_prob <= 1


def test_the_images_own_nuisance_makes_a_narrow_kernel_exact():
    """With each image's own sample key, the true trace re-renders pixel for pixel (log L = 0), so once q
    proposes it a narrow kernel gives it all the mass: the ceiling `synthstream bench importance` measures."""
    torch.manual_seed(0)
    style = load_style("tiny")                     # 60 traces: 2,000 particles of an untrained q cover them
    model = build_model("cpu", style).eval()
    images, traces = generate(style, 5, 0, 4)
    posts = infer(model, style, images, method="is", particles=2000, bandwidth=1e-3, own_keys=traces.keys)
    assert [p.map for p in posts] == traces.texts()
    assert all(p.map_prob > 0.999 for p in posts)
    with pytest.raises(ValueError, match="own_keys"):
        infer(model, style, images, method="beam", own_keys=traces.keys)
