"""`is`: importance sampling (the paper's method). Latents from q restricted to the support, nuisance from the
prior (fresh keys from each image's own seed), re-rendered by the style's kernels and weighted by an ABC
kernel (trainer/infer.py). Takes no shifts: it compares the image itself with its renders."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainer.decoders import Context, register
from trainer.decoders.proposal import _particles


def _bandwidth(text: str) -> float:
    import argparse

    from synthstream import argtypes
    from trainer.infer import BANDWIDTH_RANGE

    v = argtypes.positive_float(text)
    if not BANDWIDTH_RANGE[0] <= v <= BANDWIDTH_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{v:g} must be in [{BANDWIDTH_RANGE[0]:g}, {BANDWIDTH_RANGE[1]:g}]")
    return v


@dataclass(frozen=True)
class ImportanceOptions:
    particles: int = field(default=100, metadata={"help": "samples of q per image (proposal, is)",
                                                  "type": _particles})
    bandwidth: float | None = field(default=None, metadata={"help": "ABC kernel bandwidth (is; default: "
                                                                    "calibrated per style)", "type": _bandwidth})

    def __post_init__(self) -> None:
        import math

        from trainer.infer import MAX_PARTICLES

        if not 1 <= self.particles <= MAX_PARTICLES:
            raise ValueError(f"particles {self.particles}: must be in [1, {MAX_PARTICLES}]")
        if self.bandwidth is not None and not (self.bandwidth > 0 and math.isfinite(self.bandwidth)):
            raise ValueError(f"bandwidth {self.bandwidth!r}: must be a positive number")


class Importance:
    name = "is"
    help = "importance sampling against the style with the exact text prior"
    Options = ImportanceOptions
    shiftable = False

    def decode(self, model, style, images: np.ndarray, options: ImportanceOptions, context: Context) -> list:
        from trainer.infer import sampled_posteriors

        return sampled_posteriors(model, style, images, options.particles, context, weighted=True,
                                  bandwidth=options.bandwidth)

    def report_fields(self, options: ImportanceOptions, style) -> dict:
        from trainer.infer import kernel_bandwidth

        return {"particles": options.particles, "bandwidth": kernel_bandwidth(style, options.bandwidth)}


DECODER = register(Importance())
