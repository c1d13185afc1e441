"""Asking a Ray cluster for resources, so that an autoscaling cluster is not refused before it can grow.

`ensure_resources(bundles, wait_s=...)` compares what the work needs with the cluster's resources now; if they
fall short it asks the autoscaler for the bundles (`ray.autoscaler.sdk.request_resources`, a no-op hint on a
cluster without one) and waits up to `wait_s` (GPU nodes can take minutes: an image pull, a node boot) before
refusing with what is missing. `wait_s=0` (an embedded Ray: it cannot grow) refuses at once.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from synthstream.errors import UserError

log = logging.getLogger(__name__)
POLL_S = 2.0


def shortfall(bundles: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Resource -> (needed, present) for every resource the cluster has too little of in all."""
    import ray

    need: Counter = Counter()
    for b in bundles:
        need.update(b)
    have = ray.cluster_resources()
    return {k: (v, have.get(k, 0.0)) for k, v in need.items() if have.get(k, 0.0) + 1e-9 < v}


def describe(missing: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{k} {need:g} (the cluster has {have:g})" for k, (need, have) in sorted(missing.items()))


def ensure_resources(bundles: list[dict[str, float]], *, wait_s: float, what: str) -> bool:
    """Return once the cluster holds the bundles' resources in all; True if the autoscaler was asked.
    Raises UserError naming what is missing once `wait_s` has passed."""
    missing = shortfall(bundles)
    if not missing:
        return False
    if wait_s <= 0:
        raise UserError(f"{what} need {describe(missing)}; this cluster cannot grow (resource_wait_s = 0)")
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=bundles)
    log.info("%s: asked the autoscaler for %s; waiting up to %.0f s", what, describe(missing), wait_s)
    deadline = time.monotonic() + wait_s
    while missing and time.monotonic() < deadline:
        time.sleep(POLL_S)
        missing = shortfall(bundles)
    if missing:
        raise UserError(f"{what} need {describe(missing)}; the cluster did not grow within {wait_s:g} s "
                        f"(no autoscaler, or it cannot add such nodes)")
    return True


def release_request() -> None:
    """Withdraw this driver's standing request, so the autoscaler may scale down."""
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[])
