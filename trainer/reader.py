"""The reader: a trained proposal network plus how it reads best, as one object.

    from synthstream import load_reader
    reader = load_reader("wikipedia")                 # a shipped model, a checkpoint.pt or a run folder
    for r in reader.read(["a.png", "b.jpg"]):         # paths, PIL images or arrays; any mode or bit depth
        print(r.text, r.probability, r.top, r.mismatch)

The reading recipe (trainer/recipe.py) comes from the checkpoint; `load_reader(..., shifts=1)` and the like
override one part. The decoders are plugins (trainer/decoders). The CLI's `infer` and `eval` are thin
wrappers over this module; docs/reader.md documents it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.recipe import Recipe

__all__ = ["ImageLike", "Reader", "Reading", "Recipe", "load_reader"]

ImageLike = Any       # str | Path | PIL.Image.Image | np.ndarray (grey [H, W], colour [H, W, 3|4])


@dataclass(frozen=True)
class Reading:
    """One image's reading."""

    text: str                                   # the most probable string ("" when nothing could be read)
    probability: float                          # its posterior probability (calibrated by the recipe's T)
    top: tuple[tuple[str, float], ...] = ()     # the k most probable strings with their probabilities
    mismatch: bool | None = None                # importance sampling only: the image looks unlike the style
    note: str = ""                              # e.g. "resized from 120x40 to 200x50"
    ess: float | None = None                    # importance sampling only: the effective sample size
    particles: int = 0                          # particles (or beam hypotheses) behind the reading

    def to_json(self) -> dict:
        return {"text": self.text, "probability": self.probability,
                "top": [{"text": t, "probability": p} for t, p in self.top],
                "mismatch": self.mismatch, "note": self.note, "ess": self.ess, "particles": self.particles}


class Reader:
    """A loaded model with its recipe. `read` batches internally; each image's reading depends on the seed
    and its own pixels only, not on the other images of the call."""

    def __init__(self, model, style, trained, recipe: Recipe, *, name: str = "", top_k: int = 3,
                 batch_size: int = 64) -> None:
        self.model, self.style, self.trained, self.recipe = model, style, trained, recipe
        self.name, self.top_k, self.batch_size = name, top_k, batch_size

    @classmethod
    def build(cls, model, trained, recipe: Recipe, *, name: str = "", prior_scale: float = 1.0, **kw) -> Reader:
        """The reader of a network trained on `trained`, read with `recipe` (its prior swapped in)."""
        from synthstream.style import load_style
        from trainer.infer import swap_text_prior

        style = trained
        if recipe.prior and recipe.prior != trained.name:
            style = swap_text_prior(trained, load_style(recipe.prior))
        return cls(model, style.widened(prior_scale) if prior_scale != 1.0 else style, trained, recipe,
                   name=name or trained.name, **kw)

    @property
    def alphabet(self) -> str:
        return self.style.alphabet

    def describe(self) -> dict:
        """What reads: the model as asked for, the style it was trained on, the prior it is read under, the
        recipe's parts and where each came from (for reports and `infer --json`)."""
        r = self.recipe
        return {"model": self.name, "trained_on": self.trained.name,
                "prior": r.prior or self.trained.name, "read_under": self.style.name,
                "recipe": r.parts(), "recipe_sources": {k: r.sources.get(k, "default") for k in r.parts()},
                "recipe_calibration": r.calibration, "recipe_versions": r.versions}

    def images(self, images: Iterable[ImageLike]) -> tuple[np.ndarray, list[str]]:
        """uint8 [n, H, W] at the style's size, and a note per image. Raises ValueError for an unreadable one."""
        from synthstream.images import UnreadableImage, array_to_grey, background_level, fit_to, read_grey, to_grey

        out, notes = [], []
        bg = background_level(self.style)
        for im in images:
            if isinstance(im, (str, Path)):
                grey = read_grey(Path(im), bg)
            elif isinstance(im, np.ndarray):
                grey = array_to_grey(im, bg)
            elif hasattr(im, "mode") and hasattr(im, "size"):
                grey = to_grey(im, bg)
            else:
                raise UnreadableImage(f"{type(im).__name__}: give a path, a PIL image or a numpy array")
            fitted, note = fit_to(grey, self.style.width, self.style.height)
            out.append(fitted)
            notes.append(note)
        empty = np.zeros((0, self.style.height, self.style.width), np.uint8)
        return (np.stack(out) if out else empty), notes

    def posteriors(self, x: np.ndarray, *, seed: int = 0, own_keys: np.ndarray | None = None) -> list:
        """Untempered posteriors (trainer.infer.Posterior) of uint8 images [n, H, W] at the style's size, in
        batches of `batch_size`."""
        import torch

        from trainer.infer import decode_posteriors

        r = self.recipe
        decoder, options = r.decoder, r.decoder_options()
        out: list = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                keys = None if own_keys is None else own_keys[i:i + self.batch_size]
                out += decode_posteriors(self.model, self.style, x[i:i + self.batch_size], decoder, options,
                                         seed=seed, train_style=self.trained, shifts=r.shifts, own_keys=keys)
        return out

    def read(self, images: Sequence[ImageLike] | ImageLike, *, seed: int = 0) -> list[Reading]:
        """One Reading per image (a single image, or a sequence; a uint8 array [n, H, W] is n grey images)."""
        if isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[2] not in (3, 4):
            images = list(images)
        elif not isinstance(images, (list, tuple)):
            images = [images]
        x, notes = self.images(images)
        T = self.recipe.temperature
        readings = []
        for p, note in zip(self.posteriors(x, seed=seed), notes):
            p = p.tempered(T)
            readings.append(Reading(p.map, float(p.map_prob), tuple((t, float(q)) for t, q in p.top(self.top_k)),
                                    p.mismatch, note, p.ess, p.particles))
        return readings


def load_reader(name_or_path: str | Path, *, prior_scale: float = 1.0, how: str = "override",
                **overrides) -> Reader:
    """A shipped model by name, a checkpoint.pt or a run folder, read with its recipe (`overrides` replace
    parts of it: method, beam_width, particles, bandwidth, prior, shifts, temperature; None: keep).
    `prior_scale` widens the nuisance prior importance sampling re-renders with."""
    from trainer.checkpoint import load, resolve
    from trainer.model import model_from_checkpoint
    from trainer.recipe import resolve as resolve_recipe

    state = load(resolve(str(name_or_path)))
    model, trained = model_from_checkpoint(state)
    recipe = resolve_recipe(state, overrides, how=how)
    return Reader.build(model, trained, recipe, name=str(name_or_path), prior_scale=prior_scale)
