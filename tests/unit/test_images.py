import numpy as np
import pytest
from PIL import Image

from synthstream.errors import UserError
from synthstream.style import load_style
from trainer.images import load_labelled_dir, load_paths

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
