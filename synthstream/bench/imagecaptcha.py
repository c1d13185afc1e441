"""Captchas written by the `captcha` package's ImageCaptcha itself: the judge of the `lepture` style, which
claims to imitate it (a model trained on the style must read what the package writes).

The texts are drawn from `seed` (4 characters of the style's alphabet); the package's own draws (colours,
rotations, spacing) come from `secrets` and cannot be seeded, so two folders made with one seed hold the same
labels but different images. Images are stored grey (luminance), as every reader here takes them.

    python -m synthstream.bench.imagecaptcha OUT [-n 200] [--seed 0]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from synthstream.bench.report import folder_main
from synthstream.labelled import write_labelled_folder
from synthstream.style import load_style


def imagecaptcha_texts(n: int, seed: int, alphabet: str, length: int = 4) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(alphabet[i] for i in rng.integers(0, len(alphabet), length)) for _ in range(n)]


def write_imagecaptcha_folder(out: str | Path, n: int = 200, seed: int = 0) -> Path:
    """A labelled folder of `n` ImageCaptcha(160, 60) images of texts in the `lepture` style's alphabet."""
    from captcha.image import ImageCaptcha

    style = load_style("lepture")
    gen = ImageCaptcha(style.width, style.height)
    texts = imagecaptcha_texts(n, seed, style.alphabet, style.latent_range("num_chars")[1])
    images = [np.asarray(gen.generate_image(t).convert("L")) for t in texts]
    return write_labelled_folder(out, images, texts)


def main(argv: list[str] | None = None) -> int:
    return folder_main(__doc__, write_imagecaptcha_folder, "seed of the texts", argv)


if __name__ == "__main__":
    sys.exit(main())
