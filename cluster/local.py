"""Start or join Ray: an embedded local instance by default, an existing cluster by address.

The embedded instance runs no dashboard server (its agent listens on loopback), keeps Ray's token
authentication (on by default in this Ray: every RPC needs the token in ~/.ray/auth_token), and has a small
object store (512 MiB unless told) so the stream's in-flight cap stays far below its spill threshold. Ray's
own gRPC ports listen on the node's address; Ray maps a 127.0.0.1 node address back to the host's, so they
cannot be confined to loopback from here (use a firewall or a network namespace for that).
"""

from __future__ import annotations

import os

from synthstream.errors import UserError

DEFAULT_OBJECT_STORE_MB = 512
MAX_OBJECT_STORE_MB = 1 << 20


def connect(address: str | None = None, *, num_cpus: int | None = None,
            object_store_mb: int = DEFAULT_OBJECT_STORE_MB, quiet: bool = True) -> str:
    """ray.init once; returns "local" or the address joined. `address` or $RAY_ADDRESS joins a cluster."""
    import ray

    if ray.is_initialized():
        return "existing"
    if not 75 <= object_store_mb <= MAX_OBJECT_STORE_MB:
        raise UserError(f"object store size {object_store_mb} MiB must be in [75, {MAX_OBJECT_STORE_MB}]")
    address = address or os.environ.get("RAY_ADDRESS") or None
    common = dict(logging_level="ERROR" if quiet else "INFO", log_to_driver=not quiet)
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise UserError(f"cannot join the Ray cluster at {address!r}: {str(e).splitlines()[0]}") from None
        return address
    ray.init(num_cpus=num_cpus, object_store_memory=object_store_mb << 20, include_dashboard=False, **common)
    return "local"


def object_store_stats() -> dict:
    """Cluster-wide object store figures: bytes spilled/restored so far and bytes in the store now."""
    import ray
    from ray._private import internal_api  # the `ray memory --stats-only` source; no public API yet

    reply = internal_api.get_memory_info_reply(internal_api.get_state_from_address(ray.get_runtime_context()
                                                                                    .gcs_address))
    s = reply.store_stats
    return {"spilled_bytes": int(s.spilled_bytes_total), "spilled_objects": int(s.spilled_objects_total),
            "restored_bytes": int(s.restored_bytes_total), "object_store_bytes_used": int(s.object_store_bytes_used),
            "object_store_bytes_avail": int(s.object_store_bytes_avail)}
