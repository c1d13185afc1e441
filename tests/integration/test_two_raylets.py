import json
import subprocess
import sys


def test_batches_cross_between_two_raylets():
    # its own two-node cluster in a child process (this session's Ray stays untouched)
    out = subprocess.run([sys.executable, "-m", "cluster.two_raylets", "--batches", "8"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout[out.stdout.index("{"):])
    assert result["nodes_in_cluster"] == 2
    assert len(set(result["actor_nodes"])) == 2
    assert result["batches_from_other_node"] == 4 and result["every_index_once"]
