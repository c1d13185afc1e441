import numpy as np
import pytest
from PIL import Image

from synthstream.errors import UserError
from synthstream.style import load_style
from trainer.images import MAX_PIXELS, background_level, load_image, load_labelled_dir, load_paths, to_grey

WIKI = load_style("wikipedia")


def test_reading_images_one_problem_per_line(tmp_path):
    good = tmp_path / "abcdefgh.png"
    Image.fromarray(np.full((50, 200, 3), 200, np.uint8)).save(good)          # RGB: converted to grey
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 120), np.uint8)).save(small)
    text = tmp_path / "notes.png"
    text.write_text("this is not a png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    items = load_paths([str(good), str(small), str(text), str(truncated), str(tmp_path / "gone.png")], WIKI)
    assert items[0].image.shape == (50, 200) and items[0].image.dtype == np.uint8 and items[0].note == ""
    assert items[1].image.shape == (50, 200) and items[1].note == "resized from 120x40 to 200x50"
    assert items[2].image is None and items[2].note == "not an image"
    assert items[3].image is None and items[3].note.startswith("unreadable")
    assert items[4].image is None and items[4].note == "no such file"


def test_labels_from_names_or_csv_and_support_checks(tmp_path):
    for name in ("abcdefgh", "ABCDEFGH", "abc"):
        Image.fromarray(np.zeros((50, 200), np.uint8)).save(tmp_path / f"{name}.png")
    items = {it.path.stem: it for it in load_labelled_dir(str(tmp_path), WIKI)}
    assert items["abcdefgh"].in_support and items["abcdefgh"].label == "abcdefgh"
    assert not items["ABCDEFGH"].in_support and "outside the style's alphabet" in items["ABCDEFGH"].note
    assert not items["abc"].in_support and "the style draws 8-10" in items["abc"].note
    (tmp_path / "labels.csv").write_text("file,label\nabc.png,qwertyui\n")
    relabelled = {it.path.stem: it for it in load_labelled_dir(str(tmp_path), WIKI)}
    assert relabelled["abc"].label == "qwertyui" and relabelled["abc"].in_support


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(UserError, match="holds no images"):
        load_labelled_dir(str(tmp_path), WIKI)
    with pytest.raises(UserError, match="is not a directory"):
        load_labelled_dir(str(tmp_path / "nope"), WIKI)


# -- conversion by value range and alpha (defect: 16-bit read near-white, transparent background read black) --

TINY = load_style("tiny")


def _reference_grey() -> np.ndarray:
    from synthstream.generate import generate
    images, _ = generate(TINY, seed=5, first_index=0, n=1)
    return images[0]


def _versions(g: np.ndarray, tmp_path) -> dict[str, object]:
    """The same captcha saved as 8-bit grey, 16-bit grey, RGB, palette, LA and RGBA with a transparent
    background (ink of alpha a over nothing, so that compositing on the style's background gives g back)."""
    bg = background_level(TINY)
    ink_alpha = np.where(g <= bg, np.rint(255 * (1 - g / bg)), 255).astype(np.uint8)
    ink_level = np.where(g <= bg, 0, g).astype(np.uint8)
    rgb = np.repeat(g[..., None], 3, axis=2)
    made = {
        "grey8.png": Image.fromarray(g),
        "grey16.png": Image.fromarray(g.astype(np.uint16) * 257),
        "rgb.png": Image.fromarray(rgb),
        "palette.png": Image.fromarray(g).convert("P"),
        "la.png": Image.fromarray(np.stack([ink_level, ink_alpha], axis=2), "LA"),
        "rgba.png": Image.fromarray(np.dstack([np.repeat(ink_level[..., None], 3, axis=2), ink_alpha]), "RGBA"),
    }
    paths = {}
    for name, im in made.items():
        im.save(tmp_path / name)
        paths[name] = tmp_path / name
    assert Image.open(paths["grey16.png"]).mode.startswith("I") and Image.open(paths["palette.png"]).mode == "P"
    return paths


def test_bit_depths_palettes_and_alpha_read_as_the_same_grey(tmp_path):
    g = _reference_grey()
    for name, path in _versions(g, tmp_path).items():
        item = load_image(path, TINY)
        assert item.image is not None and item.note == "", (name, item.note)
        diff = np.abs(item.image.astype(int) - g.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.5, f"{name}: differs by up to {diff.max()} grey levels"


def test_every_version_of_one_image_gives_the_same_map(tmp_path):
    import torch

    from trainer.model import build_model

    torch.manual_seed(0)
    model = build_model("cpu", TINY).eval()
    g = _reference_grey()
    items = load_paths([str(p) for p in _versions(g, tmp_path).values()], TINY)
    images = np.stack([g] + [it.image for it in items])
    greedy, _ = model.decode(torch.from_numpy(images))       # the network's MAP trace, one row per version
    assert (greedy == greedy[0]).all(), greedy


def test_wide_and_float_greys_are_scaled_by_their_range():
    ramp = np.linspace(0, 1, 256)[None, :]
    expected = np.rint(ramp * 255).astype(np.uint8)
    assert (to_grey(Image.fromarray((ramp * 65535).astype(np.uint16))) == expected).all()       # I;16
    assert (to_grey(Image.fromarray((ramp * 65535).astype(np.int32), "I")) == expected).all()    # I, 16-bit values
    assert (to_grey(Image.fromarray(ramp.astype(np.float32), "F")) == expected).all()            # F in 0..1
    assert (to_grey(Image.fromarray(expected.astype(np.int32), "I")) == expected).all()          # I, 8-bit values


# -- images too large to decode (defect: a 20000x20000 PNG raised a traceback and stopped `eval`) ----------

def _png_header_only(path, width: int, height: int) -> None:
    """A PNG that declares width x height but holds almost no data: what a decompression bomb looks like
    before it is decoded (enough for Image.open, which reads the header only)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_huge_images_are_refused_before_decoding_one_line_each(tmp_path):
    bomb, big = tmp_path / "bomb.png", tmp_path / "big.png"
    _png_header_only(bomb, 20000, 20000)          # above Pillow's own bomb limit: DecompressionBombError
    _png_header_only(big, 5000, 5000)             # below Pillow's limit, above ours
    good = tmp_path / "good.png"
    Image.fromarray(np.full((50, 200), 255, np.uint8)).save(good)
    items = load_paths([str(bomb), str(big), str(good)], WIKI)
    assert items[0].image is None and items[0].note.startswith("too large")
    assert items[1].image is None and items[1].note == f"too large (5000x5000 pixels; at most {MAX_PIXELS} are read)"
    assert items[2].image is not None


def test_a_labelled_folder_with_a_bomb_still_loads_the_rest(tmp_path):
    _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    Image.fromarray(np.full((50, 200), 255, np.uint8)).save(tmp_path / "abcdefgh.png")
    items = {it.path.name: it for it in load_labelled_dir(str(tmp_path), WIKI)}
    assert items["bomb.png"].image is None and items["bomb.png"].note.startswith("too large")
    assert items["abcdefgh.png"].image is not None


def test_real_folder_skips_what_is_not_an_image(tmp_path):
    from synthstream.grid import load_real

    for name in ("abcdefgh", "ijklmnop"):
        Image.fromarray(np.full((50, 200), 128, np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "broken.png").write_text("not a png")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "readme.txt").write_text("notes")
    skipped = []
    real = load_real(tmp_path, 10, skipped=lambda path, why: skipped.append((path.name, why)))
    assert [label for _, label in real] == ["abcdefgh", "ijklmnop"]
    assert skipped == [("broken.png", "not an image")]
    assert len(load_real(tmp_path, 1, skipped=lambda *a: None)) == 1
    for p in tmp_path.glob("*.png"):
        if p.is_file() and p.name != "broken.png":
            p.unlink()
    with pytest.raises(UserError, match="--real .* holds no readable image"):
        load_real(tmp_path, 10, skipped=lambda *a: None)


# -- the one image reader (synthstream/images.py): every path sees the same pixels ------------------------------

def _asymmetric() -> np.ndarray:
    """A 50x200 image whose rotation shows: dark on the left half, a light band on top."""
    a = np.full((50, 200), 200, np.uint8)
    a[:, :100] = 40
    a[:10] = 250
    return a


def test_exif_orientation_is_applied_as_viewers_do(tmp_path):
    from synthstream.images import read_grey

    exif = Image.Exif()
    exif[0x0112] = 3                                  # rotated 180 degrees
    Image.fromarray(_asymmetric()).save(tmp_path / "turned.jpg", quality=95, exif=exif)
    grey = read_grey(tmp_path / "turned.jpg")
    assert np.abs(grey.astype(int) - np.rot90(_asymmetric(), 2)).mean() < 3
    exif[0x0112] = 6                                  # rotated 90: the width and height swap
    Image.fromarray(_asymmetric()).save(tmp_path / "side.jpg", quality=95, exif=exif)
    assert read_grey(tmp_path / "side.jpg").shape == (200, 50)


def test_every_reader_gives_the_same_pixels(tmp_path):
    """infer/eval (trainer.images), fidelity and sample --real: one reader for 16-bit, alpha and EXIF files."""
    from synthstream.fidelity import load_real_images
    from synthstream.grid import load_real

    a = _asymmetric()
    Image.fromarray(a.astype(np.uint16) * 257).save(tmp_path / "abcdefgh.png")             # 16-bit
    alpha = np.where(a < 100, 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([a, a, a, alpha]), "RGBA").save(tmp_path / "ijklmnop.png")    # transparency
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(a).save(tmp_path / "qrstuvwx.tif", exif=exif)                          # a .tif, turned
    files = sorted(tmp_path.iterdir())
    infer_view = np.stack([it.image for it in load_paths([str(p) for p in files], WIKI)])
    eval_view = np.stack([it.image for it in load_labelled_dir(str(tmp_path), WIKI)])
    grid_view = np.stack([g for g, _ in load_real(tmp_path, 10, background_level(WIKI))])
    fidelity_view = load_real_images(tmp_path, WIKI)
    assert (infer_view == eval_view).all() and (infer_view == grid_view).all()
    assert (infer_view == fidelity_view).all()
    assert (infer_view[0] == a).all() and (infer_view[2] == np.rot90(a, 2)).all()


def test_nan_pixels_of_a_float_tiff_are_refused(tmp_path):
    from synthstream.images import UnreadableImage, read_grey

    f = np.full((50, 200), 0.5, np.float32)
    Image.fromarray(f, "F").save(tmp_path / "ok.tif")
    assert (read_grey(tmp_path / "ok.tif") == 128).all()
    f[3, 4:6] = np.nan
    Image.fromarray(f, "F").save(tmp_path / "nan.tif")
    with pytest.raises(UnreadableImage, match="2 of its 10000 pixels are NaN"):
        read_grey(tmp_path / "nan.tif")


def test_only_regular_files_are_opened(tmp_path):
    """A FIFO named like an image would block a reader forever: it is refused at once."""
    import os

    from synthstream.fidelity import load_real_images

    os.mkfifo(tmp_path / "pipe.png")
    Image.fromarray(_asymmetric()).save(tmp_path / "abcdefgh.png")
    items = load_paths([str(tmp_path / "pipe.png")], WIKI)
    assert items[0].image is None and items[0].note == "not a regular file (a FIFO)"
    notes = {it.path.name: it.note for it in load_labelled_dir(str(tmp_path), WIKI)}
    assert notes["pipe.png"] == "not a regular file (a FIFO)"
    with pytest.raises(UserError, match=r"pipe\.png' is not a readable image \(not a regular file \(a FIFO\)\)"):
        load_real_images(tmp_path, WIKI)


def test_a_fifo_in_the_font_path_is_not_a_font(tmp_path, monkeypatch):
    import os

    from synthstream.fonts import _user_fonts

    os.mkfifo(tmp_path / "DejaVuSans-Bold.ttf")
    monkeypatch.setenv("SYNTHSTREAM_FONT_PATH", str(tmp_path))
    assert _user_fonts() == {}
