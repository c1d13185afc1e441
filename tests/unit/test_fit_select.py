"""Choosing among a fit's styles without labels (trainer/fit/select.py), with a real shipped reader."""

import numpy as np
import pytest

from synthstream.generate import generate
from synthstream.style import load_style
from trainer.fit.select import choose, confidence, paired_z


def test_a_round_replaces_the_start_only_when_read_clearly_more_confidently():
    rng = np.random.default_rng(0)
    start = rng.uniform(0.2, 0.6, 300)
    noise = lambda: rng.normal(0, 0.1, 300)                               # noqa: E731 - readers differ per image
    slightly, clearly, more = start + 0.005 + noise(), start + 0.05 + noise(), start + 0.08 + noise()
    assert paired_z(start, clearly) > 2 > paired_z(start, slightly) > -2
    assert choose(list(start), {1: list(slightly)}) == 0                 # within noise: the start is kept
    assert choose(list(start), {1: list(slightly), 2: list(clearly)}) == 2
    assert choose(list(start), {1: list(more), 2: list(clearly)}) == 1   # of the clear ones, the most confident
    assert choose(list(start), {1: list(start - 0.1)}) == 0               # a fit that reads worse: the start
    assert choose(list(start), {}) == 0 and paired_z(list(start), list(start)) == 0
    with pytest.raises(ValueError):
        choose(list(start), {1: list(start[:10])})


def test_a_reader_reads_its_own_styles_images_more_confidently_than_another_schemes():
    own = generate(load_style("lepture"), 3, 0, 24)[0]
    other = generate(load_style("rough"), 3, 0, 24)[0]                    # 200 x 50: resized by the reader
    mine, theirs = confidence("lepture", own), confidence("lepture", other)
    assert mine["n"] == theirs["n"] == 24
    assert 0 < theirs["mean"] < mine["mean"] <= 1 and 0 < mine["median"] <= 1
    assert len(mine["probabilities"]) == 24 and np.mean(mine["probabilities"]) == pytest.approx(mine["mean"], abs=1e-4)
    again = confidence("lepture", own[::-1])                              # each image's reading is its own
    assert again["probabilities"] == mine["probabilities"][::-1]
    assert np.array_equal(own, generate(load_style("lepture"), 3, 0, 24)[0])


def test_the_confidence_benchmark_ranks_readers_and_refuses_a_bad_pair_in_one_line(tmp_path, capsys):
    import json

    from synthstream.bench.fit import main
    from synthstream.labelled import write_labelled_folder

    images, traces = generate(load_style("lepture"), 5, 0, 12)
    write_labelled_folder(tmp_path / "real", images, traces.texts())
    assert main(["confidence", "--real", str(tmp_path / "real"), "lepture=0.9", "facebook=0.1", "--synthetic", "6",
                 "--json", str(tmp_path / "c.json")]) == 0
    result = json.loads((tmp_path / "c.json").read_text())
    own, other = result["readers"]
    assert own["images"] == other["images"] == 12 and own["z_vs_first"] == 0
    assert own["real_minus_synthetic"] == pytest.approx(own["confidence"] - own["synthetic_confidence"])
    assert own["confidence"] > other["confidence"] and result["spearman_confidence"] == pytest.approx(1.0)
    capsys.readouterr()
    assert main(["confidence", "--real", str(tmp_path / "real"), "lepture"]) == 2
    err = capsys.readouterr().err.strip()
    assert "must be NAME=RATE" in err and "\n" not in err


def test_a_fits_choice_names_the_round_and_why():
    from trainer.fit.loop import _select

    rng = np.random.default_rng(1)
    start = rng.uniform(0.2, 0.6, 200)

    def read(p):
        return {"mean": float(np.mean(p)), "probabilities": [float(v) for v in p]}

    state = {"start": {"round": 0, "confidence": read(start)},
             "rounds": [{"round": 1, "confidence": read(start + 0.1 + rng.normal(0, 0.05, 200))},
                        {"round": 2, "confidence": read(start - 0.05)}]}
    chosen = _select(state, 2)
    assert chosen["round"] == 1 and chosen["z_vs_start"][1] > 2 > chosen["z_vs_start"][2]
    assert chosen["line"].startswith("fitted.toml is round 1") and "no labels read" in chosen["line"]
    assert _select(state, 1)["round"] == 1
    state["rounds"] = state["rounds"][1:]
    assert _select(state, 2)["round"] == 0 and _select(state, 2)["line"].startswith("fitted.toml is the start")
