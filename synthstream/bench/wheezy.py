"""Captchas written by the `wheezy.captcha` package itself (3.2, its own example's pipeline and default
parameters): a third-party generator that no style here imitates, the real set of `docs/fit.md`'s
third-party demonstration.

The pipeline is the one of `wheezy.captcha.image`'s `__main__` example: 200x75, background
#EEEECC; each character in a bold mono font at 65, 70 or 75 px, warped (a random quadrilateral), rotated by
up to 25 degrees and offset, then pasted 0.8 of its width after the previous one; a 4 px Bezier curve in the
text colour and 50 short dashes in the background colour; a 3x3 smoothing filter. Its fonts (Courier New Bold,
Liberation Mono Bold) are not installed here; their Courier clones from `cluster/debian-packages.txt` stand in
(Nimbus Mono PS Bold, FreeMono Bold). The texts are 4 distinct characters of A-Z 0-9 (the example's
`random.sample(string.uppercase + string.digits, 4)`), drawn from `seed`; the package draws from Python's
`random`, which is seeded from `seed` too (its state is restored afterwards), so one seed gives one folder,
image for image. Images are stored grey (luminance), as every reader here takes them.

    python -m synthstream.bench.wheezy OUT [-n 200] [--seed 0]
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthstream.bench.report import folder_main
from synthstream.fonts import find_font
from synthstream.labelled import write_labelled_folder
from synthstream.style import FontSpec

WIDTH, HEIGHT = 200, 75                       # captcha()'s defaults
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LENGTH = 4
FONTS = (FontSpec("NimbusMonoPS-Bold.otf", "fonts-urw-base35"), FontSpec("FreeMonoBold.ttf", "fonts-freefont-ttf"))


def wheezy_texts(n: int, seed: int) -> list[str]:
    """`n` texts of LENGTH distinct characters of ALPHABET (as the example's random.sample draws them)."""
    rng = np.random.default_rng(seed)
    return ["".join(ALPHABET[i] for i in rng.choice(len(ALPHABET), LENGTH, replace=False)) for _ in range(n)]


def wheezy_renderer() -> Callable[[str], object]:
    """The package's example pipeline with its default parameters (a PIL RGB image per text)."""
    from wheezy.captcha.image import background, captcha, curve, noise, offset, rotate, smooth, text, warp

    fonts = [find_font(spec, "wheezy") for spec in FONTS]
    drawings = [background(), text(fonts=fonts, drawings=[warp(), rotate(), offset()]), curve(), noise(), smooth()]
    return captcha(drawings=drawings, width=WIDTH, height=HEIGHT)


def write_wheezy_folder(out: str | Path, n: int = 200, seed: int = 0) -> Path:
    """A labelled folder of `n` grey wheezy.captcha images, reproducible from `seed`."""
    render = wheezy_renderer()
    texts = wheezy_texts(n, seed)
    state = random.getstate()
    random.seed(seed)
    try:
        images = [np.asarray(render(t).convert("L")) for t in texts]
    finally:
        random.setstate(state)
    return write_labelled_folder(out, images, texts)


def main(argv: list[str] | None = None) -> int:
    return folder_main(__doc__, write_wheezy_folder, "seed of the texts and images", argv)


if __name__ == "__main__":
    sys.exit(main())
