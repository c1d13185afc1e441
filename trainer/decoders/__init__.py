"""Decoders as plugins: each turns the proposal network's reading of a batch of images into posteriors over
strings. A decoder is one module in this package defining a `DECODER` (see `Decoder`); the registry finds it,
and the CLI's `--method` choices and option flags, the reading recipe, evaluation and the benchmarks read it.

    from trainer.decoders import get
    beam = get("beam")                                   # KeyError-free: UserError names the choices
    posts = beam.decode(model, style, images, beam.Options(beam_width=8), Context(seeds=...))

A decoder's `Options` is a frozen dataclass checked in `__post_init__`; each field's `metadata` holds its CLI
`help` and `type` (an argparse type), so `--field-name` flags are derived from it. `report_fields` is what
an evaluation report and `infer --json` say about the search (e.g. `beam_width`, `bandwidth`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np


@dataclass
class Context:
    """What a decode call needs beyond the images and options."""

    seeds: np.ndarray                    # uint64 [n]: one seed per image (from the image itself: batch-independent)
    train_style: Any = None              # the style q was trained on, when its text prior differs (a prior swap)
    chunk: int = 4096                    # rows per network call (bounds memory)
    own_keys: np.ndarray | None = None   # importance sampling on synthetic images: each image's own sample key


class Decoder(Protocol):
    name: str
    help: str                            # one line for `--method`'s help
    Options: type                        # a frozen dataclass of this decoder's options
    shiftable: bool                      # whether the shift ensemble applies

    def decode(self, model, style, images: np.ndarray, options, context: Context) -> list: ...

    def report_fields(self, options, style) -> dict: ...


_REGISTRY: dict[str, Decoder] = {}


def register(decoder: Decoder) -> Decoder:
    if decoder.name in _REGISTRY and _REGISTRY[decoder.name] is not decoder:
        raise ValueError(f"decoder {decoder.name!r} is registered twice")
    _REGISTRY[decoder.name] = decoder
    return decoder


def _discover() -> None:
    if _REGISTRY:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "DECODER"):
            register(module.DECODER)


def names() -> tuple[str, ...]:
    """Registered decoder names, in a fixed order (the default first)."""
    _discover()
    order = {"beam": 0, "proposal": 1, "is": 2}
    return tuple(sorted(_REGISTRY, key=lambda n: (order.get(n, 9), n)))


def get(name: str) -> Decoder:
    _discover()
    if name not in _REGISTRY:
        raise ValueError(f"method {name!r}: use one of {', '.join(names())}")
    return _REGISTRY[name]


def option_names(decoder: Decoder) -> tuple[str, ...]:
    return tuple(f.name for f in fields(decoder.Options))


def all_options() -> dict[str, Any]:
    """Every option field of every decoder by name (the first decoder declaring it gives help and type)."""
    out: dict[str, Any] = {}
    for n in names():
        for f in fields(get(n).Options):
            out.setdefault(f.name, f)
    return out


def make_options(decoder: Decoder, values: dict):
    """The decoder's Options from `values`, taking the fields it has (others belong to other decoders)."""
    known = set(option_names(decoder))
    return decoder.Options(**{k: v for k, v in values.items() if k in known and v is not None})
