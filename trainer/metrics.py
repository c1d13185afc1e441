"""Validation figures of a proposal network on labelled images: loss, per-latent and whole-string accuracy."""

from __future__ import annotations

import numpy as np
import torch

from synthstream.trace import LatentCodec
from trainer.model import ProposalNet


@torch.no_grad()
def evaluate(model: ProposalNet, images: torch.Tensor, targets: torch.Tensor, codec: LatentCodec,
             batch_size: int = 256) -> dict:
    """Teacher-forced loss (-log q, nats per trace), greedy-decode accuracy per address, whole strings."""
    model.eval()
    nll, decoded = [], []
    for i in range(0, images.shape[0], batch_size):
        x, y = images[i:i + batch_size], targets[i:i + batch_size]
        loss, _ = model(x, y)
        nll.append(loss)
        decoded.append(model.decode(x)[0])
    model.train()
    values = torch.cat(decoded).cpu().numpy()
    truth = targets.cpu().numpy()
    result = {"loss": float(torch.cat(nll).mean())}
    addresses = codec.addresses
    for j, address in enumerate(addresses):
        present = truth[:, j] >= 0
        if present.any():
            result[f"acc/{address}"] = float((values[present, j] == truth[present, j]).mean())
    chars = [a for a in addresses if a.startswith("char/")]
    result["acc/char"] = float(np.mean([result[f"acc/{a}"] for a in chars if f"acc/{a}" in result]))
    result["string_accuracy"] = float(np.mean([p == t for p, t in zip(codec.texts(values), codec.texts(truth))]))
    return result
