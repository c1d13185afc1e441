"""Real network hosts: a Ray cluster across Linux network namespaces shaped like the KubeRay RayJob (a head
with no CPUs, a generator group, a trainer group; tests/helpers/netns_cluster.py), and `synthstream train` submitted
to it as a RayJob does. One cluster serves the whole module; each test brings it to the state it needs.
Skipped where namespaces are not allowed (they need root)."""

import pytest

from tests.helpers.netns_hosts import unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"network namespaces unavailable: {REASON}")

BATCH = 64                  # synthstream train's default --batch-size
ZERO_STEPS = 100            # tiny reaches ~1.0 whole-string validation accuracy by then (0.95 at 80)
SHORT_STEPS = 100           # the retry and node-loss jobs check recovery, not accuracy
VAL_EVERY = 20
JOB_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cluster():
    from tests.helpers.netns_cluster import NetnsRayCluster

    c = NetnsRayCluster()
    try:
        c.start(workers=False)                       # the head alone, as an autoscaling RayCluster starts
        yield c
    finally:
        c.teardown()


def _every_batch_once(out, steps: int) -> None:
    """Rank 0's stream ends at batch `steps` (batches 0..steps-1, their sample indices, each trained on once)."""
    from trainer import checkpoint

    state = checkpoint.load(out / "checkpoint.pt")
    assert state["step"] == steps and state["position"] == steps


def test_without_workers_the_job_fails_with_one_line_naming_what_is_missing(cluster, tmp_path):
    from tests.helpers.netns_cluster import run_refused

    result = run_refused(cluster, tmp_path / "run", wait_s=5)
    assert result["status"] == "FAILED"
    [line] = result["error_lines"]
    assert "CPU 2 (the cluster has 0)" in line and "synthstream_generator" in line and "within 5 s" in line
    assert not result["run_started"]                 # refused before the run wrote anything


def test_a_job_on_a_head_only_cluster_waits_for_hosts_then_trains_across_them(cluster, tmp_path):
    from tests.helpers.netns_cluster import run_from_zero

    result = run_from_zero(cluster, tmp_path / "run", ZERO_STEPS, 50, join_after_s=8, wait_s=120,
                           timeout_s=JOB_TIMEOUT_S)
    assert result["status"] == "SUCCEEDED", result["logs_tail"]
    assert result["string_accuracy"] >= 0.9
    assert result["placement"]["generators"] == ["gen1", "gen2"] and result["placement"]["workers"] == ["train1"]
    assert result["batches_cross_hosts"]
    stream = result["stream"]
    assert stream["generator_hosts"] == ["gen1", "gen2"] and stream["worker_hosts"] == ["train1"]
    assert stream["index_errors"] == 0 and stream["samples"] == ZERO_STEPS * BATCH
    _every_batch_once(tmp_path / "run", ZERO_STEPS)


@pytest.mark.slow        # a second job (or a host lost) on the namespace cluster: ~1 min
def test_a_stopped_job_submitted_again_continues_from_its_checkpoint(cluster, tmp_path):
    from tests.helpers.netns_cluster import run_stop_and_retry

    result = run_stop_and_retry(cluster, tmp_path / "run", SHORT_STEPS, VAL_EVERY, timeout_s=JOB_TIMEOUT_S)
    assert result["first_job"]["status"] == "STOPPED"
    assert result["status"] == "SUCCEEDED", result["logs_tail"]
    assert result["restored_from_step"] and result["restored_from_step"] >= VAL_EVERY
    steps = result["metrics_steps"]
    assert steps == sorted(set(steps)) and steps[-1] == SHORT_STEPS          # each step once, in order
    assert result["stream"]["index_errors"] == 0
    assert result["stream"]["samples"] == (SHORT_STEPS - result["restored_from_step"]) * BATCH
    _every_batch_once(tmp_path / "run", SHORT_STEPS)


@pytest.mark.slow        # a second job (or a host lost) on the namespace cluster: ~1 min
def test_a_lost_generator_host_moves_its_generator_to_the_surviving_host(cluster, tmp_path):
    from tests.helpers.netns_cluster import run_node_loss

    result = run_node_loss(cluster, tmp_path / "run", SHORT_STEPS, VAL_EVERY, cut="link", timeout_s=JOB_TIMEOUT_S)
    assert result["lost_host"] in ("gen1", "gen2"), result["placement_before"]
    assert result["status"] == "SUCCEEDED", result["logs_tail"]
    survivor = ({"gen1", "gen2"} - {result["lost_host"]}).pop()
    assert result["stream"]["generator_hosts"] == [survivor, survivor]       # both generators there at the end
    assert result["stream"]["index_errors"] == 0 and result["stream"]["samples"] == SHORT_STEPS * BATCH
    assert result["recovery_s"] is not None          # throughput after it is reported when an interval remains
    _every_batch_once(tmp_path / "run", SHORT_STEPS)
