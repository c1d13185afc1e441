"""Export parity: on 200 synthetic captchas every exported reader gives the PyTorch reader's greedy strings, and
its per-step log-probabilities agree within LOG_PROB_ATOL; a full disk is one line and leaves no file."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthstream.generate import render
from synthstream.trace import codec_of, sample_traces
from trainer.export import export, load_safetensors, read_metadata, texts
from trainer.reader import load_reader

ROOT = Path(__file__).resolve().parents[2]
MODEL = "lepture"                   # the shipped model with the fewest steps: the fastest to trace
N = 200
LOG_PROB_ATOL = 1e-4                # float32 graphs vs eager torch: observed <= 5e-5


@pytest.fixture(scope="module")
def reader():
    return load_reader(MODEL)


@pytest.fixture(scope="module")
def synthetic(reader):
    return render(reader.style, sample_traces(reader.style, 31337, 0, N))


@pytest.fixture(scope="module")
def reference(reader, synthetic):
    """The PyTorch reader's greedy decode (ProposalNet.decode) and each step's log-probabilities."""
    m, x = reader.model, torch.from_numpy(synthetic)
    values, _ = m.decode(x)
    state, steps = m.start(x), []
    for t in range(m.space.steps):
        logp, state = m.step(state, None if t == 0 else values[:, t - 1], t)
        steps.append(logp.numpy())
    return codec_of(reader.style).texts(values.numpy()), steps


@pytest.fixture(scope="module")
def exported(reader, tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    paths = {"pt": d / "r.pt", "safetensors": d / "r.safetensors", "onnx": d / "r.onnx",
             "torchscript": d / "r.ts.pt"}
    for fmt, path in paths.items():
        export(reader, fmt, path, checkpoint=MODEL)
    return paths


def _check_graph_outputs(chars, log_probs, reference, alphabet):
    strings, steps = reference
    assert texts(np.asarray(chars), alphabet) == strings
    for t, ref in enumerate(steps):
        got = np.asarray(log_probs)[:, t, :ref.shape[1]]
        np.testing.assert_allclose(got, ref, atol=LOG_PROB_ATOL, rtol=0)
        assert np.all(np.isneginf(np.asarray(log_probs)[:, t, ref.shape[1]:]))


def test_onnx_reads_like_pytorch(exported, synthetic, reference, reader):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    meta = read_metadata(exported["onnx"])
    chars, log_probs = session.run(None, {"images": synthetic})
    _check_graph_outputs(chars, log_probs, reference, meta["style"]["alphabet"])
    assert meta["style"]["alphabet"] == reader.alphabet and meta["graph"]["decoding"] == "greedy"
    assert meta["recipe"]["method"] == reader.recipe.method


def test_torchscript_reads_like_pytorch(exported, synthetic, reference):
    module = torch.jit.load(str(exported["torchscript"]))
    meta = read_metadata(exported["torchscript"])
    with torch.no_grad():
        chars, log_probs = module(torch.from_numpy(synthetic))
    _check_graph_outputs(chars.numpy(), log_probs.numpy(), reference, meta["style"]["alphabet"])
    with torch.no_grad():                              # another batch size than the traced example's
        one, _ = module(torch.from_numpy(synthetic[:1]))
    assert texts(one.numpy(), meta["style"]["alphabet"]) == reference[0][:1]


def test_safetensors_and_pt_read_like_pytorch(exported, synthetic, reference, reader):
    for r in (load_safetensors(exported["safetensors"], method="proposal", particles=1),
              load_reader(exported["pt"], method="proposal", particles=1)):
        assert [x.text for x in r.read(list(synthetic))] == reference[0]
    meta = read_metadata(exported["safetensors"])
    assert meta["codec"]["char_start"] == reader.model.space.char_start
    assert json.loads(json.dumps(meta)) == meta


def test_export_to_a_full_disk_is_one_line_and_leaves_no_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))  # noqa: E731
    for fmt, name in (("onnx", "r.onnx"), ("pt", "r.pt")):
        proc = subprocess.run([sys.executable, "-m", "synthstream.cli", "export", "--checkpoint", MODEL,
                               "--format", fmt, "--out", str(out / name)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, preexec_fn=limit)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [f"synthstream: error: cannot write {str(out / name)!r}: File too large"]
        assert list(out.iterdir()) == []


def test_export_recipe_fits_a_temperature_into_the_copy_and_leaves_the_source_alone(tmp_path):
    from trainer.checkpoint import resolve

    source = resolve(MODEL)
    before = source.read_bytes()
    out = tmp_path / "fitted.pt"
    proc = subprocess.run([sys.executable, "-m", "synthstream.cli", "export", "--checkpoint", MODEL, "--out",
                           str(out), "--recipe", "method=beam,beam_width=8,calibrate=50"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    recipe = load_reader(out).recipe
    assert (recipe.method, recipe.sources["temperature"]) == ("beam", "checkpoint")
    assert recipe.calibration and recipe.calibration["n"] == 50
    assert source.read_bytes() == before
    bad = subprocess.run([sys.executable, "-m", "synthstream.cli", "export", "--checkpoint", MODEL, "--out",
                          str(tmp_path / "bad.pt"), "--recipe", "bogus=1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.pt").exists()
