"""`beam`: q + the text prior. Beam search of q restricted to the prior's support (trainer/decode.py), each
hypothesis scored log q + log p(s) - log p_train(s) and normalised over the beam (trainer/infer.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainer.decoders import Context, register


def _width(text: str) -> int:
    from synthstream import argtypes

    return argtypes.int_range(1, 1024)(text)


@dataclass(frozen=True)
class BeamOptions:
    beam_width: int = field(default=16, metadata={"help": "hypotheses per image (beam)", "type": _width})

    def __post_init__(self) -> None:
        if not 1 <= self.beam_width <= 1024:
            raise ValueError(f"beam_width {self.beam_width}: must be in [1, 1024]")


class Beam:
    name = "beam"
    help = "q + the text prior: beam search restricted to the prior's support"
    Options = BeamOptions
    shiftable = True

    def decode(self, model, style, images: np.ndarray, options: BeamOptions, context: Context) -> list:
        from trainer.infer import beam_posteriors

        return beam_posteriors(model, style, images, options.beam_width, context.train_style)

    def report_fields(self, options: BeamOptions, style) -> dict:
        return {"beam_width": options.beam_width}


DECODER = register(Beam())
