"""The wake-phase objective (trainer/fit/wake.py): it prefers the style that drew the images, is deterministic,
and takes arrays and readings only (no file, no label)."""

from pathlib import Path

import numpy as np
import pytest
import tomllib

from synthstream.generate import generate
from synthstream.style import parse_style
from trainer.fit.wake import wake_objective

ROOT = Path(__file__).resolve().parents[2]
BANDWIDTH = 10.0                      # one for every style compared


def _tiny(**ink):
    raw = tomllib.loads((ROOT / "synthstream/styles/tiny.toml").read_text())
    raw["ink"].update(ink)
    return parse_style(raw)


def test_own_style_scores_better_than_a_different_one_and_reads_no_file(monkeypatch):
    import synthstream.fidelity
    import synthstream.images
    import synthstream.labelled

    def refuse(*args, **kwargs):
        raise AssertionError("the wake objective read a folder")

    for module, name in ((synthstream.images, "read_folder"), (synthstream.labelled, "read_labelled_folder"),
                         (synthstream.fidelity, "load_real_images")):
        monkeypatch.setattr(module, name, refuse)
    own = _tiny()
    images, traces = generate(own, 3, 0, 12)
    readings = [[(t, 1.0)] for t in traces.texts()]          # the texts, passed as readings (what q would say)
    score = wake_objective(own, images, readings, bandwidth=BANDWIDTH, renders=16)
    assert score == wake_objective(own, images, readings, bandwidth=BANDWIDTH, renders=16)   # fixed keys
    for other in (_tiny(background=120, ink=250), _tiny(ink=140, blur_sigma=1.5)):
        assert score < wake_objective(other, images, readings, bandwidth=BANDWIDTH, renders=16)
    # a wrong reading (weighted in) fits worse than the right one alone
    wrong = [[(t, 0.5), ("A" if t != "A" else "B", 0.5)] for t in traces.texts()]
    assert score < wake_objective(own, images, wrong, bandwidth=BANDWIDTH, renders=16)


@pytest.mark.parametrize("readings, images, words", [
    ([[("E", 1.0)]], np.zeros((1, 32, 48), np.uint8), "alphabet"),
    ([[("ABC", 1.0)]], np.zeros((1, 32, 48), np.uint8), "length"),
    ([[("A", 1.0)]], np.zeros((1, 30, 48), np.uint8), "[n, 32, 48]"),
    ([[]], np.zeros((1, 32, 48), np.uint8), "at least one reading"),
    ([], np.zeros((1, 32, 48), np.uint8), "0 readings for 1 images"),
])
def test_bad_readings_are_one_clear_error(readings, images, words):
    with pytest.raises(ValueError) as e:
        wake_objective(_tiny(), images, readings, bandwidth=BANDWIDTH)
    assert words in str(e.value)


def test_ranking_bench_refuses_a_style_of_another_size_in_one_line(capsys, real_captchas):
    from synthstream.bench.fit import main

    real = str(real_captchas / "facebook")
    assert main(["ranking", "--real", real, "--checkpoint", "lepture", "-n", "4", "facebook=0.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "200x50 differs from --checkpoint lepture's 160x60" in err[0]


def test_the_fit_scores_the_wake_objective_guarded_by_the_gap_and_reports_both():
    from trainer.fit.objective import WakeTarget, score, target_of
    from trainer.fit.wake import wake_objective

    own = _tiny()
    images, traces = generate(own, 3, 0, 12)
    readings = tuple(((t, 1.0),) for t in traces.texts())
    other = _tiny(ink=140, blur_sigma=1.5)
    target = target_of(images)
    plain = score(other, target, 20, 0)
    gap, background = plain["objective"], abs(plain["stats"]["background"])
    for weight, cap, stat_caps, penalty in ((0.0, np.inf, (), 0.0), (0.5, np.inf, (), 0.0),
                                            (0.0, gap - 0.25, (), 2.5), (0.0, gap, (), 0.0),
                                            (0.0, np.inf, (("background", background - 0.5),), 5.0)):
        wake = WakeTarget(images, readings, BANDWIDTH, renders=8, gap_weight=weight, gap_cap=cap,
                          stat_caps=stat_caps)
        result = score(other, type(target)(target.features, 32, 48, wake), 20, 0)
        assert result["wake"] == wake_objective(other, images, readings, bandwidth=BANDWIDTH, renders=8)
        assert result["gap"] == gap > 0
        assert result["objective"] == pytest.approx(result["wake"] + weight * gap + penalty)
        assert "residuals" not in result                  # the wake objective has none: lm cannot search it
