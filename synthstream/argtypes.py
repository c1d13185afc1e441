"""Argument types for the CLI: each parses one flag's text or raises argparse.ArgumentTypeError, which
argparse prints as one line naming the flag."""

from __future__ import annotations

import argparse
import math

from synthstream.limits import MAX_BATCH, MAX_INDEX, MAX_SAMPLES, MAX_SEED


def int_range(low: int, high: int | None = None):
    """An integer >= low (and <= high, if given)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} must be >= {low}")
        if high is not None and v > high:
            raise argparse.ArgumentTypeError(f"{v} must be {_at_most(high)}")
        return v
    return parse


def _at_most(high: int) -> str:
    """`< 2**63` rather than `<= 9223372036854775807`."""
    limit = high + 1
    return f"< 2**{limit.bit_length() - 1}" if limit > 2**20 and limit & (limit - 1) == 0 else f"<= {high}"


positive_int = int_range(1)
nonneg_int = int_range(0)
seed = int_range(0, MAX_SEED - 1)
index = int_range(0, MAX_INDEX - 1)
batch_size = int_range(1, MAX_BATCH)
sample_count = int_range(1, MAX_SAMPLES)


def _finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


finite_float = _finite_float


def positive_float(text: str) -> float:
    v = _finite_float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} must be > 0")
    return v


def nonneg_float(text: str) -> float:
    v = _finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be >= 0")
    return v


def positive_float_list(text: str) -> list[float]:
    """Comma-separated finite numbers, each > 0, e.g. `1,0.3,0.1`."""
    values = [v for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers > 0, e.g. 1,0.3")
    try:
        return [positive_float(v) for v in values]
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers > 0 ({e})") from None


def positive_int_list(text: str) -> list[int]:
    """Comma-separated counts, each >= 1, e.g. `1,2`."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,2") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every count must be >= 1")
    return values


def custom_resource(text: str) -> str:
    """The name of a custom Ray resource (not CPU, GPU or memory)."""
    name = text.strip()
    if not name or name in ("CPU", "GPU", "memory", "object_store_memory"):
        raise argparse.ArgumentTypeError(f"{text!r} must name a custom resource, not one of Ray's own")
    return name
