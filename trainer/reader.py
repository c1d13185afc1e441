"""The reader: a trained proposal network plus how it reads best, as one object.

    from synthstream import load_reader
    reader = load_reader("wikipedia")                 # a shipped model, a checkpoint.pt or a run folder
    for r in reader.read(["a.png", "b.jpg"]):         # paths, PIL images or arrays; any mode or bit depth
        print(r.text, r.probability, r.top, r.mismatch)

The CLI's `infer` and `eval` are thin wrappers over this module. (Skeleton: the reading recipe stored in the
checkpoint, decoder plugins and batch-independent determinism are still to come; see issue 21.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ImageLike = Any       # str | Path | PIL.Image.Image | np.ndarray (grey [H, W], colour [H, W, 3|4])


@dataclass(frozen=True)
class Reading:
    """One image's reading."""

    text: str                                   # the most probable string ("" when nothing could be read)
    probability: float                          # its posterior probability (calibrated by the recipe's T)
    top: tuple[tuple[str, float], ...] = ()     # the k most probable strings with their probabilities
    mismatch: bool | None = None                # importance sampling only: the image looks unlike the style
    note: str = ""                              # e.g. "resized from 120x40 to 200x50"

    def to_json(self) -> dict:
        return {"text": self.text, "probability": self.probability,
                "top": [{"text": t, "probability": p} for t, p in self.top],
                "mismatch": self.mismatch, "note": self.note}


@dataclass(frozen=True)
class Recipe:
    """How a model reads best: the decoding method and its options, the text prior, shifts, temperature."""

    method: str = "beam"
    beam_width: int = 16
    particles: int = 100
    prior: str | None = None                    # a style whose text prior decodes; None: the model's own
    shifts: int = 1
    temperature: float = 1.0
    sources: dict = field(default_factory=dict)  # part -> where its value came from


class Reader:
    """A loaded model with its recipe. `read` batches internally."""

    def __init__(self, model, style, trained, recipe: Recipe, *, name: str = "", top_k: int = 3,
                 batch_size: int = 64) -> None:
        self.model, self.style, self.trained, self.recipe = model, style, trained, recipe
        self.name, self.top_k, self.batch_size = name, top_k, batch_size

    @property
    def alphabet(self) -> str:
        return self.style.alphabet

    def images(self, images: Iterable[ImageLike]) -> tuple[np.ndarray, list[str]]:
        """uint8 [n, H, W] at the style's size, and a note per image. Raises ValueError for an unreadable one."""
        from trainer.images import UnreadableImage, background_level, read_grey, to_grey

        out, notes = [], []
        bg = background_level(self.style)
        for im in images:
            if isinstance(im, (str, Path)):
                grey = read_grey(Path(im), bg)
            elif isinstance(im, np.ndarray):
                grey = _array_to_grey(im, bg)
            elif hasattr(im, "mode") and hasattr(im, "size"):
                grey = to_grey(im, bg)
            else:
                raise UnreadableImage(f"{type(im).__name__}: give a path, a PIL image or a numpy array")
            fitted, note = _fit(grey, self.style.width, self.style.height)
            out.append(fitted)
            notes.append(note)
        empty = np.zeros((0, self.style.height, self.style.width), np.uint8)
        return (np.stack(out) if out else empty), notes

    def read(self, images: Sequence[ImageLike] | ImageLike, *, seed: int = 0) -> list[Reading]:
        from trainer.infer import infer

        if not isinstance(images, (list, tuple)):
            images = [images]
        x, notes = self.images(images)
        r = self.recipe
        readings = []
        for i in range(0, len(x), self.batch_size):
            posts = infer(self.model, self.style, x[i:i + self.batch_size], method=r.method,
                          particles=r.particles, beam_width=r.beam_width, train_style=self.trained,
                          temperature=r.temperature, shifts=r.shifts, seed=seed)
            for p, note in zip(posts, notes[i:i + self.batch_size]):
                mismatch = None if p.ess is None else bool(p.ess < max(2.0, 0.05 * p.particles))
                readings.append(Reading(p.map, float(p.map_prob), tuple(p.top(self.top_k)), mismatch, note))
        return readings


def load_reader(name_or_path: str | Path, **overrides) -> Reader:
    """A shipped model by name, a checkpoint.pt or a run folder, read with its recipe (`overrides` replace
    parts of it: method, beam_width, particles, prior, shifts, temperature)."""
    from synthstream.style import load_style
    from trainer.checkpoint import load, resolve
    from trainer.infer import swap_text_prior
    from trainer.model import model_from_checkpoint

    model, trained = model_from_checkpoint(load(resolve(str(name_or_path))))
    recipe = Recipe(**overrides)
    style = swap_text_prior(trained, load_style(recipe.prior)) if recipe.prior else trained
    return Reader(model, style, trained, recipe, name=str(name_or_path))


def _array_to_grey(a: np.ndarray, background: float) -> np.ndarray:
    from PIL import Image

    from trainer.images import to_grey

    if a.ndim == 2 and a.dtype == np.uint8:
        return a
    if a.ndim == 3 and a.shape[2] in (3, 4) and a.dtype == np.uint8:
        return to_grey(Image.fromarray(a, "RGB" if a.shape[2] == 3 else "RGBA"), background)
    if a.ndim == 2:
        from trainer.images import _wide_to_grey

        return _wide_to_grey(a)
    raise ValueError(f"array of shape {a.shape} and dtype {a.dtype}: give grey [H, W] or colour [H, W, 3|4]")


def _fit(grey: np.ndarray, width: int, height: int) -> tuple[np.ndarray, str]:
    from PIL import Image

    h, w = grey.shape
    if (w, h) == (width, height):
        return grey, ""
    resized = np.asarray(Image.fromarray(grey).resize((width, height), Image.BILINEAR), np.uint8)
    return resized, f"resized from {w}x{h} to {width}x{height}"
