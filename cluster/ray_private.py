"""The only module that reaches into `ray._private`: each function says why, and which public route would
replace it once Ray offers one. Tests exercise both (tests/integration/test_local_ray.py,
tests/integration/test_stream_faults.py), so a Ray upgrade that moves them fails loudly here.
"""

from __future__ import annotations

import os

SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"    # "0": Ray's single-machine (loopback) mode


class single_machine_mode:
    """Run ray.init with Ray's single-machine mode on (every server on 127.0.0.1), for this process and the
    processes it starts. Private: Ray 2.60 has no public switch; `ray start --node-ip-address` cannot confine
    an embedded instance to loopback.

    The mode is read from the environment when Ray is imported, and Ray may already be imported here, so
    the module constant is set too; both are restored afterwards (the node keeps its 127.0.0.1 address).
    """

    def __enter__(self):
        from ray._private import ray_constants  # no public switch for this in Ray 2.60

        self._env = os.environ.get(SINGLE_MACHINE_ENV)
        self._const = ray_constants.ENABLE_RAY_CLUSTER
        os.environ[SINGLE_MACHINE_ENV] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        return self

    def __exit__(self, *exc):
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = self._const
        if self._env is None:
            os.environ.pop(SINGLE_MACHINE_ENV, None)
        else:
            os.environ[SINGLE_MACHINE_ENV] = self._env
        return False


def object_store_stats() -> dict:
    """Cluster-wide object store figures: bytes spilled/restored so far and bytes in the store now.

    Private: `ray memory --stats-only` prints the same figures (public CLI, text only); the public state API
    (`ray.util.state`) has no spill counters in Ray 2.60. Replace this with it when it gains them."""
    import ray
    from ray._private import internal_api  # the `ray memory --stats-only` source; no public API yet

    reply = internal_api.get_memory_info_reply(internal_api.get_state_from_address(ray.get_runtime_context()
                                                                                    .gcs_address))
    s = reply.store_stats
    return {"spilled_bytes": int(s.spilled_bytes_total), "spilled_objects": int(s.spilled_objects_total),
            "restored_bytes": int(s.restored_bytes_total), "object_store_bytes_used": int(s.object_store_bytes_used),
            "object_store_bytes_avail": int(s.object_store_bytes_avail)}


def orphaned_placement_groups(alive_too: bool = False) -> list[str]:
    """The placement groups of this job (hex ids) whose creating actor has died (with `alive_too`: made by any
    actor, dead or alive, and not removed yet). Ray keeps a non-detached group
    until its *job* ends even when the actor that made it is gone, so one made by an actor that was killed (a
    Ray Train controller when Tune stops a trial) holds its resources for the rest of the job. Private: Ray
    2.60's public placement_group_table() leaves out the creator fields, and the State API that has them needs
    the dashboard, which the embedded Ray does not run (which is also why Ray Train's own cleaner misses these).

    The group's own `creator_actor_dead` flag is not enough: a group whose creation reaches the GCS as its
    creator is being destroyed (a controller asking for a new worker group while Tune removes its trial) keeps
    the flag false for good (seen in a 2-trials-at-once sweep under load), so this job's actor table decides too
    (a creator missing from it counts as dead)."""
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    job, nil = ray.get_runtime_context().get_job_id(), ray.ActorID.nil().binary()
    live = set() if alive_too else {a.actor_id for a in _job_actors() if a.state != gcs_pb2.ActorTableData.DEAD}
    found = []
    for raw in state._connect_and_get_accessor().get_placement_group_table():
        pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if (pg.creator_actor_id != nil and not pg.is_detached and pg.creator_job_id.hex() == job
                and pg.state != gcs_pb2.PlacementGroupTableData.REMOVED
                and (alive_too or pg.creator_actor_dead or pg.creator_actor_id not in live)):
            found.append(pg.placement_group_id.hex())
    return found


def _job_actors() -> list:
    """Every actor of this job, dead ones included, as the GCS's ActorTableData records."""
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    job = ray.JobID.from_hex(ray.get_runtime_context().get_job_id())
    return [gcs_pb2.ActorTableData.FromString(raw)
            for raw in state._connect_and_get_accessor().get_actor_table(job, None)]


def _job_detached_actors(class_name: str) -> tuple[list, set[bytes]]:
    """The alive detached actors of this job named `class_name`, and the worker ids of this job's dead actors."""
    from ray.core.generated import gcs_pb2

    actors = _job_actors()
    dead_workers = {a.address.worker_id for a in actors
                    if a.state == gcs_pb2.ActorTableData.DEAD and a.address.worker_id}
    alive = [a for a in actors if a.class_name == class_name and a.is_detached
             and a.state == gcs_pb2.ActorTableData.ALIVE]
    return alive, dead_workers


def live_detached_actors(class_name: str) -> int:
    """How many detached actors of this job named `class_name` are alive (whoever made them)."""
    return len(_job_detached_actors(class_name)[0])


def end_stray_detached_actors(class_name: str) -> int:
    """End, on this node, the detached actors of this job named `class_name` that are alive though the actor
    that made them is dead; returns how many. Ray Train's PlacementGroupCleaner is one: made detached by each
    run's controller to free its workers' group should the controller die, it learns of that death through the
    State API, which the embedded Ray (no dashboard) does not serve, so it waits for ever: a ~200 MB process per
    stopped sweep trial. Private: the public State API needs the dashboard, the public ray.get_actor finds
    named actors only, and ray.kill needs a handle this process never had; so the actor's process is sent
    SIGTERM (Ray then marks the actor dead), after checking that it is that actor's. A Ray with a dashboard (a
    joined cluster's) lets the cleaner end itself."""
    import signal

    import ray

    alive, dead_workers = _job_detached_actors(class_name)
    node = ray.get_runtime_context().get_node_id()
    ended = 0
    for a in alive:
        if a.pid and a.owner_address.worker_id in dead_workers and a.node_id.hex() == node:
            try:
                with open(f"/proc/{a.pid}/cmdline", "rb") as f:     # Ray titles it ray::<class name>
                    if class_name.encode() not in f.read():
                        continue
                os.kill(a.pid, signal.SIGTERM)
                ended += 1
            except OSError:                   # gone already, no /proc, or not ours to signal
                continue
    return ended
