"""How far a better warp alone could take `wikipedia`'s fidelity: MediaWiki's own distortion on the style's text.

Wikipedia's captchas come from MediaWiki's ConfirmEdit `captcha.py`: white text on black, distorted by three
rounds of three "wobbly copies", each of which rotates the image (bilinear) by an angle (45 + 30 x round + 0 /
45 / 90 degrees, +- 30 at random), shifts every row sideways by trunc(amplitude x sin(phase + row x f / side))
+ trunc(U(-amplitude / 2, amplitude / 2)) pixels (f uniform in [4 k, 5 k] with k = 3, 1, 2, then 5, 3, 4, then
7, 5, 6), rotates back and sharpens (PIL's Sharpness enhancement, factor 2), then inverted. That procedure is
re-implemented here with PIL, seeded, and applied to the `wikipedia` style's text layer (its fonts, sizes,
layout and words, rendered without its own warp and blur, in black), and both are scored by the fidelity test
(`synthstream/fidelity.py`) against the real captchas: the style itself is the baseline of the same run.

    python -m synthstream.bench.mediawiki --real DIR [-n 250] [--amplitude 2.5] [--seed 0] [--json F]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from synthstream import argtypes
from synthstream.bench.report import machine, module_main, print_table, write_json
from synthstream.errors import UserError

ROUNDS = 3
SHARPNESS = 2.0
CANVAS = 1.3             # the square canvas's side over the image width: room for any rotation of the text


def _wobbly_copy(image, amplitude: float, k: int, angle: float, rng: np.random.Generator):
    """One wobbly copy of a white-on-black PIL 'L' image (see the module docstring)."""
    from PIL import Image, ImageEnhance

    side = image.size[1]
    f, phase = rng.uniform(4 * k, 5 * k), rng.uniform(0, 2 * math.pi)
    angle += rng.uniform(-30, 30)
    turned = np.asarray(image.rotate(angle, Image.BILINEAR))
    shifted = np.zeros_like(turned)
    rows = np.flatnonzero(turned.any(axis=1))
    for i in range(rows[0], rows[-1] + 1) if len(rows) else ():
        s = int(math.sin(phase + i * f / side) * amplitude) + int(rng.uniform(-amplitude / 2, amplitude / 2))
        if s >= 0:
            shifted[i, s:] = turned[i, :turned.shape[1] - s]
        else:
            shifted[i, :s] = turned[i, -s:]
    back = Image.fromarray(shifted).rotate(-angle, Image.BILINEAR)
    return ImageEnhance.Sharpness(back).enhance(SHARPNESS)


def mediawiki_distort(text_layer: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Black-on-white uint8 [H, W] text -> the same text under MediaWiki's nine wobbly copies, uint8 [H, W]."""
    from PIL import Image

    h, w = text_layer.shape
    side = int(CANVAS * w)
    top, left = (side - h) // 2, (side - w) // 2
    canvas = np.zeros((side, side), np.uint8)
    canvas[top:top + h, left:left + w] = 255 - text_layer
    image = Image.fromarray(canvas)
    base = 45.0
    for r in range(ROUNDS):
        for k, offset in ((2 * r + 3, 0.0), (2 * r + 1, 45.0), (2 * r + 2, 90.0)):
            image = _wobbly_copy(image, amplitude, k, base + offset, rng)
        base += 30.0
    return 255 - np.asarray(image)[top:top + h, left:left + w]


def text_layer_style(style):
    """The style with its warp, blur, clutter and noise off and black ink: the text MediaWiki's warp starts from."""
    from synthstream.style import parse_style

    raw = style.to_raw()
    for key in ("elastic_alpha", "fine_alpha", "shear_x_amplitude", "shear_y_amplitude"):
        raw["warp"][key] = [0.0, 0.0]
    raw["ink"].update(ink=[0, 0], ink_opacity=[1.0, 1.0], blur_sigma=[0.0, 0.0], noise_sigma=[0.0, 0.0])
    return parse_style(raw, f"{style.source} (text layer)")


def run(real_dir: str, n: int, amplitude: float, seed: int, json_path: str | None) -> dict:
    from synthstream.fidelity import MIN_IMAGES, compare_images, load_real_images
    from synthstream.generate import generate
    from synthstream.style import load_style

    style = load_style("wikipedia")
    real = load_real_images(real_dir, style, limit=n)
    if len(real) < MIN_IMAGES:
        raise UserError(f"--real holds {len(real)} images; the test needs at least {MIN_IMAGES}")
    own, _ = generate(style, seed, 0, len(real))
    text, _ = generate(text_layer_style(style), seed, 0, len(real))
    rng = np.random.default_rng(seed)
    warped = np.stack([mediawiki_distort(t, amplitude, rng) for t in text])
    variants = {"wikipedia style (baseline)": own, f"MediaWiki's warp (amplitude {amplitude:g}) on its text": warped}
    results = {name: compare_images(real, images, seed) for name, images in variants.items()}
    print_table(["synthetic", "AUC", "feature gap", "most different"],
                [[name, f"{r['auc']['auc']:.3f}", f"{r['feature_gap']:.3f}", r["most_different"]]
                 for name, r in results.items()])
    out = {"real_dir": real_dir, "n": len(real), "amplitude": amplitude, "seed": seed,
           "results": results, "machine": machine()}
    write_json(out, json_path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="folder of real Wikipedia captchas")
    parser.add_argument("-n", type=argtypes.positive_int, default=250, help="the most real images read")
    parser.add_argument("--amplitude", type=argtypes.positive_float, default=2.5,
                        help="the row shifts' amplitude, pixels (MediaWiki: 0.09 x the text's height)")
    parser.add_argument("--seed", type=argtypes.seed, default=0)
    parser.add_argument("--json", help="also write the JSON result here")
    args = parser.parse_args(argv)
    return module_main(parser.prog, lambda: run(args.real, args.n, args.amplitude, args.seed, args.json))


if __name__ == "__main__":
    sys.exit(main())
