import pytest
import torch

from synthstream.batch import to_record_batch, to_torch
from synthstream.errors import UserError
from synthstream.generate import generate
from synthstream.style import builtin_styles, load_style
from synthstream.trace import codec_of
from trainer.model import PRESETS, build_model


def batch_of(style_name, n=8, seed=0):
    style = load_style(style_name)
    images, traces = generate(style, seed, 0, n)
    return style, to_torch(style, to_record_batch(style, images, traces, seed))


@pytest.mark.parametrize("name", builtin_styles())
def test_cpu_preset_learns_a_step_on_every_style(name):
    torch.manual_seed(0)
    style, b = batch_of(name)
    model = build_model("cpu", style)
    nll, argmax = model(b.images, b.targets)
    assert nll.shape == (8,) and argmax.shape == b.targets.shape and torch.isfinite(nll).all()
    nll.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_column_preset_attends_and_trains_every_part():
    torch.manual_seed(0)
    style, b = batch_of("wikipedia")
    model = build_model("cpu-columns", style)
    assert model.column_pos.shape == (25, 128)           # one column per 8 px of the 200 px image
    nll, _ = model(b.images, b.targets)
    nll.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # the attended summary depends on where the query looks: two queries, two different summaries
    columns = model.encode(b.images[:1])[1]
    a, c = (model.attend_columns(columns, h) for h in torch.randn(2, 1, model.net.lstm_hidden) * 10)
    assert not torch.allclose(a, c)


def test_presets_and_paper_shape():
    style = load_style("wikipedia")
    paper = build_model("paper", style)
    convs = [m for m in paper.cnn if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 128, 128]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in paper.cnn) == 3
    assert [m.out_features for m in paper.fc if isinstance(m, torch.nn.Linear)] == [1024, 1024]
    assert paper.lstm.hidden_size == 512 and paper.lstm.num_layers == 2
    assert set(PRESETS) == {"paper", "cpu", "gpu", "cpu-columns", "gpu-columns"}
    with pytest.raises(UserError, match="available: paper, cpu, gpu, cpu-columns, gpu-columns"):
        build_model("huge", style)


@pytest.mark.parametrize("preset", ["cpu", "cpu-columns"])
def test_decode_is_consistent_with_the_teacher_forced_loss(preset):
    torch.manual_seed(1)
    style, b = batch_of("wikipedia", n=6)
    model = build_model(preset, style).eval()
    values, logq = model.decode(b.images)
    # the decoded trace, fed back as targets, must get exactly -log q from the teacher-forced pass
    nll, _ = model(b.images, values)
    torch.testing.assert_close(nll, -logq, rtol=1e-4, atol=1e-4)
    n_chars = values[:, 0] + 8
    for row, n in zip(values, n_chars):
        assert (row[4:4 + n] >= 0).all() and (row[4 + n:] == -1).all()
    assert all(len(t) == n for t, n in zip(codec_of(style).texts(values.numpy()), n_chars.tolist()))


@pytest.mark.parametrize("preset", ["cpu", "cpu-columns"])
def test_sampling_draws_from_q(preset):
    torch.manual_seed(2)
    style, b = batch_of("tiny", n=4)
    model = build_model(preset, style).eval()
    g = torch.Generator().manual_seed(0)
    a, la = model.decode(b.images, sample=True, generator=g)
    nll, _ = model(b.images, a)
    torch.testing.assert_close(nll, -la, rtol=1e-4, atol=1e-4)
