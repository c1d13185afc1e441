"""Show the stream crossing nodes: two raylets on one machine, one generator actor on each, one consumer.

    # with a cluster you started (ray start --head --num-cpus=1; ray start --address=HEAD --num-cpus=1):
    python -m tests.helpers.two_raylets --address HEAD:PORT
    # or let this script start and stop a two-node cluster of its own (ray.cluster_utils.Cluster):
    python -m tests.helpers.two_raylets

Prints JSON: the actors' nodes, the consumer's node, batches received from each node, and whether every
sample index arrived exactly once.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="an existing cluster with >= 2 nodes of 1 CPU each")
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args(argv)

    import ray

    cluster = None
    if args.address:
        ray.init(address=args.address, logging_level="ERROR")
    else:
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 200 << 20})
        cluster.add_node(num_cpus=1, object_store_memory=200 << 20)
        ray.init(address=cluster.address, logging_level="ERROR")
    try:
        from synthstream.stream import GeneratorPool, StreamConfig, sample_indices
        from synthstream.style import load_style

        batch_size = 64
        pool = GeneratorPool(StreamConfig(style=load_style("wikipedia"), num_actors=2, batch_size=batch_size))
        stream = pool.stream()
        batches = [stream.next_record_batch() for _ in range(args.batches)]
        actor_nodes = [info["node_id"] for info in pool.actor_info]
        here = ray.get_runtime_context().get_node_id()
        indices = sample_indices(batches)
        result = {"nodes_in_cluster": len([n for n in ray.nodes() if n["Alive"]]),
                  "actor_nodes": actor_nodes, "consumer_node": here,
                  "batches_from_other_node": sum(actor_nodes[g % 2] != here for g in range(args.batches)),
                  "every_index_once": bool(np.array_equal(indices, np.arange(args.batches * batch_size)))}
        stream.close()
        pool.shutdown()
        print(json.dumps(result, indent=2))
        return result
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


if __name__ == "__main__":
    main()
