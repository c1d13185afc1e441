"""What a test can see of a training run from outside it."""

from pathlib import Path


def has_registered_checkpoint(out: Path) -> bool:
    """Ray Train has registered a checkpoint in run folder `out` (so a re-run restores it). A metrics.csv row
    appears before its checkpoint is registered: stopping a run on the row alone races the registration."""
    from ray.train import Result

    try:
        return Result.from_path(str(Path(out) / "ray" / "train")).checkpoint is not None
    except Exception:  # noqa: BLE001 - nothing registered yet (Ray's own error types)
        return False
