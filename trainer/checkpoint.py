"""Checkpoints: one file, written atomically, loaded with `weights_only=True`.

Contents (all plain types or tensors, so the safe unpickler accepts them): model and optimiser state, step,
stream position (next batch number per rank), the resolved training config, the style (raw dict) and the
network description. A checkpoint names its style, so inference can refuse a mismatched one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from synthstream.errors import UserError

FILE = "checkpoint.pt"
FORMAT = 1


def save(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, step: int,
         position: int, config: dict, style_raw: dict, preset: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    state = {"format": FORMAT, "model": model.state_dict(),
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "step": int(step), "position": int(position), "config": config, "style": style_raw, "preset": preset}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path: str | Path) -> dict:
    """Read a checkpoint safely. Raises UserError (one line) if it is missing, corrupt or not ours."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a zip, unsafe pickle...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"checkpoint {str(path)!r} cannot be read ({first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise UserError(f"checkpoint {str(path)!r} is not a synthstream checkpoint (format {FORMAT})")
    return state
