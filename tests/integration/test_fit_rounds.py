"""synthstream fit on a real local Ray (Tune trials render and score): a style fitted to its own samples
recovers its parameters; a folder without labels fits the same; an interrupted fit continues as it would have;
the wake objective (a real, untrained `tiny` network reads the images) is searched end to end, label-free."""

import json
import shutil
from pathlib import Path

import pytest

from synthstream.generate import generate
from synthstream.labelled import write_labelled_folder
from synthstream.style import load_style
from trainer.fit.loop import FitConfig, fit
from trainer.fit.select import choose

TRUTH = {"background": 220, "ink": 40, "noise_sigma": 10.0, "blur_sigma": 0.8}
# Stated tolerance: within 7.5% of each parameter's search envelope (background 150-255, ink 0-120, noise 0-30,
# blur 0-2); ink and blur trade off (darker ink under more blur looks alike), so they are the least certain.
TOLERANCE = {"background": 4, "ink": 9, "noise_sigma": 1.5, "blur_sigma": 0.15}
STYLE = """name = "tiny"
height = 32
width = 48
alphabet = "ABCD"
fonts = [{{ file = "DejaVuSans-Bold.ttf", package = "fonts-dejavu-core" }}]
[latents]
num_chars = [1, 2]
font_size = [18, 20]
[layout]
start_x = "center"
baseline = "center"
[warp]
elastic_alpha = 6.0
elastic_sigma = 4.0
[ink]
background = {background}
ink = {ink}
blur_sigma = {blur_sigma}
noise_sigma = {noise_sigma}
[fit]
fixed = ["warp.elastic_alpha", "warp.elastic_sigma", "latents.font_size"]
[fit.bounds]
"ink.background" = [150, 255]
"ink.ink" = [0, 120]
"ink.noise_sigma" = [0, 30]
"ink.blur_sigma" = [0, 2]
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("fit")
    (base / "truth.toml").write_text(STYLE.format(**TRUTH))
    (base / "start.toml").write_text(STYLE.format(background=180, ink=90, noise_sigma=4.0, blur_sigma=0.3))
    images, traces = generate(load_style(str(base / "truth.toml")), 123, 0, 150)
    write_labelled_folder(base / "real", images, traces.texts())
    unlabelled = base / "unlabelled"                       # the same images, named 0001.png ..., no labels.csv
    unlabelled.mkdir()
    for i, path in enumerate(sorted((base / "real").glob("*.png"))):
        shutil.copy(path, unlabelled / f"{i + 1:04d}.png")
    return base


def _fitted(out: Path) -> dict:
    return load_style(str(out / "fitted.toml")).to_raw()


def test_fit_recovers_its_own_parameters(local_ray, folders):
    out = folders / "recover"
    state = fit(FitConfig(style=str(folders / "start.toml"), real=str(folders / "real"), budget=49,
                          n_synthetic=100), str(out))
    assert _fitted(out)["name"] == "tiny_fitted"                 # its own name, in every run record after
    ink = _fitted(out)["ink"]
    for key, truth in TRUTH.items():
        assert abs(ink[key][0] - truth) <= TOLERANCE[key], (key, ink[key], truth)
    round1 = state["rounds"][0]
    assert round1["objective"] < 0.1 * round1["objective_start"]
    for name in ("style.toml", "round.json", "report.md", "grid.png", "trials.jsonl"):
        assert (out / "round_01" / name).is_file()
    assert (out / "fit_curve.png").is_file()
    assert len((out / "round_01" / "trials.jsonl").read_text().splitlines()) <= 49


def test_label_free_folder_fits_the_same_and_an_interrupted_fit_resumes(local_ray, folders):
    config = dict(style=str(folders / "start.toml"), budget=14, n_synthetic=60)
    labelled, unlabelled = folders / "labelled_fit", folders / "unlabelled_fit"
    fit(FitConfig(real=str(folders / "real"), **config), str(labelled))
    fit(FitConfig(real=str(folders / "unlabelled"), **config), str(unlabelled))
    assert _fitted(labelled) == _fitted(unlabelled)

    # interrupt: keep 5 finished trials (and half a line), drop the round's outputs, run the same command again
    trials = labelled / "round_01" / "trials.jsonl"
    lines = trials.read_text().splitlines()
    before = _fitted(labelled)
    trials.write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    for name in ("style.toml", "round.json", "report.md", "grid.png"):
        (labelled / "round_01" / name).unlink()
    (labelled / "fitted.toml").unlink()
    state = json.loads((labelled / "fit.json").read_text())
    state["rounds"] = []
    (labelled / "fit.json").write_text(json.dumps(state))
    fit(FitConfig(real=str(folders / "real"), **config), str(labelled))
    again = trials.read_text().splitlines()
    assert len(again) == 14 and again[:5] == lines[:5]
    assert sorted(json.loads(x)["objective"] for x in again) == sorted(json.loads(x)["objective"] for x in lines)
    assert _fitted(labelled) == before

    # a second round on the same --out starts from the first round's style (its objective is where it begins)
    state = fit(FitConfig(real=str(folders / "real"), rounds=2, **config), str(labelled))
    first, second = state["rounds"]
    assert second["objective_start"] == pytest.approx(first["objective"], rel=1e-2)
    assert second["objective"] <= first["objective"]
    assert (labelled / "round_02" / "style.toml").is_file() and _fitted(labelled) == load_style(
        str(labelled / "round_02" / "style.toml")).to_raw()


@pytest.mark.slow
def test_sleep_phase_trains_on_the_fitted_style_and_reports_the_rate(local_ray, folders):
    out = folders / "sleep"
    state = fit(FitConfig(style=str(folders / "start.toml"), real=str(folders / "unlabelled"), budget=9,
                          n_synthetic=60, train_steps=40, train_preset="cpu", eval_data=str(folders / "real")),
                str(out))
    rate = state["rounds"][0]["rate"]
    assert rate["n"] == 150 and 0 <= rate["exact_rate"] <= 1
    assert (out / "round_01" / "train" / "checkpoint.pt").is_file()
    report = (out / "round_01" / "report.md").read_text()
    assert "reading rate" in report and "top-reading probability" in report
    # round 0: the start with its own proposal; fitted.toml is the most confidently read of start and rounds
    start = state["start"]
    assert (out / "round_00" / "train" / "checkpoint.pt").is_file() and start["rate"]["n"] == 150
    assert load_style(str(out / "round_00" / "style.toml")).to_raw()["ink"]["background"][0] == 180
    read = {0: start["confidence"]["mean"], 1: state["rounds"][0]["confidence"]["mean"]}
    assert all(0 < v <= 1 for v in read.values()) and start["confidence"]["n"] == 150
    chosen, probabilities = state["selected"]["round"], state["rounds"][0]["confidence"]["probabilities"]
    assert chosen == choose(start["confidence"]["probabilities"], {1: probabilities})
    assert state["selected"]["confidence"] == pytest.approx(read, abs=1e-4)
    assert "no labels read" in state["selected"]["line"]
    assert _fitted(out) == load_style(str(out / f"round_{chosen:02d}" / "style.toml")).to_raw()
    again = fit(FitConfig(style=str(folders / "start.toml"), real=str(folders / "unlabelled"), budget=9,
                          n_synthetic=60, train_steps=40, train_preset="cpu", eval_data=str(folders / "real")),
                str(out))                                           # continued: nothing retrained, same choice
    assert again["start"] == start and again["selected"]["round"] == chosen


@pytest.fixture(scope="module")
def reader_checkpoint(folders):
    """A real checkpoint of an untrained network for the truth style's size and alphabet (its readings are
    arbitrary but drawable texts: enough for the wake objective's plumbing)."""
    import torch

    from trainer import checkpoint
    from trainer.model import build_model

    torch.manual_seed(0)
    style = load_style(str(folders / "truth.toml"))
    path = folders / "reader.pt"
    checkpoint.save(path, model=build_model("cpu", style).eval(), optimizer=None, step=0, position=0, config={},
                    style_raw=style.to_raw(), preset="cpu")
    return str(path)


@pytest.mark.slow        # 20 s; in CI the wake objective's parts: tests/unit/test_fit_wake.py
def test_wake_objective_is_searched_end_to_end_label_free_and_reports_both_numbers(local_ray, folders,
                                                                                   reader_checkpoint):
    config = dict(style=str(folders / "start.toml"), budget=9, population=4, n_synthetic=60, objective="wake",
                  checkpoint=reader_checkpoint, renders=8)
    assert FitConfig(**config, real="x").algorithm == "cma"          # the wake objective's default searcher
    labelled, unlabelled = folders / "wake_labelled", folders / "wake_unlabelled"
    state = fit(FitConfig(real=str(folders / "real"), **config), str(labelled))
    fit(FitConfig(real=str(folders / "unlabelled"), **config), str(unlabelled))
    assert _fitted(labelled) == _fitted(unlabelled)
    r = state["rounds"][0]
    assert r["objective_name"] == "wake" and r["read_by"] == reader_checkpoint
    # the guard: the caps are 1.25 x the start's gap and statistics (its first trial, same seed; a statistic's at
    # least 1 sd); 10 nats per unit over
    assert r["gap_cap"] == pytest.approx(1.25 * r["gap_start"]) and r["objective_start"] == r["wake_start"]
    start_stats = json.loads((labelled / "round_01" / "trials.jsonl").read_text().splitlines()[0])
    assert r["statistic_caps"] == pytest.approx({s: 1.25 * max(abs(v), 1.0) for s, v in start_stats["stats"].items()})
    assert r["objective"] <= r["objective_start"] and r["gap"] > 0
    trials = [json.loads(x) for x in (labelled / "round_01" / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == 9 and all("residuals" not in t for t in trials)
    for t in trials:
        over = max(0.0, t["gap"] - r["gap_cap"]) + sum(max(0.0, abs(v) - r["statistic_caps"][s])
                                                        for s, v in t["stats"].items())
        assert t["objective"] == pytest.approx(t["wake"] + 10 * over)
    report = (labelled / "round_01" / "report.md").read_text()
    assert "wake objective" in report and "feature gap" in report
    assert "wake " in (labelled / "round_01" / "style.toml").read_text().splitlines()[0]


@pytest.mark.slow
def test_wake_sleep_rereads_the_real_images_with_the_previous_rounds_model(local_ray, folders, reader_checkpoint):
    out = folders / "wake_sleep"
    state = fit(FitConfig(style=str(folders / "start.toml"), real=str(folders / "unlabelled"), rounds=2, budget=5,
                          population=4, n_synthetic=60, objective="wake", checkpoint=reader_checkpoint, renders=8,
                          train_steps=20, train_preset="cpu"), str(out))
    first, second = state["rounds"]
    assert first["read_by"] == reader_checkpoint and second["read_by"] == str(out / "round_01" / "train")
    assert first["bandwidth"] == second["bandwidth"]                  # one bandwidth for the whole fit
