"""The wheezy.captcha helper (docs/fit.md's third-party real set): labelled, grey, reproducible from its seed."""

import random

import numpy as np
import pytest
from PIL import Image

from synthstream.labelled import read_labelled_folder

pytest.importorskip("wheezy.captcha")

from synthstream.bench.wheezy import ALPHABET, HEIGHT, LENGTH, WIDTH, main, write_wheezy_folder  # noqa: E402


def _pixels(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path, _ in read_labelled_folder(folder)]


def test_writes_n_labelled_grey_images_of_the_generators_size(tmp_path):
    assert main([str(tmp_path / "a"), "-n", "3", "--seed", "5"]) == 0
    read = read_labelled_folder(tmp_path / "a")
    assert len(read) == 3
    for path, label in read:
        assert len(label) == LENGTH == len(set(label)) and set(label) <= set(ALPHABET)
        image = Image.open(path)
        assert (image.mode, image.size) == ("L", (WIDTH, HEIGHT))
        assert np.asarray(image).std() > 5                                # text drawn, not a blank background


def test_one_seed_one_folder_and_python_random_left_as_it_was(tmp_path):
    random.seed(1)
    before = random.getstate()
    a = write_wheezy_folder(tmp_path / "a", n=3, seed=7)
    assert random.getstate() == before
    b = write_wheezy_folder(tmp_path / "b", n=3, seed=7)
    c = write_wheezy_folder(tmp_path / "c", n=3, seed=8)
    assert [t for _, t in read_labelled_folder(a)] == [t for _, t in read_labelled_folder(b)]
    assert all((x == y).all() for x, y in zip(_pixels(a), _pixels(b)))
    assert not all((x == y).all() for x, y in zip(_pixels(a), _pixels(c)))
