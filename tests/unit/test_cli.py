"""The `synthstream` command as a user runs it: real subprocesses, real files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from synthstream import cli
from synthstream.commands import export
from synthstream.errors import RunFailed, UserError
from synthstream.limits import MAX_SEED


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthstream.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_sample_grid_png(tmp_path):
    out = tmp_path / "grid.png"
    r = run("sample", "--style", "tiny", "-n", "6", "--seed", "3", "--columns", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    im = Image.open(out)
    assert im.width > 3 * 48 and im.height > 2 * 32


def test_sample_grid_with_real(tmp_path, real_captchas):
    out = tmp_path / "grid.png"
    r = run("sample", "--style", "wikipedia", "-n", "4", "--columns", "2", "--out", str(out),
            "--real", str(real_captchas / "wikipedia"))
    assert r.returncode == 0, r.stderr
    assert Image.open(out).width > 3 * 200


def test_sample_npz_holds_images_and_latents(tmp_path):
    out = tmp_path / "batch.npz"
    assert run("sample", "--style", "lepture", "-n", "5", "--out", str(out)).returncode == 0
    d = np.load(out)
    assert d["images"].shape == (5, 60, 160) and d["images"].dtype == np.uint8
    assert d["chars"].shape == (5, 4) and len(d["texts"]) == 5 and str(d["style"]) == "lepture"
    assert {"keys", "num_chars", "font", "font_size", "kerning", "log_prior"} <= set(d.files)


@pytest.mark.parametrize("args, fragment", [
    (["sample", "--style", "nope", "--out", "{tmp}/a.png"],
     "available: facebook, facebook_fit, facebook_wake, lepture, rough, tiny"),
    (["sample", "-n", "0", "--out", "{tmp}/a.png"], "must be >= 1"),
    (["sample", "-n", "5000", "--out", "{tmp}/a.png"], "at most 1024 tiles"),
    (["sample", "--out", "{tmp}/missing/a.png"], "does not exist"),
    (["sample", "--out", "{tmp}/a.gif"], ".png or .npz"),
    (["sample", "--out", "{tmp}/a.png", "--real", "{tmp}/nowhere"], "not a directory"),
    (["sample", "--style", "{tmp}/none.toml", "--out", "{tmp}/a.png"], "does not exist"),
    (["bench", "generator", "--style", "nope"], "unknown style"),
    (["sample", "--seed", str(2**63), "--out", "{tmp}/a.png"], "argument --seed: 9223372036854775808 must be < 2**63"),
    (["sample", "--first-index", str(2**63), "--out", "{tmp}/a.png"], "argument --first-index"),
    (["train", "--seed", "-1", "--out", "{tmp}/run"], "argument --seed: -1 must be >= 0"),
    (["bench", "stream", "--actors", "1,x"], "argument --actors"),
    (["bench", "stream", "--actors", "0"], "every count must be >= 1"),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, fragment):
    line = one_error_line(run(*[a.format(tmp=tmp_path) for a in args]))
    assert fragment in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert "not writable" in one_error_line(run("sample", "--out", str(ro / "a.png")))


def test_missing_font_is_named(tmp_path):
    style = tmp_path / "mine.toml"
    style.write_text('name = "mine"\nheight = 32\nwidth = 64\nalphabet = "ab"\n'
                     'fonts = [{ file = "Nope-Bold.ttf", package = "fonts-nope" }]\n'
                     '[latents]\nnum_chars = 1\nfont_size = 20\n')
    line = one_error_line(run("sample", "--style", str(style), "--out", str(tmp_path / "a.png")))
    assert "Nope-Bold.ttf" in line and "fonts-nope" in line


def test_bench_generator_json(tmp_path):
    out = tmp_path / "gen.json"
    r = run("bench", "generator", "--style", "tiny", "--seconds", "0.5", "--batch", "64", "--json", str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    tiny = result["styles"]["tiny"]
    assert tiny["images_per_s"] > 0 and tiny["images_per_s_per_core"] > 0 and tiny["threads"] >= 1
    assert result["baseline"]["images_per_s_per_core"] > 0
    assert "x baseline" in r.stdout


def test_python_dash_m_synthstream_help():
    r = subprocess.run([sys.executable, "-m", "synthstream", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for command in ("sample", "train", "infer", "eval", "export", "bench"):
        assert command in r.stdout


def test_every_subcommand_registers_its_body():
    parser = cli.build_parser()
    for argv in (["sample", "--out", "a.png"], ["train", "--out", "o"], ["infer", "a.png", "--checkpoint", "c"],
                 ["eval", "--data", "d", "--checkpoint", "c"], ["export", "--checkpoint", "c", "--out", "e.pt"],
                 ["bench", "generator"], ["bench", "stream"], ["bench", "train"]):
        args = parser.parse_args(argv)
        assert callable(args.func) and args.func.__name__.startswith("run"), argv


def test_seed_limit_is_shared():
    parser = cli.build_parser()
    assert parser.parse_args(["sample", "--seed", str(MAX_SEED - 1), "--out", "a.png"]).seed == MAX_SEED - 1
    assert parser.parse_args(["bench", "stream", "--actors", "1,2"]).actors == [1, 2]


@pytest.mark.parametrize("error, status", [
    (UserError("bad --flag"), 2), (RunFailed("training failed: worker died"), 1), (KeyboardInterrupt(), 130),
])
def test_exit_status_and_one_line(monkeypatch, capsys, error, status):
    def fail(args):
        raise error
    monkeypatch.setattr(export, "run", fail)
    assert cli.main(["export", "--checkpoint", "c", "--out", "e.pt"]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("synthstream: ")


def test_sample_folder_is_written_whole(tmp_path):
    out = tmp_path / "set"
    r = run("sample", "--style", "tiny", "-n", "3", "--out", f"{out}/")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png", "labels.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["set"]           # no temporary folder left behind
    assert (out / "labels.csv").read_text().startswith("file,label\n000000.png,")


def test_npz_is_written_in_chunks_and_equals_one_batch(tmp_path, monkeypatch):
    import numpy as np

    from synthstream.commands import sample as sample_command
    from synthstream.generate import generate
    from synthstream.style import load_style
    monkeypatch.setattr(sample_command, "NPZ_CHUNK", 7)          # 50 samples in 8 chunks
    assert cli.main(["sample", "--style", "tiny", "-n", "50", "--seed", "3", "--out", str(tmp_path / "x.npz")]) == 0
    d = np.load(tmp_path / "x.npz")
    images, traces = generate(load_style("tiny"), 3, 0, 50)
    np.testing.assert_array_equal(d["images"], images)
    assert d["texts"].tolist() == traces.texts() and d["classes"].tolist() == traces.classes.tolist()


def test_errors_a_restart_cannot_fix_are_told_from_transient_ones():
    import errno

    from synthstream.errors import UserError, deterministic, out_of_space

    arrow_full = OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert deterministic(arrow_full) and out_of_space(arrow_full)
    assert deterministic(OSError(errno.EROFS, "Read-only file system")) and deterministic(UserError("bad"))
    assert not out_of_space(OSError(errno.EROFS, "Read-only file system"))
    assert not deterministic(ConnectionError("node lost")) and not deterministic(RuntimeError("actor died"))
