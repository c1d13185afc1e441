"""synthstream fit's parts without Ray: the search space, the written style, the searcher, bad input."""

from pathlib import Path

import numpy as np
import pytest
import tomllib

from synthstream.errors import UserError
from synthstream.style import load_style, parse_style
from tests.helpers.cli import cli_all
from trainer.fit.search import CubeSearcher, LeastSquaresSearcher, run_serial
from trainer.fit.space import build_space, read_style_file
from trainer.fit.write import style_toml

ROOT = Path(__file__).resolve().parents[2]


def test_facebook_space_round_trips_and_keeps_what_is_fixed():
    raw, source = read_style_file("facebook")
    space = build_space(raw, source)
    names = {p.name for p in space.params}
    assert {"warp.elastic_alpha", "clutter.drips", "latents.font_size", "ink.blur_sigma"} <= names
    assert "latents.num_chars" not in names and "fonts:FreeSansBold.ttf" in names     # 4 own fonts: a choice
    style = load_style("facebook")
    again = space.decode(*space.encode(style))
    for section in ("latents", "warp", "ink", "clutter"):
        for key, value in style.params[section].items():
            got = again.params[section][key]
            assert np.allclose(got, value, atol=0.02 * max(1, abs(np.mean(value)))), (section, key, got, value)
    raw["fit"] = {"fixed": ["warp.elastic_alpha"], "fonts": ["FreeSansBold.ttf"]}
    fixed = build_space(raw, source)
    assert "warp.elastic_alpha" not in {p.name for p in fixed.params}
    assert fixed.describe()["warp.elastic_alpha"] == "fixed"


def test_per_character_warp_and_dashes_are_fittable():
    raw, source = read_style_file(str(ROOT / "docs/fit/rough_wheezy.toml"))
    new = ["layout.char_shear", "layout.char_stretch", "clutter.dashes", "clutter.dash_length", "clutter.dash_width"]
    raw["fit"]["free"] = new
    raw["fit"]["bounds"] = {"layout.char_shear": [-0.6, 0.6], "layout.char_stretch": [0.5, 1.6],
                            "clutter.dashes": [0, 80], "clutter.dash_length": [0.5, 8], "clutter.dash_width": [0.5, 4]}
    space = build_space(raw, source)
    params = {p.name: p for p in space.params}
    assert set(new) <= set(params)
    assert (params["layout.char_shear"].lo, params["layout.char_shear"].hi) == (-0.6, 0.6)
    assert params["clutter.dashes"].integer and params["clutter.dashes"].hi == 80
    u, k = space.encode(load_style(str(ROOT / "docs/fit/rough_wheezy.toml")))
    dims = [p for p in space.params if p.kind != "choice" for _ in range(p.dims)]
    style = space.decode([1.0 if p.name in new else v for v, p in zip(u, dims)], k)
    assert style.params["layout"]["char_shear"] == (0.6, 0.6) and style.params["clutter"]["dashes"] == (80, 80)
    assert style.params["clutter"]["dash_width"] == (4.0, 4.0)
    warp_raw, warp_source = read_style_file(str(ROOT / "docs/fit/rough_wheezy_warp.toml"))   # set as ranges
    ranged = {p.name: p for p in build_space(warp_raw, warp_source).params}
    assert ranged["layout.char_shear"].kind == "range" and ranged["clutter.dashes"].hi == 80


def test_keep_widths_moves_each_range_whole_and_clips_it_to_the_legal_bounds():
    raw, source = read_style_file(str(ROOT / "docs/fit/rough_wheezy.toml"))
    raw["fit"]["keep_widths"] = True
    space = build_space(raw, source)
    params = {p.name: p for p in space.params}
    widths = build_space(read_style_file(str(ROOT / "docs/fit/rough_wheezy.toml"))[0], source)
    assert params["ink.ink"].kind == "shift" and params["ink.ink"].dims == 1
    assert space.n_continuous < widths.n_continuous                 # one number a range instead of two
    start = load_style(str(ROOT / "docs/fit/rough_wheezy.toml"))
    u, k = space.encode(start)
    assert space.decode(u, k) == start and np.allclose(space.encode(space.decode(u, k))[0], u)
    dims = [p for p in space.params if p.kind != "choice" for _ in range(p.dims)]
    high = space.decode([1.0 if p.name in ("ink.ink", "ink.background") else v for v, p in zip(u, dims)], k)
    assert high.params["ink"]["ink"] == (80, 240)                    # centre 160 (the envelope's top), width kept
    assert high.params["ink"]["background"][1] == 255 and high.params["ink"]["background"][0] in (227, 228)
    low = space.decode([0.0 if p.name == "warp.elastic_alpha" else v for v, p in zip(u, dims)], k)
    assert low.params["warp"]["elastic_alpha"] == (0.0, 6.0)         # centre 0, half-width 6, clipped at 0
    for style in (high, low):                                        # a clipped range encodes back to its centre
        again = space.decode(*space.encode(style))
        assert again == style
    assert "width kept" in space.describe()["ink.ink"]


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "fit").rglob("*.toml")), ids=lambda p: p.name)
def test_every_style_docs_fit_ships_loads_and_can_be_fitted_again(path):
    raw, source = read_style_file(str(path))
    assert load_style(str(path)).name and build_space(raw, source).params


def test_written_style_loads_back_identical(tmp_path):
    raw, source = read_style_file("wikipedia")
    space = build_space(raw, source)
    u, k = space.encode(load_style("wikipedia"))
    style = space.decode([min(1.0, v + 0.1) for v in u], k)
    path = tmp_path / "fitted.toml"
    path.write_text(style_toml(style, space.describe(), ["a header"], {"fixed": ["ink.ink"]}))
    back = load_style(str(path))
    assert back == style
    assert tomllib.loads(path.read_text())["fit"] == {"fixed": ["ink.ink"]}
    assert "fitted within" in path.read_text()


@pytest.mark.parametrize("fit_table, words", [
    ({"fixd": []}, "unknown field"),
    ({"fixed": ["warp.nope"]}, "'warp.nope' is not a field"),
    ({"bounds": {"ink.ink": [5, 1]}}, "lo < hi"),
    ({"widen": 0.5}, "[1, 10]"),
    ({"fonts": 3}, "fit.fonts"),
    ({"keep_widths": "yes"}, "true or false"),
])
def test_bad_fit_table_is_one_clear_error(fit_table, words):
    raw = tomllib.loads((ROOT / "synthstream/styles/tiny.toml").read_text())
    raw["fit"] = fit_table
    with pytest.raises(UserError, match=None) as e:
        build_space(raw, "t")
    assert words in str(e.value)
    parse_style(raw)                        # the style parser itself accepts (and ignores) a [fit] table


def _bowl(config):
    u = np.asarray(config["u"])
    return float(np.sum((u - 0.3) ** 2) + (0 if config["k"][0] == 2 else 0.5))


def test_replayed_search_continues_as_the_uninterrupted_one():
    def searcher():
        return CubeSearcher(3, [4], ([0.9, 0.9, 0.9], [0]), population=6, seed=3)

    whole = run_serial(searcher(), _bowl, 25)
    part = searcher()
    records = [{"config": c, "objective": v} for v, c in whole[:10]]
    part.replay(records)
    for i in range(15):
        config = part.suggest(f"r{i}")
        part.on_trial_complete(f"r{i}", {"objective": _bowl(config)})
    assert [c for _, c in part.history] == [c for _, c in whole]


def test_cma_beats_random_on_a_bowl_at_equal_budget():
    best = {alg: np.median([min(v for v, _ in run_serial(
        CubeSearcher(6, [3], ([0.9] * 6, [0]), algorithm=alg, population=8, seed=s), _bowl, 49))
        for s in range(5)]) for alg in ("cma", "random")}
    assert best["cma"] < 0.8 * best["random"], best


def _residual_bowl(config):
    u = np.asarray(config["u"])
    r = np.concatenate([u - 0.3, [5 * (u[0] - 0.3)], [0.0 if config["k"][0] == 2 else 1]])
    return {"objective": float(np.mean(r ** 2)), "residuals": r.tolist()}


def test_least_squares_finds_the_minimum_and_replays_exactly():
    def searcher():
        return LeastSquaresSearcher(4, [3], ([0.9] * 4, [0]))

    whole = run_serial(searcher(), _residual_bowl, 40)
    value, best = min(whole, key=lambda t: t[0])
    assert value < 1e-6 and best["k"] == [2] and np.allclose(best["u"], 0.3, atol=1e-3)
    random = min(v for v, _ in run_serial(CubeSearcher(4, [3], ([0.9] * 4, [0]), algorithm="random"),
                                          lambda c: _residual_bowl(c)["objective"], 40))
    assert random > 100 * value
    part = searcher()
    part.replay([{"config": c, "objective": v, "residuals": _residual_bowl(c)["residuals"]} for v, c in whole[:13]])
    for i in range(27):
        config = part.suggest(f"r{i}")
        part.on_trial_complete(f"r{i}", _residual_bowl(config))
    assert [c for _, c in part.history] == [c for _, c in whole]


def test_bad_inputs_are_one_line(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    bad_style = tmp_path / "bad.toml"
    bad_style.write_text((ROOT / "synthstream/styles/tiny.toml").read_text() + '\n[fit]\nfixed = ["ink.nope"]\n')
    cases = [
        (["--style", "tiny", "--real", str(tmp_path / "missing"), "--out", str(tmp_path / "o1")], "--real"),
        (["--style", "tiny", "--real", str(real), "--out", str(tmp_path / "o2")], "holds no images"),
        (["--style", "nosuch", "--real", str(real), "--out", str(tmp_path / "o3")], "unknown style"),
        (["--style", str(bad_style), "--real", str(real), "--out", str(tmp_path / "o4")], "ink.nope"),
        (["--style", "tiny", "--real", str(real), "--out", str(tmp_path / "o5"), "--fixed", "warp.x"], "warp.x"),
        (["--style", "tiny", "--real", str(real), "--out", str(tmp_path / "o6"), "--budget", "x"], "budget"),
        (["--style", "rough", "--real", str(real), "--out", str(tmp_path / "o7"), "--budget", "56"],
         "too few for one Levenberg-Marquardt step over this style's 52 numbers and 0 choices: give --budget 57"),
    ]
    images = tmp_path / "images"
    from synthstream.generate import generate
    from synthstream.labelled import write_labelled_folder
    write_labelled_folder(images, generate(load_style("tiny"), 0, 0, 12)[0], ["A"] * 12)
    other = tmp_path / "other"
    other.mkdir()
    (other / "fit.json").write_text('{"config": {"seed": 3}, "rounds": []}')
    cases += [
        (["--style", "tiny", "--real", str(images), "--out", str(other)], "holds a fit with other arguments"),
        (["--style", "tiny", "--real", str(images), "--out", str(tmp_path / "busy")], "is not empty"),
        (["--style", "tiny", "--real", str(images), "--out", str(tmp_path / "o8"), "--objective", "seen",
          "--checkpoint", str(tmp_path / "no-such-reader")], "no-such-reader"),        # before the folder is made
    ]
    for (args, words), r in zip(cases, cli_all([["fit", *args] for args, _ in cases])):
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, r.stderr)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o8").exists()
    assert (tmp_path / "busy" / "x.txt").read_text() == "mine"


@pytest.mark.parametrize("kwargs, words", [
    ({"objective": "wake"}, "objective 'wake' needs checkpoint"),
    ({"objective": "wake", "checkpoint": "facebook", "algorithm": "lm"}, "'lm' cannot search the wake objective"),
    ({"checkpoint": "facebook"}, "checkpoint is for objectives 'wake' and 'seen'"),
    ({"gap_slack": 0.5}, "are for objective 'wake'"),
    ({"objective": "seen", "renders": 4}, "are for objective 'wake'"),
    ({"gap_weight": 1.0}, "gap_weight is for objectives 'wake' and 'seen'"),
    ({"objective": "cover", "gap_weight": 1.0}, "objective 'cover' is the gap already"),
    ({"objective": "wake", "checkpoint": "facebook", "gap_slack": -1.0}, "gap_slack = -1.0 must be >= 0"),
    ({"objective": "wake", "checkpoint": "facebook", "renders": 0}, "renders = 0"),
    ({"objective": "nope"}, "objective 'nope' is unknown; available: gap, cover, seen, wake"),
    ({"objective": "cover", "checkpoint": "facebook"}, "objective 'cover' uses none"),
])
def test_bad_objective_settings_are_one_error(kwargs, words):
    from trainer.fit.loop import FitConfig

    with pytest.raises(UserError) as e:
        FitConfig(style="tiny", real="x", **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_objective_picks_its_searcher_and_a_gap_fit_keeps_its_old_identity():
    from trainer.fit.loop import FitConfig

    assert FitConfig(style="tiny", real="x").algorithm == "lm"
    wake = FitConfig(style="tiny", real="x", objective="wake", checkpoint="facebook")
    assert wake.algorithm == "cma" and wake.identity()["checkpoint"] == "facebook"
    assert "objective" not in FitConfig(style="tiny", real="x").identity()    # fits begun before still continue
    cover = FitConfig(style="tiny", real="x", objective="cover")
    assert cover.algorithm == "lm" and cover.identity()["objective"] == "cover"   # a gap fit cannot continue it


def test_coverage_counts_only_real_images_outside_the_synthetic_range():
    from trainer.fit.objective import coverage_residuals

    rng = np.random.default_rng(0)
    real = rng.normal(0.0, 1.0, (300, 3))
    wide = rng.normal(0.0, 4.0, (200, 3))                  # covers every real image: 0, however much wider
    narrow = rng.normal(0.0, 0.25, (200, 3))               # leaves most of them outside
    shifted = wide + np.array([0.0, 0.0, 30.0])            # covers the first two features only
    assert np.all(coverage_residuals(real, wide) == 0)
    assert np.all(coverage_residuals(real, narrow) > 0.3)
    c = coverage_residuals(real, shifted)
    assert c[0] == c[1] == 0 and c[2] > 1
    assert np.all(coverage_residuals(real, real) < 0.2)            # its own 1%-99% range leaves 2% out


def test_spread_says_wider_or_narrower_than_the_real_images_whatever_the_mean():
    from trainer.fit.objective import spread_residuals

    rng = np.random.default_rng(0)
    real = rng.normal(0.0, 1.0, (400, 2))
    r = spread_residuals(real, np.hstack([rng.normal(5.0, 3.0, (400, 1)), rng.normal(0.0, 0.2, (400, 1))]))
    assert r[0] > 0.7 and r[1] < -0.9                      # wider (+), narrower (-); the shifted mean ignored
    assert np.all(np.abs(spread_residuals(real, rng.normal(3.0, 1.0, (400, 2)))) < 0.15)


def test_cover_objective_is_the_gap_plus_the_weighted_coverage_and_its_residuals_square_to_it():
    from trainer.fit.objective import COVER_WEIGHT, OBJECTIVES, score, synthetic_images, target_of

    style = load_style("tiny")
    real = synthetic_images(style, 60, 5)
    gap = score(style, target_of(real), 60, 1)
    cover = score(style, target_of(real, OBJECTIVES["cover"].coverage_weight), 60, 1)
    assert gap["objective"] == gap["gap"] == cover["gap"] and gap["coverage"] == cover["coverage"]
    assert cover["objective"] == pytest.approx(cover["gap"] + COVER_WEIGHT * cover["coverage"])
    assert len(cover["residuals"]) == 2 * len(gap["residuals"])
    assert np.sum(np.square(cover["residuals"])) / len(gap["residuals"]) == pytest.approx(cover["objective"], 1e-3)


def test_seen_objective_compares_a_readers_cnn_features():
    """`seen`: the gap over a shipped reader's pooled CNN channels (its residuals, one per channel, square to
    it); the statistics' gap is still reported, and added with a gap weight. A style against its own samples
    scores near 0, another far."""
    from synthstream.fidelity import features
    from trainer.fit.loop import FitConfig, _report_md, round_line
    from trainer.fit.objective import DEFAULT_ENCODER, score, synthetic_images, target_of

    assert round_line({"objective_name": "seen", "objective_start": 0.7, "objective": 0.05, "gap_start": 1.6,
                       "gap": 1.0}) == "seen objective 0.7000 -> 0.0500 (feature gap 1.6000 -> 1.0000)"
    config = FitConfig(style="tiny", real="x", objective="seen")
    assert config.algorithm == "lm" and config.identity()["checkpoint"] == DEFAULT_ENCODER
    assert FitConfig(style="tiny", real="x", objective="seen", checkpoint="lepture").checkpoint == "lepture"
    style = load_style("wikipedia")
    target_images = synthetic_images(style, 60, 5)
    target = target_of(target_images, encoder=DEFAULT_ENCODER)
    same, other = score(style, target, 60, 1), score(load_style("facebook"), target, 60, 1)
    assert target.encoded.shape[0] == 60 and len(same["residuals"]) == target.encoded.shape[1] >= 16
    assert same["objective"] == same["seen"] == pytest.approx(np.mean(np.square(same["residuals"])), 1e-3)
    assert same["gap"] > 0 and "stats" in same
    few = synthetic_images(style, 20, 5)
    both = target_of(few, encoder=f"{DEFAULT_ENCODER},lepture")              # two readers: channels side by side
    assert both.encoded.shape[1] == target.encoded.shape[1] + target_of(few, encoder="lepture").encoded.shape[1]
    assert same["objective"] < 0.2 and other["objective"] > 5 * same["objective"], other
    # --gap-weight w: seen + w x the statistics' gap, both sets of residuals squaring to it
    weighted = target_of(target_images, encoder=DEFAULT_ENCODER, gap_weight=2.0)
    mixed = score(load_style("facebook"), weighted, 60, 1)
    assert mixed["objective"] == pytest.approx(other["seen"] + 2.0 * other["gap"], 1e-9)
    assert np.sum(np.square(mixed["residuals"])) == pytest.approx(mixed["objective"], 1e-3)
    assert len(mixed["residuals"]) == len(other["residuals"]) + len(features(target_images)[0])
    assert FitConfig(style="tiny", real="x", objective="seen", gap_weight=1.0).identity()["gap_weight"] == 1.0
    assert round_line({"objective_name": "seen", "objective_start": 2.3, "objective": 1.05, "gap_start": 1.6,
                       "gap": 1.0, "gap_weight": 1.0}) == \
        "seen objective + 1 x feature gap 2.3000 -> 1.0500 (feature gap 1.6000 -> 1.0000)"
    report = _report_md({"round": 1, "objective_name": "seen", "objective_start": 2.3, "objective": 1.05,
                         "gap_start": 1.6, "gap": 1.0, "gap_weight": 1.0, "trials": 9, "wall_s": 1.0,
                         "expressiveness": []})
    assert "CNN features, 0 = alike + 1 x feature gap): start 2.3000" in report
    assert "feature gap of the image statistics (0 = alike): 1.6000 -> 1.0000" in report
    assert "one font" not in report          # a fit that kept one font of several says what that costs a reader
    assert "one font, X.ttf: " in _report_md({"round": 1, "objective_start": 1, "objective": 1, "trials": 2,
                                              "wall_s": 1, "expressiveness": [], "one_font": "X.ttf"})


def test_wake_checkpoint_that_cannot_draw_the_style_is_one_line(tmp_path):
    import torch

    from trainer import checkpoint
    from trainer.fit.wake import load_wake_reader
    from trainer.model import build_model

    raw = tomllib.loads((ROOT / "synthstream/styles/tiny.toml").read_text())
    raw["alphabet"] = raw["alphabet"] + "XY"
    wider = parse_style(raw)
    torch.manual_seed(0)
    checkpoint.save(tmp_path / "c.pt", model=build_model("cpu", wider), optimizer=None, step=0, position=0,
                    config={}, style_raw=wider.to_raw(), preset="cpu")
    with pytest.raises(UserError) as e:
        load_wake_reader(str(tmp_path / "c.pt"), load_style("tiny"))
    assert "reads characters 'XY'" in str(e.value) and "\n" not in str(e.value)
    assert load_wake_reader(str(tmp_path / "c.pt"), wider).style.alphabet == wider.alphabet


def test_wake_fit_bad_inputs_are_one_line_at_the_cli(tmp_path):
    from synthstream.generate import generate
    from synthstream.labelled import write_labelled_folder

    images = tmp_path / "images"
    write_labelled_folder(images, generate(load_style("tiny"), 0, 0, 12)[0], ["A"] * 12)
    cases = [
        (["--objective", "wake"], "needs checkpoint"),
        (["--objective", "wake", "--checkpoint", "facebook"], "reads 200x50 images; the style 'tiny' draws 48x32"),
    ]
    outs = [["fit", "--style", "tiny", "--real", str(images), "--out", str(tmp_path / f"o{i}"), *args]
            for i, (args, _) in enumerate(cases)]
    for i, ((args, words), r) in enumerate(zip(cases, cli_all(outs))):
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, r.stderr)
        assert not (tmp_path / f"o{i}").exists()
