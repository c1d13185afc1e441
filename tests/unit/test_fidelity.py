"""The label-free fidelity measure: a classifier two-sample test and image statistics (no Ray)."""

import json

import numpy as np
import pytest
from PIL import Image

from synthstream.errors import UserError
from synthstream.fidelity import (
    STATISTICS,
    auc_score,
    classifier_auc,
    feature_gap,
    features,
    fidelity_command,
    image_statistics,
    statistics_table,
)
from synthstream.generate import generate
from synthstream.style import load_style


def _write_pngs(folder, images):
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).convert("RGB").save(folder / f"img{i:04d}.png")


def test_auc_score_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 20)
    scores = np.round(rng.normal(size=50) + labels, 1)          # rounded: ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert auc_score(labels, scores) == pytest.approx(pairwise)


def test_style_against_its_own_samples_is_indistinguishable():
    style = load_style("facebook")
    real, _ = generate(style, 101, 0, 300)
    synthetic, _ = generate(style, 202, 0, 300)
    result = classifier_auc(real, synthetic, folds=5, repeats=4, seed=0)
    assert abs(result.auc - 0.5) <= 0.05, result
    assert feature_gap(features(real), features(synthetic)) < 0.05          # chance: ~2/n per feature


def test_wikipedia_and_facebook_are_told_apart():
    wiki, _ = generate(load_style("wikipedia"), 1, 0, 100)
    fb, _ = generate(load_style("facebook"), 1, 0, 100)
    result = classifier_auc(wiki, fb, folds=5, repeats=1)
    assert result.auc > 0.95, result
    assert feature_gap(features(wiki), features(fb)) > 1


def test_mediawikis_warp_is_seeded_and_keeps_the_text():
    from synthstream.bench.mediawiki import mediawiki_distort, text_layer_style

    text, _ = generate(text_layer_style(load_style("wikipedia")), 3, 0, 2)
    a = mediawiki_distort(text[0], 2.5, np.random.default_rng(0))
    assert a.shape == text[0].shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, mediawiki_distort(text[0], 2.5, np.random.default_rng(0)))
    assert not np.array_equal(a, mediawiki_distort(text[0], 2.5, np.random.default_rng(1)))
    ink_before, ink_after = (text[0] < 128).sum(), (a < 128).sum()
    assert 0.5 * ink_before < ink_after < 2 * ink_before and (a[:, :5] == 255).all()    # margins stay white


def test_the_mediawiki_reference_command(real_captchas, tmp_path):
    from synthstream.bench.mediawiki import main

    out = tmp_path / "mw.json"
    assert main(["--real", str(real_captchas / "wikipedia"), "-n", "20", "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert len(results) == 2 and all(0 <= r["auc"]["auc"] <= 1 and r["feature_gap"] >= 0 for r in results.values())
    assert main(["--real", str(tmp_path / "none")]) == 2


def test_statistics_follow_simple_images():
    img = np.full((1, 50, 200), 250, np.uint8)
    img[0, 20:30, 40:120] = 10                                   # a 10 x 80 black bar: stroke width 10
    stats = image_statistics(img)
    assert set(stats) == set(STATISTICS)
    assert stats["background"][0] == 250 and stats["ink_level"][0] == 10 and stats["contrast"][0] == 240
    assert stats["ink_fraction"][0] == pytest.approx(800 / 10000)
    assert stats["stroke_width"][0] == pytest.approx(10)
    assert stats["box_x"][0] == pytest.approx(80, abs=2) and stats["box_y"][0] == pytest.approx(25, abs=1)
    assert stats["box_width"][0] == pytest.approx(72, abs=2)     # 5th to 95th percentile of 80 columns
    assert stats["clutter_coverage"][0] == 0 and stats["background_noise"][0] == 0


def test_command_writes_report_grid_and_names_the_largest_difference(tmp_path, capsys):
    wiki, _ = generate(load_style("wikipedia"), 7, 0, 30)
    _write_pngs(tmp_path / "real", wiki)
    report = fidelity_command("facebook", str(tmp_path / "real"), json_path=str(tmp_path / "r.json"),
                              out_dir=str(tmp_path / "out"), n=30, seed=3)
    table = capsys.readouterr().out
    assert [r["name"] for r in report["statistics"]] == list(STATISTICS)
    for name in STATISTICS:
        assert name in table
    assert f"most different: {report['most_different']}" in table
    assert report["auc"]["auc"] > 0.9 and report["auc"]["n_real"] == 30 == report["auc"]["n_synthetic"]
    assert json.loads((tmp_path / "r.json").read_text())["most_different"] == report["most_different"]
    assert (tmp_path / "out" / "fidelity.json").exists()
    assert Image.open(tmp_path / "out" / "fidelity_grid.png").size[0] > 3 * 200


def test_statistics_table_standardises_the_difference():
    a = np.full((20, 50, 200), 255, np.uint8)
    b = a.copy()
    a[:, 20:30, 50:150] = 0
    b[:, 20:30, 50:150] = 0
    b[:10, 30:32, 50:150] = 0                                      # half of b has a thicker bar
    rows = {r.name: r for r in statistics_table(a, b)}
    assert rows["ink_fraction"].difference > 1 and rows["background"].difference == 0


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "is not a directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no images"),
])
def test_bad_real_folder_is_one_user_error(tmp_path, make, message):
    with pytest.raises(UserError, match=message) as e:
        fidelity_command("facebook", str(make(tmp_path)), n=20)
    assert "\n" not in str(e.value) and "--real" in str(e.value)


def test_too_few_or_unreadable_images_are_one_user_error(tmp_path):
    wiki, _ = generate(load_style("wikipedia"), 7, 0, 3)
    _write_pngs(tmp_path / "few", wiki)
    with pytest.raises(UserError, match="at least"):
        fidelity_command("wikipedia", str(tmp_path / "few"), n=20)
    (tmp_path / "few" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png"):
        fidelity_command("wikipedia", str(tmp_path / "few"), n=20)
