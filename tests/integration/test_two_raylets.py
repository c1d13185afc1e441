import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_batches_cross_between_two_raylets():
    # its own two-node cluster (ray.cluster_utils.Cluster) in a child process (this session's Ray stays untouched)
    out = subprocess.run([sys.executable, "-m", "tests.helpers.two_raylets", "--batches", "8"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout[out.stdout.index("{"):])
    assert result["nodes_in_cluster"] == 2
    assert len(set(result["actor_nodes"])) == 2
    assert result["batches_from_other_node"] == 4 and result["every_index_once"]
