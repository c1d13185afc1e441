"""The latent codec is the one place that knows the traced latents: adding one touches only the codec's table
and the style's fields, and the Arrow schema, the network, training and decoding follow."""
import numpy as np
import pytest
import torch

from synthstream import style as style_module
from synthstream import trace
from synthstream.batch import targets_of, to_record_batch, to_torch
from synthstream.generate import generate
from synthstream.style import load_style, parse_style
from trainer.metrics import evaluate
from trainer.model import build_model
from trainer.train import autocast_for, optimise


def test_class_indices_round_trip_through_values_and_texts():
    style = load_style("facebook")
    images, traces = generate(style, 4, 0, 32)
    codec = trace.codec_of(style)
    np.testing.assert_array_equal(codec.to_classes(codec.to_values(traces.classes)), traces.classes)
    np.testing.assert_array_equal(codec.encode_texts(traces.texts())[:, codec.char_start:],
                                  traces.classes[:, codec.char_start:])
    assert codec.texts(codec.encode_texts(["Ab3dEf"])) == ["Ab3dEf"]
    assert targets_of(style, to_record_batch(style, images, traces, 4)).tolist() == traces.classes.tolist()


def test_a_new_latent_needs_only_the_codec_table_and_the_style(monkeypatch):
    # the two edits a new latent needs: its entry in the codec's table, its field in the style file format
    monkeypatch.setattr(trace, "SCALARS", trace.SCALARS + (trace.Scalar("slant", trace._int_range("slant")),))
    monkeypatch.setitem(style_module._FIELDS["latents"], "slant", ("int", 0, 0, 8))
    raw = load_style("tiny").to_raw()
    raw["latents"]["slant"] = [0, 2]
    style = parse_style(raw, "tiny with slant")

    codec = trace.codec_of(style)
    assert codec.addresses[:5] == ("num_chars", "font", "font_size", "kerning", "slant")
    images, traces = generate(style, 0, 0, 64)
    assert set(traces.value("slant")) == {0, 1, 2}
    batch = to_torch(style, to_record_batch(style, images, traces, 0))     # a column of its own
    assert "slant" in batch.record_batch.schema.names and batch.targets.shape == (64, codec.steps)

    torch.manual_seed(0)
    model = build_model("cpu", style)                                      # a head of its own
    assert len(model.heads) == 6
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(30):
        images, traces = generate(style, 1, step * 32, 32)
        losses.append(float(optimise(model, opt, torch.from_numpy(images), torch.from_numpy(
            traces.classes.astype(np.int64)), 1.0, autocast_for(False), step)))
    assert losses[-1] < losses[0]
    images, traces = generate(style, 2, 0, 64)
    figures = evaluate(model, torch.from_numpy(images), torch.from_numpy(traces.classes.astype(np.int64)), codec)
    assert 0 <= figures["acc/slant"] <= 1 and np.isfinite(figures["loss"])
    values, _ = model.eval().decode(torch.from_numpy(images))
    assert all(t in ("A", "B", "C", "D") or len(t) == 2 for t in codec.texts(values.numpy()))


@pytest.mark.parametrize("name", ["wikipedia", "wikipedia_letters", "facebook", "lepture", "tiny"])
def test_log_prior_of_the_codec_matches_the_text_prior(name):
    style = load_style(name)
    codec = trace.codec_of(style)
    _, traces = generate(style, 0, 0, 16)
    scalars = sum(np.log(len(codec.support(a))) for a in codec.addresses[1:codec.char_start])
    np.testing.assert_allclose(traces.log_prior(), [codec.text.log_prob(t) - scalars for t in traces.texts()])
