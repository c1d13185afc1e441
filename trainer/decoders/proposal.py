"""`proposal`: q alone. K traces drawn from q(latents | image) give a distribution over strings by frequency;
K = 1 is q's greedy decode. Each image's draws come from its own seed, so a posterior does not depend on
which other images share the batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainer.decoders import Context, register


def _particles(text: str) -> int:
    from synthstream import argtypes
    from trainer.infer import MAX_PARTICLES

    return argtypes.int_range(1, MAX_PARTICLES)(text)


@dataclass(frozen=True)
class ProposalOptions:
    particles: int = field(default=100, metadata={"help": "samples of q per image (proposal, is; proposal 1: "
                                                          "greedy)", "type": _particles})

    def __post_init__(self) -> None:
        from trainer.infer import MAX_PARTICLES

        if not 1 <= self.particles <= MAX_PARTICLES:
            raise ValueError(f"particles {self.particles}: must be in [1, {MAX_PARTICLES}]")


class Proposal:
    name = "proposal"
    help = "q alone, sampled (--particles 1: greedy)"
    Options = ProposalOptions
    shiftable = True

    def decode(self, model, style, images: np.ndarray, options: ProposalOptions, context: Context) -> list:
        import torch

        from synthstream.trace import codec_of
        from trainer.infer import Posterior, sampled_posteriors

        if options.particles == 1:
            with torch.no_grad():
                values, _ = model.decode(torch.from_numpy(np.ascontiguousarray(images)))
            return [Posterior([t], [1.0], particles=1) for t in codec_of(style).texts(values.numpy())]
        return sampled_posteriors(model, style, images, options.particles, context, weighted=False)

    def report_fields(self, options: ProposalOptions, style) -> dict:
        return {"particles": options.particles}


DECODER = register(Proposal())
