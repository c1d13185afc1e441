"""Bad input at the command line, one CLI subprocess per row (two at a time): the exit status (2 bad input, 1
failed run, 0 when a bad file is only skipped), exactly one stderr line, never a traceback, no partial output, no
user file changed. Rows for defects being fixed elsewhere are xfail (not strict), naming the defect."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Row:
    id: str
    argv: list[str]                       # after `synthstream`; {D} is the module's input folder, {O} a fresh one
    exit: int
    line: str | None                      # regex the one stderr line must match; None: stderr must be empty
    env: dict[str, str] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()         # files under {O} a successful row creates
    fsize_limit: int | None = None        # RLIMIT_FSIZE for the run (a full disk, as far as one file goes)
    xfail: str | None = None              # the defect, when a fix outside this file is pending


ERR = r"synthstream: error: "

ROWS = [
    # -- fixed here: images, labelled folders, --real folders, fonts, unreachable clusters --------------------
    Row("infer-bomb-png-is-one-line", ["infer", "{D}/bomb/AC.png", "{D}/good/AB.png", "--checkpoint", "{D}/tiny.pt"],
        0, ERR + r".*AC\.png: too large"),
    Row("eval-folder-with-a-bomb-still-runs", ["eval", "--data", "{D}/bomb", "--checkpoint", "{D}/tiny.pt"],
        0, ERR + r".*AC\.png: too large"),
    Row("infer-16-bit-and-rgba-are-fine", ["infer", "{D}/grey16.png", "{D}/rgba.png", "--checkpoint", "{D}/tiny.pt"],
        0, None),
    Row("eval-labels-csv-not-utf8", ["eval", "--data", "{D}/latin1", "--checkpoint", "{D}/tiny.pt"],
        2, ERR + r".*labels\.csv' is not UTF-8 \(byte 0xe9 on line 2\)"),
    Row("eval-labels-csv-bad-rows", ["eval", "--data", "{D}/badrows", "--checkpoint", "{D}/tiny.pt"],
        2, ERR + r".*row 2: expected 2 columns.*row 3: no image file 'gone\.png'"),
    Row("sample-real-folder-skips-non-images",
        ["sample", "--style", "tiny", "-n", "8", "--out", "{O}/grid.png", "--real", "{D}/real_mixed"],
        0, r"synthstream: skipped --real file .*broken\.png.*: not an image", outputs=("grid.png",)),
    Row("sample-real-folder-without-images",
        ["sample", "--style", "tiny", "-n", "2", "--out", "{O}/grid.png", "--real", "{D}/real_none"],
        2, ERR + r"--real .* holds no readable image \(broken\.png: not an image\)"),
    Row("font-without-the-alphabets-glyphs", ["sample", "--style", "{D}/cjk.toml", "-n", "1", "--out", "{O}/x.png"],
        2, ERR + r".*DejaVuSans-Bold\.ttf' has no glyph for 1 of the alphabet's characters: '中'"),
    Row("corrupt-font-file", ["sample", "--style", "{D}/broken_font.toml", "-n", "1", "--out", "{O}/x.png"],
        2, ERR + r"font file .*Broken\.ttf' cannot be read by FreeType", env={"SYNTHSTREAM_FONT_PATH": "{D}/fonts"}),
    Row("unreachable-cluster-times-out", ["bench", "stream", "--address", "127.0.0.1:1", "--seconds", "1"],
        2, ERR + r"cannot reach the Ray cluster at '127\.0\.0\.1:1' within 2 s",
        env={"SYNTHSTREAM_CONNECT_TIMEOUT_S": "2"}),
    # -- behaviours that already worked: the regression net --------------------------------------------------
    Row("unknown-style", ["sample", "--style", "nosuch", "--out", "{O}/x.png"], 2, ERR + r"unknown style 'nosuch'"),
    Row("missing-checkpoint", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/nope.pt"],
        2, ERR + r"checkpoint .*nope\.pt' does not exist"),
    Row("corrupt-checkpoint", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/corrupt.pt"],
        2, ERR + r"checkpoint .*corrupt\.pt' cannot be read"),
    Row("checkpoint-of-another-style",
        ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/tiny.pt", "--style", "wikipedia"],
        2, ERR + r".*is a model of style 'tiny', not 'wikipedia'"),
    Row("eval-missing-folder", ["eval", "--data", "{D}/nope", "--checkpoint", "{D}/tiny.pt"],
        2, ERR + r"--data .* is not a directory"),
    Row("eval-folder-without-images", ["eval", "--data", "{D}/empty", "--checkpoint", "{D}/tiny.pt"],
        2, ERR + r"--data .* holds no images"),
    Row("sample-into-a-folder-that-is-not-empty", ["sample", "--style", "tiny", "-n", "2", "--out", "{D}/full/"],
        2, ERR + r"--out .* is a folder that is not empty"),
    Row("sample-unknown-suffix", ["sample", "--out", "{O}/x.txt"], 2, ERR + r"--out .*: expected a file ending in"),
    Row("sample-grid-too-big", ["sample", "-n", "5000", "--out", "{O}/x.png"], 2, ERR + r"-n 5000: a PNG grid holds"),
    Row("export-unknown-suffix", ["export", "--checkpoint", "{D}/tiny.pt", "--out", "{O}/x.bin"],
        2, ERR + r"--out .*: expected a file ending in \.pt"),
    Row("bench-bad-actor-list", ["bench", "stream", "--actors", "a,b"], 2,
        r"synthstream bench stream: error: argument --actors: 'a,b': expected"),
    Row("bad-seed-is-one-line", ["sample", "--seed", "-1", "--out", "{O}/x.png"], 2,
        r"synthstream sample: error: argument --seed: .*"),
    Row("seed-too-large", ["sample", "--seed", str(2**63), "--out", "{O}/x.png"], 2,
        r"synthstream sample: error: argument --seed: .*< 2\*\*63"),
    Row("sample-folder-on-a-full-disk", ["sample", "--style", "tiny", "-n", "64", "--out", "{O}/set/"],
        2, ERR + r".*set", fsize_limit=600),
    Row("checkpoint-without-a-style", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/nostyle.pt"],
        2, ERR + r"checkpoint .*nostyle\.pt' is damaged: it names no style"),
    Row("checkpoint-with-nan-weights", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/nan.pt"],
        2, ERR + r"checkpoint .*nan\.pt' is damaged: non-finite weights"),
    Row("train-into-a-folder-of-user-files", ["train", "--style", "tiny", "--steps", "5", "--out", "{D}/full"],
        2, ERR + r"--out .* holds files that are not a synthstream run \(keep\.txt\)"),
    Row("train-into-a-run-with-other-settings", ["train", "--style", "tiny", "--steps", "5", "--out", "{D}/run"],
        2, ERR + r"--out .* holds a run with other settings \(.*style.*\)"),
    Row("train-generator-resource-not-custom", ["train", "--generator-resource", "CPU", "--out", "{O}/r"],
        2, r"synthstream train: error: argument --generator-resource: .*custom resource"),
    Row("eval-out-is-a-file", ["eval", "--data", "{D}/good", "--checkpoint", "{D}/tiny.pt", "--out",
                               "{D}/full/keep.txt"], 2, ERR + r"--out .*keep\.txt' exists and is not a folder"),
    Row("eval-out-holds-user-files", ["eval", "--data", "{D}/good", "--checkpoint", "{D}/tiny.pt", "--out",
                                      "{D}/full"], 2,
        ERR + r"--out .* holds files that synthstream did not write as an evaluation report \(keep\.txt\)"),
    Row("style-file-not-utf8", ["sample", "--style", "{D}/latin1.toml", "--out", "{O}/x.png"],
        2, ERR + r"style file .*latin1\.toml' is not UTF-8 text"),
    Row("bench-seconds-too-short", ["bench", "generator", "--seconds", "1e-9"],
        2, r"synthstream bench generator: error: argument --seconds: .*too short"),
    Row("train-negative-resource-wait", ["train", "--resource-wait", "-1", "--out", "{O}/r"],
        2, r"synthstream train: error: argument --resource-wait: .*must be >= 0"),
    # -- issue 24: user data, silently wrong reads, FIFOs, tampered checkpoints, damaged run folders -----------
    Row("eval-out-holds-the-users-report-json", ["eval", "--data", "{D}/good", "--checkpoint", "{D}/tiny.pt",
                                                 "--out", "{D}/userreport"], 2,
        ERR + r"--out .*userreport' holds files that synthstream did not write .*\(report\.json\)"),
    Row("fidelity-out-holds-the-users-fidelity-json", ["fidelity", "--style", "tiny", "--real", "{D}/good", "-n",
                                                       "10", "--out", "{D}/userfid"], 2,
        ERR + r"--out .*userfid' holds files that synthstream did not write as a fidelity report"),
    Row("infer-float-tiff-with-nan", ["infer", "{D}/nan.tif", "{D}/good/AB.png", "--checkpoint", "{D}/tiny.pt"],
        0, ERR + r".*nan\.tif: 1 of its 1536 pixels are NaN"),
    Row("infer-fifo-named-png", ["infer", "{D}/fifo/pipe.png", "{D}/good/AB.png", "--checkpoint", "{D}/tiny.pt"],
        0, ERR + r".*pipe\.png: not a regular file \(a FIFO\)"),
    Row("eval-folder-with-a-fifo", ["eval", "--data", "{D}/fifo", "--checkpoint", "{D}/tiny.pt"],
        0, ERR + r".*pipe\.png: not a regular file \(a FIFO\)"),
    Row("fidelity-real-folder-with-a-fifo", ["fidelity", "--style", "tiny", "--real", "{D}/fifo", "-n", "10"],
        2, ERR + r"--real: .*pipe\.png' is not a readable image \(not a regular file \(a FIFO\)\)"),
    Row("fifo-in-the-font-path", ["sample", "--style", "tiny", "-n", "1", "--out", "{O}/x.png"], 0, None,
        env={"SYNTHSTREAM_FONT_PATH": "{D}/fifofonts"}, outputs=("x.png",)),
    Row("style-alphabet-with-a-space", ["sample", "--style", "{D}/space.toml", "--out", "{O}/x.png"],
        2, ERR + r"style .*field alphabet = 'AB C': character ' ' \(U\+0020\) draws no ink"),
    Row("style-with-a-utf8-bom", ["sample", "--style", "{D}/bom.toml", "-n", "1", "--out", "{O}/x.png"], 0, None,
        outputs=("x.png",)),
    Row("style-path-is-a-directory", ["sample", "--style", "{D}/styledir.toml", "--out", "{O}/x.png"],
        2, ERR + r"style file .*styledir\.toml' is a directory"),
    Row("style-path-is-a-symlink-loop", ["sample", "--style", "{D}/loop.toml", "--out", "{O}/x.png"],
        2, ERR + r"style file .*loop\.toml' cannot be read \(.*symbolic link loop\)"),
    Row("labels-csv-is-a-directory", ["eval", "--data", "{D}/csvdir", "--checkpoint", "{D}/tiny.pt"],
        2, ERR + r".*labels\.csv' is not a regular file"),
    Row("checkpoint-with-an-edited-alphabet", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/edited.pt"],
        2, ERR + r"checkpoint .*edited\.pt' is damaged: its style was edited after training"),
    Row("checkpoint-net-unknown-key", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/net_key.pt"],
        2, ERR + r".*net_key\.pt' is damaged: its network shape is invalid \(unknown field 'colour'\)"),
    Row("checkpoint-net-conv-a-string", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/net_conv.pt"],
        2, ERR + r".*net_conv\.pt' is damaged: its network shape is invalid \(conv = 'big' must list"),
    Row("checkpoint-net-no-lstm-layers", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/net_lstm.pt"],
        2, ERR + r".*net_lstm\.pt' is damaged: .*lstm_layers = 0 must be an integer in \[1, 8\]"),
    Row("checkpoint-net-4-tb-fc", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/net_fc.pt"],
        2, ERR + r".*net_fc\.pt' is damaged: .*fc width = 2000000000 must be"),
    Row("checkpoint-net-too-many-weights", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/net_big.pt"],
        2, ERR + r".*net_big\.pt' is damaged: .*weights \(.* GB\), more than the 500,000,000 allowed"),
    Row("checkpoint-raw-pickle-is-one-line", ["infer", "{D}/good/AB.png", "--checkpoint", "{D}/pickle.pt"],
        2, ERR + r"checkpoint .*pickle\.pt' cannot be read \(it holds Python objects"),
    Row("sample-first-index-near-2-63", ["sample", "--style", "tiny", "--first-index", str(2**63 - 1), "-n", "2",
                                         "--out", "{O}/x.png"], 2, ERR + r"--first-index .* would pass 2\*\*63 - 1"),
    Row("train-run-json-finished-step-a-string", ["train", "--style", "tiny", "--steps", "5", "--out",
                                                  "{D}/badrun"], 2,
        ERR + r"--out: .*run\.json' is damaged \(finished_step = 'seven' is not a step number\)"),
    Row("sample-folder-on-a-full-disk-leaves-no-folder", ["sample", "--style", "tiny", "-n", "64", "--out",
                                                          "{O}/new/set/"], 2, ERR + r".*set", fsize_limit=600),
]


class _Pickled:
    """A raw pickle payload (never unpickled by the CLI: weights_only refuses it)."""

    def __reduce__(self):
        return (os.getcwd, ())


def _tampered_checkpoints(d: Path) -> None:
    """tiny.pt with its style or network shape edited, and a raw pickle."""
    import pickle

    import torch

    state = torch.load(d / "tiny.pt", weights_only=True)
    torch.save({**state, "style": {**state["style"], "alphabet": "ABCE"}}, d / "edited.pt")
    net = state["net"]
    for name, change in (("key", {"colour": 1}), ("conv", {"conv": "big"}), ("lstm", {"lstm_layers": 0}),
                         ("fc", {"fc": [2000000000]}), ("big", {"fc": [60000, 60000]})):
        torch.save({**state, "net": {**net, **change}}, d / f"net_{name}.pt")
    with open(d / "pickle.pt", "wb") as f:
        pickle.dump({"format": 1, "model": _Pickled()}, f, protocol=4)


def _odd_files(d: Path, image: np.ndarray) -> None:
    """FIFOs, a NaN TIFF, styles with a space, a BOM, a folder or a loop for a name, folders of the user's."""
    from PIL import Image

    nan = np.full(image.shape, 0.5, np.float32)
    nan[0, 0] = np.nan
    Image.fromarray(nan, "F").save(d / "nan.tif")
    for folder in ("fifo", "fifofonts", "csvdir", "userreport", "userfid", "badrun", "styledir.toml"):
        (d / folder).mkdir()
    Image.fromarray(image).save(d / "fifo" / "AB.png")
    os.mkfifo(d / "fifo" / "pipe.png")
    os.mkfifo(d / "fifofonts" / "DejaVuSans-Bold.ttf")
    Image.fromarray(image).save(d / "csvdir" / "AB.png")
    (d / "csvdir" / "labels.csv").mkdir()
    (d / "userreport" / "report.json").write_text('{"mine": true}')
    (d / "userfid" / "fidelity.json").write_text('{"mine": true}')
    (d / "badrun" / "run.json").write_text('{"identity": {}, "finished_step": "seven"}')
    tiny = (ROOT / "synthstream" / "styles" / "tiny.toml").read_text()
    (d / "space.toml").write_text(tiny.replace('alphabet = "ABCD"', 'alphabet = "AB C"'))
    (d / "bom.toml").write_bytes(b"\xef\xbb\xbf" + tiny.encode())
    os.symlink(d / "loop.toml", d / "loop.toml")


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG declaring width x height with almost no data (a decompression bomb before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Every input the rows read, made once: a tiny untrained checkpoint, images, folders, styles, fonts."""
    import torch

    from synthstream.fonts import find_font
    from synthstream.style import FontSpec, load_style
    from trainer.checkpoint import save
    from trainer.model import build_model

    d = tmp_path_factory.mktemp("inputs")
    tiny = load_style("tiny")
    torch.manual_seed(0)
    save(d / "tiny.pt", model=build_model("cpu", tiny), optimizer=None, step=0, position=0, config={},
         style_raw=tiny.to_raw(), preset="cpu")
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    state = torch.load(d / "tiny.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "style"}, d / "nostyle.pt")
    first = next(iter(state["model"]))
    torch.save({**state, "model": {**state["model"], first: state["model"][first] * float("nan")}}, d / "nan.pt")
    (d / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    (d / "run").mkdir()
    (d / "run" / "run.json").write_text('{"identity": {"style": "another style"}}')
    canvas = Image.new("L", (tiny.width, tiny.height), 230)         # drawn, not rendered: no JIT start-up here
    ImageDraw.Draw(canvas).text((8, 8), "AB", fill=30)
    image = np.asarray(canvas)
    for folder in ("good", "bomb", "latin1", "badrows", "real_mixed", "real_none", "empty", "full", "fonts"):
        (d / folder).mkdir()
    for folder in ("good", "bomb", "latin1", "badrows", "real_mixed"):
        Image.fromarray(image).save(d / folder / "AB.png")
    _png_header_only(d / "bomb" / "AC.png", 20000, 20000)
    (d / "latin1" / "labels.csv").write_bytes("file,label\nAB.png,\xe9\n".encode("latin-1"))
    (d / "badrows" / "labels.csv").write_text("file,label\nAB.png\ngone.png,A\n")
    for folder in ("real_mixed", "real_none"):
        (d / folder / "broken.png").write_text("not an image")
    (d / "full" / "keep.txt").write_text("the user's")
    Image.fromarray(image.astype(np.uint16) * 257).save(d / "grey16.png")
    alpha = np.where(image < 230, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([image, image, image, alpha]), "RGBA").save(d / "rgba.png")
    base = 'height = 32\nwidth = 48\n[latents]\nnum_chars = 1\nfont_size = 20\n'
    (d / "cjk.toml").write_text(f'name = "cjk"\nalphabet = "AB中"\nfonts = ["DejaVuSans-Bold.ttf"]\n{base}')
    (d / "broken_font.toml").write_text(f'name = "bf"\nalphabet = "AB"\nfonts = ["Broken.ttf"]\n{base}')
    (d / "fonts" / "Broken.ttf").write_bytes(Path(find_font(FontSpec("DejaVuSans-Bold.ttf"))).read_bytes()[:3000])
    _tampered_checkpoints(d)
    _odd_files(d, image)
    # fill Numba's on-disk cache for `sample --style tiny DIR/` first, so the full-disk row's file-size limit
    # hits the labelled folder, not the JIT cache (a cache write on a full disk is a traceback inside Numba)
    subprocess.run([sys.executable, "-m", "synthstream.cli", "sample", "--style", "tiny", "-n", "2", "--out",
                    f"{d / 'warm'}/"], cwd=d, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   capture_output=True)
    return d


def _snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` (folders too) with a hash of its content."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


# A row's wall time is mostly one interpreter start-up on one core: the rows run two at a time in the background
# (a module fixture), each test waits for its own. The file-size limit is set inside the child (no preexec_fn,
# which is unsafe beside threads).
LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({}, resource.RLIM_INFINITY)); "
           "sys.argv[0] = 'synthstream'; runpy.run_module('synthstream.cli', run_name='__main__', alter_sys=True)")


@dataclass
class Ran:
    proc: subprocess.CompletedProcess
    out: Path                              # the row's {O}


def _run(row: Row, inputs: Path, home: Path) -> Ran:
    out = home / "out"
    out.mkdir()
    fill = lambda s: s.replace("{D}", str(inputs)).replace("{O}", str(out))  # noqa: E731
    env = {**os.environ, "PYTHONPATH": str(ROOT), **{k: fill(v) for k, v in row.env.items()}}
    env.pop("RAY_ADDRESS", None)
    start = ["-c", LIMITED.format(row.fsize_limit)] if row.fsize_limit else ["-m", "synthstream.cli"]
    proc = subprocess.run([sys.executable, *start, *map(fill, row.argv)], cwd=home, env=env, capture_output=True,
                          text=True, timeout=120)
    return Ran(proc, out)


@pytest.fixture(scope="module")
def ran(request, inputs: Path, tmp_path_factory):
    """The selected rows' runs, started two at a time, and the inputs' snapshot from before any of them."""
    chosen = {item.callspec.params["row"].id for item in request.session.items
              if item.module is request.module and "row" in getattr(getattr(item, "callspec", None), "params", {})}
    before = _snapshot(inputs)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {row.id: pool.submit(_run, row, inputs, tmp_path_factory.mktemp(row.id))
                for row in ROWS if row.id in chosen}
        yield before, runs
        for run in runs.values():
            run.cancel()


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=[pytest.mark.xfail(reason=r.xfail, strict=False)]
                                              if r.xfail else []) for r in ROWS])
def test_bad_input_is_one_line(row: Row, inputs: Path, ran):
    before, runs = ran
    done = runs[row.id].result()
    proc = done.proc
    lines = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == row.exit, proc.stderr
    if row.line is None:
        assert lines == [], proc.stderr
    else:
        assert len(lines) == 1, proc.stderr
        assert re.match(row.line, lines[0]), lines[0]
    assert _snapshot(inputs) == before, "an input file changed"
    made = set(_snapshot(done.out))                # an empty folder left behind counts too
    assert made == set(row.outputs), f"left behind: {sorted(made - set(row.outputs))}"
