import pickle

import pytest
import torch

from synthstream.errors import UserError
from synthstream.style import load_style
from trainer import checkpoint
from trainer.model import build_model


def test_round_trip(tmp_path):
    style = load_style("tiny")
    model = build_model("cpu", style)
    opt = torch.optim.AdamW(model.parameters())
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, model=model, optimizer=opt, step=7, position=7, config={"steps": 10},
                    style_raw=style.to_raw(), preset="cpu")
    state = checkpoint.load(tmp_path)                 # a folder holding checkpoint.pt also works
    assert state["step"] == 7 and state["style"]["name"] == "tiny" and state["preset"] == "cpu"
    fresh = build_model("cpu", style)
    fresh.load_state_dict(state["model"])
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert list(tmp_path.iterdir()) == [path]         # no temporary file left behind


@pytest.mark.parametrize("content, fragment", [
    (b"", "cannot be read"), (b"not a checkpoint at all", "cannot be read"),
])
def test_corrupt_files_are_refused_in_one_line(tmp_path, content, fragment):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=fragment):
        checkpoint.load(path)


def test_truncated_checkpoint(tmp_path):
    style = load_style("tiny")
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, model=build_model("cpu", style), optimizer=None, step=1, position=1, config={},
                    style_raw=style.to_raw(), preset="cpu")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="cannot be read"):
        checkpoint.load(path)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unsafe_pickles_are_not_executed(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "model": Evil()}, path)
    with pytest.raises(UserError, match="cannot be read"):
        checkpoint.load(path)
    assert "must never run" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UserError):
        checkpoint.load(path)


def test_other_torch_files_are_not_ours(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(UserError, match="not a synthstream checkpoint"):
        checkpoint.load(path)
    with pytest.raises(UserError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("preset", ["cpu", "cpu-columns"])
def test_model_rebuilds_from_its_checkpoint(tmp_path, preset):
    from trainer.model import model_from_checkpoint
    style = load_style("tiny")
    model = build_model(preset, style).eval()
    checkpoint.save(tmp_path / "c.pt", model=model, optimizer=None, step=3, position=3, config={},
                    style_raw=style.to_raw(), preset=preset)
    again, again_style = model_from_checkpoint(checkpoint.load(tmp_path / "c.pt"))
    assert again_style == style and again.net == model.net
    x = torch.randint(0, 256, (2, 32, 48), dtype=torch.uint8)
    torch.testing.assert_close(again.decode(x)[1], model.decode(x)[1])


def test_export_is_half_size_and_still_loads(tmp_path):
    from trainer.model import model_from_checkpoint
    style = load_style("tiny")
    model = build_model("cpu", style).eval()
    full = tmp_path / "full.pt"
    checkpoint.save(full, model=model, optimizer=torch.optim.AdamW(model.parameters()), step=3, position=3,
                    config={}, style_raw=style.to_raw(), preset="cpu")
    slim = tmp_path / "slim.pt"
    checkpoint.export(full, slim)
    assert slim.stat().st_size < 0.55 * full.stat().st_size          # float16 weights, no optimiser state
    again, _ = model_from_checkpoint(checkpoint.load(slim))
    x = torch.zeros(2, 32, 48, dtype=torch.uint8)
    torch.testing.assert_close(again.embed_image(x), model.embed_image(x), rtol=1e-2, atol=1e-2)


def _tampered(tmp_path, change) -> str:
    from synthstream.style import load_style
    from trainer.model import build_model
    model = build_model("cpu", load_style("tiny"))
    path = tmp_path / "t.pt"
    checkpoint.save(path, model=model, optimizer=None, step=1, position=1, config={},
                    style_raw=load_style("tiny").to_raw(), preset="cpu")
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.pop("style"), "names no style"),
    (lambda s: s["style"].update(height=-3), "style is invalid"),
    (lambda s: s.update(net=None, preset="huge"), "unknown preset 'huge'"),
    (lambda s: s["model"].update({k: v * float("nan") for k, v in list(s["model"].items())[:1]}), "non-finite"),
])
def test_tampered_checkpoints_are_one_line(tmp_path, change, fragment):
    with pytest.raises(UserError, match=fragment):
        checkpoint.load(_tampered(tmp_path, change))


def test_weights_of_the_wrong_shape_are_one_line(tmp_path):
    from trainer.model import model_from_checkpoint
    path = _tampered(tmp_path, lambda s: s["model"].update(
        {k: torch.zeros(3) for k in list(s["model"])[:1]}))
    with pytest.raises(UserError, match="do not fit its network"):
        model_from_checkpoint(checkpoint.load(path))


def _saved(tmp_path):
    style = load_style("tiny")
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, model=build_model("cpu", style), optimizer=None, step=1, position=1, config={},
                    style_raw=style.to_raw(), preset="cpu")
    return path, torch.load(path, weights_only=True)


def test_an_edited_alphabet_is_refused(tmp_path):
    path, state = _saved(tmp_path)
    torch.save({**state, "style": {**state["style"], "alphabet": "ABCE"}}, path)    # same size: the weights fit
    with pytest.raises(UserError, match="its style was edited after training"):
        checkpoint.load(path)


@pytest.mark.parametrize("change, fragment", [
    ({"colour": 1}, "unknown field 'colour'"), ({"conv": "big"}, "conv = 'big' must list"),
    ({"conv": [[16, "yes"]]}, "must list"), ({"lstm_layers": 0}, r"lstm_layers = 0 must be an integer in \[1, 8\]"),
    ({"lstm_hidden": True}, "lstm_hidden = True"), ({"fc": [2000000000]}, "fc width = 2000000000"),
    ({"fc": [60000, 60000]}, r"weights \(.* GB\), more than"), ({"conv": [[8, True]] * 12}, "does not fit a 48x32"),
])
def test_a_tampered_network_shape_is_refused_before_building(tmp_path, change, fragment):
    path, state = _saved(tmp_path)
    torch.save({**state, "net": {**state["net"], **change}}, path)
    with pytest.raises(UserError, match=f"its network shape is invalid \\(.*{fragment}"):
        checkpoint.load(path)


def test_the_raw_pickle_refusal_prints_no_warning(tmp_path, recwarn):
    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": 1, "model": Evil()}, f, protocol=4)
    with pytest.raises(UserError, match="holds Python objects"):
        checkpoint.load(path)
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]
