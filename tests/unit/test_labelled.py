"""Labelled folders: all-or-nothing writing, strict reading of labels.csv, labels from file names."""

import resource

import numpy as np
import pytest
from PIL import Image

from synthstream.errors import UserError
from synthstream.labelled import read_labelled_folder, write_labelled_folder

TEXTS = ["abc", "with,comma", 'quote"d', "ünï©ødé", "<b>|*_#`&"]


def _images(n: int, h: int = 20, w: int = 30) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w), dtype=np.uint8)


def test_write_then_read_gives_the_same_images_and_labels(tmp_path):
    images = _images(len(TEXTS))
    out = write_labelled_folder(tmp_path / "set", images, TEXTS)
    read = read_labelled_folder(out)
    assert [p.name for p, _ in read] == [f"{i:06d}.png" for i in range(len(TEXTS))]
    assert [label for _, label in read] == TEXTS
    for (path, _), image in zip(read, images):
        assert (np.asarray(Image.open(path)) == image).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]          # no temporary folder left


def test_write_into_an_empty_folder_but_never_over_files(tmp_path):
    (tmp_path / "empty").mkdir()
    write_labelled_folder(tmp_path / "empty", _images(2), ["a", "b"])
    assert len(read_labelled_folder(tmp_path / "empty")) == 2
    with pytest.raises(UserError, match="not an empty folder"):
        write_labelled_folder(tmp_path / "empty", _images(2), ["a", "b"])
    assert [label for _, label in read_labelled_folder(tmp_path / "empty")] == ["a", "b"]


def test_a_write_that_fails_part_way_leaves_nothing(tmp_path):
    """A file-size limit makes the 4th PNG fail half-written, as a full disk would: nothing may remain."""
    images = list(_images(3, 40, 40)) + [_images(1, 400, 400)[0]]     # the last: ~160 kB of noise
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, hard))    # CPython ignores SIGXFSZ: writes get EFBIG
    try:
        with pytest.raises(UserError, match="cannot write .*set.: File too large"):
            write_labelled_folder(tmp_path / "set", images, ["a", "b", "c", "d"])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(tmp_path.iterdir()) == []


def test_labels_from_file_names_keep_special_characters(tmp_path):
    names = ["a|b", "<i>x</i>".replace("/", ""), "**bold**", "[x](y)", "tab&amp;", "`code`", "#h"]
    for name in names:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    assert sorted(label for _, label in read_labelled_folder(tmp_path)) == sorted(names)


def _folder(tmp_path, csv: bytes, names=("a.png", "b.png")):
    for name in names:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    (tmp_path / "labels.csv").write_bytes(csv)
    return tmp_path


def test_labels_csv_header_bom_and_unlisted_images(tmp_path):
    _folder(tmp_path, "\ufefffile,label\na.png,éé\n\n".encode())
    assert read_labelled_folder(tmp_path) == [(tmp_path / "a.png", "éé"), (tmp_path / "b.png", "b")]


def test_labels_csv_that_is_not_utf8_is_one_line(tmp_path):
    _folder(tmp_path, "file,label\na.png,ok\nb.png,caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError) as e:
        read_labelled_folder(tmp_path)
    assert str(e.value).count("\n") == 0
    assert "is not UTF-8 (byte 0xe9 on line 3)" in str(e.value) and "save it as UTF-8" in str(e.value)


def test_bad_rows_are_named_by_row_number(tmp_path):
    _folder(tmp_path, b"file,label\na.png\nzz.png,q\nb.png,x,y\nb.png,ok\nb.png,again\n")
    with pytest.raises(UserError) as e:
        read_labelled_folder(tmp_path)
    msg = str(e.value)
    assert msg.count("\n") == 0
    assert "row 2: expected 2 columns (file,label), got 1" in msg
    assert "row 3: no image file 'zz.png' in the folder" in msg
    assert "row 4: expected 2 columns (file,label), got 3" in msg
    assert "row 6: 'b.png' is labelled twice" in msg
    assert "row 5" not in msg


def test_missing_or_empty_folder_names_the_flag(tmp_path):
    with pytest.raises(UserError, match="--real .* is not a directory"):
        read_labelled_folder(tmp_path / "nope", "--real")
    with pytest.raises(UserError, match="--data .* holds no images"):
        read_labelled_folder(tmp_path)


def test_a_labels_csv_that_is_not_a_file_is_refused(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "AB.png")
    (tmp_path / "labels.csv").mkdir()
    with pytest.raises(UserError, match=r"labels\.csv' is not a regular file"):
        read_labelled_folder(tmp_path)
