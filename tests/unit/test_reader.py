"""The reader API (trainer/reader.py), its recipe (trainer/recipe.py) and the decoder registry
(trainer/decoders): real torch models of the `tiny` style, real checkpoints, the real CLI."""
import dataclasses
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from synthstream.errors import UserError
from synthstream.generate import generate
from synthstream.style import load_style
from trainer import checkpoint
from trainer.decoders import Context, get, names
from trainer.model import build_model
from trainer.reader import Reader, Reading, load_reader
from trainer.recipe import Recipe, parse_spec, resolve, store


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained `tiny` network in a checkpoint (no recipe), and four images of the style."""
    torch.manual_seed(0)
    style = load_style("tiny")
    model = build_model("cpu", style).eval()
    path = tmp_path_factory.mktemp("reader") / "checkpoint.pt"
    checkpoint.save(path, model=model, optimizer=None, step=0, position=0, config={}, style_raw=style.to_raw(),
                    preset="cpu")
    images, _ = generate(style, 3, 0, 4)
    return path, images


def test_paths_pil_images_and_arrays_of_any_depth_read_the_same(tiny, tmp_path):
    path, images = tiny
    reader = load_reader(path)
    grey = images[0]
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "a16.png")
    colour = np.repeat(grey[:, :, None], 3, axis=2)
    forms = [tmp_path / "a.png", str(tmp_path / "a16.png"), Image.fromarray(grey), Image.fromarray(colour), grey,
             colour, grey.astype(np.uint16) * 257, grey.astype(np.float32) / 255]
    x, notes = reader.images(forms)
    assert x.shape == (len(forms), *grey.shape) and x.dtype == np.uint8 and notes == [""] * len(forms)
    for i in range(len(forms)):
        np.testing.assert_array_equal(x[i], grey)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        readings = reader.read(forms)
    assert len({(r.text, round(r.probability, 6)) for r in readings}) == 1
    small, note = reader.images([grey[:, ::2]])
    assert small.shape[1:] == grey.shape and note[0].startswith("resized from")
    with pytest.raises(ValueError):
        reader.images([object()])


@pytest.mark.parametrize("method", ["proposal", "is"])
def test_a_reading_does_not_depend_on_the_other_images_of_the_call(tiny, method):
    path, images = tiny
    reader = load_reader(path, method=method, particles=24)
    reader.batch_size = 3
    alone = [reader.read(im)[0] for im in images]
    together = reader.read(list(images))
    shuffled = reader.read([images[2], images[0], images[3], images[1]])
    for a, b in zip(alone, together):
        assert a.text == b.text
        assert [t for t, _ in a.top] == [t for t, _ in b.top]
        assert [p for _, p in a.top] == pytest.approx([p for _, p in b.top])
    assert [r.text for r in shuffled] == [together[i].text for i in (2, 0, 3, 1)]
    assert [r.text for r in reader.read(images)] == [r.text for r in together]     # an [n, H, W] array: n images
    other_seed = load_reader(path, method=method, particles=24).read(list(images), seed=1)
    assert len(other_seed) == 4 and all(0 <= r.probability <= 1 for r in other_seed)
    assert all(isinstance(r, Reading) and json.dumps(r.to_json()) for r in together)


def test_recipe_defaults_checkpoint_and_overrides_say_where_each_part_came_from(tiny, tmp_path):
    path, _ = tiny
    reader = load_reader(path)
    assert reader.recipe.method == "beam" and set(reader.recipe.sources.values()) == {"default"}
    state = checkpoint.load(path)
    store(state, resolve(None, {"method": "proposal", "particles": 7, "shifts": 2, "temperature": 0.5}))
    stored = tmp_path / "with_recipe.pt"
    torch.save(state, stored)
    r = load_reader(stored).recipe
    assert (r.method, r.particles, r.shifts, r.temperature) == ("proposal", 7, 2, 0.5)
    assert set(r.sources.values()) == {"checkpoint"}            # a stored recipe holds every part
    r = load_reader(stored, particles=9).recipe                 # an option: the temperature still applies
    assert r.particles == 9 and r.sources["particles"] == "override" and r.temperature == 0.5
    r = load_reader(stored, shifts=1, how="flag").recipe        # another reading: the stored T does not apply
    assert r.shifts == 1 and r.sources["shifts"] == "flag" and r.temperature == 1.0
    assert "fitted for another shifts" in r.sources["temperature"]
    r = load_reader(stored, method="is").recipe                 # IS takes no shifts: the stored 2 is dropped
    assert r.shifts == 1 and "takes no shifts" in r.sources["shifts"]
    with pytest.raises(UserError, match="--shifts applies to"):
        load_reader(stored, method="is", shifts=2)
    with pytest.raises(UserError, match="unknown recipe parts"):
        load_reader(stored, beam_size=3)
    about = load_reader(stored).describe()
    assert about["trained_on"] == "tiny" and about["recipe_sources"]["method"] == "checkpoint"
    state["recipe"] = {"method": "nonsense"}
    torch.save(state, stored)
    with pytest.raises(UserError, match="nonsense"):
        load_reader(stored)


def test_a_fitted_recipe_is_stored_and_survives_export(tiny, tmp_path):
    path, _ = tiny
    assert parse_spec("method=beam, beam-width=4,calibrate=30,scale=1.5") == \
        ({"method": "beam", "beam_width": 4}, {"calibrate": 30, "scale": 1.5})
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_spec("width=4")
    out = tmp_path / "exported.pt"
    checkpoint.export(path, out, recipe="method=beam,beam_width=4,shifts=2,calibrate=30")
    r = load_reader(out).recipe
    assert (r.method, r.beam_width, r.shifts) == ("beam", 4, 2) and 0.1 <= r.temperature <= 20
    assert r.calibration["n"] == 30 and r.versions["synthstream"] and set(r.sources.values()) == {"checkpoint"}
    again = tmp_path / "again.pt"
    checkpoint.export(out, again)                               # a plain export keeps the recipe
    assert load_reader(again).recipe.to_dict() == r.to_dict()


def test_infer_json_names_the_model_and_its_recipe_and_quotes_odd_file_names(tiny, tmp_path):
    path, images = tiny
    odd = tmp_path / "two\nlines.png"
    Image.fromarray(images[0]).save(odd)
    run = lambda *a: subprocess.run([sys.executable, "-m", "synthstream.cli", "infer", str(odd), "--checkpoint",
                                     str(path), *a], capture_output=True, text=True, timeout=300)
    r = run("--json", "--beam-width", "4")
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout)
    assert line["path"] == str(odd) and line["trained_on"] == "tiny" and line["recipe"]["beam_width"] == 4
    assert line["recipe_sources"] == {"method": "default", "beam_width": "flag", "prior": "default",
                                      "shifts": "default", "temperature": "default"}
    r = run("--method", "is", "--particles", "8", "--bandwidth", "1e4")
    recipe_line, *readings = r.stdout.splitlines()        # the recipe as a comment, then one line per image
    assert r.returncode == 0 and recipe_line.startswith("# ") and len(readings) == 1 and '"' in readings[0], r.stdout
    assert r.stderr == "", r.stderr
    assert "p=1.000" in r.stdout or "p=0." in r.stdout


def test_probabilities_never_exceed_one(tiny):
    path, images = tiny
    for r in load_reader(path, method="is", particles=16, bandwidth=1e4).read(list(images)):
        assert 0 <= r.probability <= 1 and all(p <= 1 for _, p in r.top)


def test_decoders_are_a_registry_a_plugin_is_one_object(tiny):
    from trainer.decoders import _REGISTRY, register
    from trainer.infer import Posterior, infer

    assert names()[:3] == ("beam", "proposal", "is") and not get("is").shiftable
    with pytest.raises(ValueError, match="use one of"):
        get("nope")

    @dataclasses.dataclass(frozen=True)
    class ConstantOptions:
        answer: str = "AB"

    class Constant:
        name, help, Options, shiftable = "constant", "always the same string", ConstantOptions, True

        def decode(self, model, style, images, options, context: Context):
            return [Posterior([options.answer], [1.0], particles=1) for _ in images]

        def report_fields(self, options, style):
            return {"answer": options.answer}

    register(Constant())
    try:
        path, images = tiny
        assert [p.map for p in infer(None, load_style("tiny"), images, method="constant", answer="C")] == ["C"] * 4
        reader = load_reader(path, method="constant", answer="D", shifts=2)
        assert reader.recipe.options == {"answer": "D"} and reader.read(images[0])[0].text == "D"
    finally:
        _REGISTRY.pop("constant")


def test_reader_build_swaps_the_prior_and_refuses_a_foreign_one(tiny):
    path, _ = tiny
    state = checkpoint.load(path)
    from trainer.model import model_from_checkpoint

    model, trained = model_from_checkpoint(state)
    reader = Reader.build(model, trained, Recipe(prior="tiny"))
    assert reader.style is trained and reader.describe()["prior"] == "tiny"
    with pytest.raises(UserError, match="alphabet"):
        Reader.build(model, trained, Recipe(prior="wikipedia"))
