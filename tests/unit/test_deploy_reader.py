"""The reader's KubeRay manifests (deploy/kuberay/base/{rayservice-reader,rayjob-read}.yaml) as the base renders
them. tests/unit/test_deploy.py checks them with every other manifest (CRD schema with unknown fields
rejected, non-root read-only pods, token auth, images, ephemeral storage, NetworkPolicy); this checks what is
particular to them: the Serve config names a real application builder on the port KubeRay and the policy
expect, the entrypoint is a `read` command, the replicas and the actor pool fit the cluster."""

from __future__ import annotations

import importlib
import importlib.util
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from trainer.serve import REQUEST_TIMEOUT_S

HERE = Path(__file__).resolve().parent


def _test_deploy():
    if "test_deploy" in sys.modules:
        return sys.modules["test_deploy"]
    spec = importlib.util.spec_from_file_location("test_deploy", HERE / "test_deploy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["test_deploy"] = module
    spec.loader.exec_module(module)
    return module


td = _test_deploy()
NAMES = {"RayService": "synthstream-reader", "RayJob": "synthstream-read"}


def load(kind: str) -> dict:
    (doc,) = [d for d in td.rendered("base") if d["kind"] == kind and d["metadata"]["name"] == NAMES[kind]]
    return doc


cluster = td.cluster_spec


@pytest.mark.parametrize("kind, where, field", [
    ("RayService", ("spec",), "serveConfigV3"),
    ("RayService", ("spec", "rayClusterConfig", "headGroupSpec"), "rayStartParam"),
    ("RayJob", ("spec", "rayClusterSpec", "workerGroupSpecs", 0), "maxReplica"),
])
def test_schema_check_rejects_unknown_fields(kind, where, field):
    doc = load(kind)
    assert td.schema_errors(doc) == []
    node = doc
    for key in where:
        node = node[key]
    node[field] = {}
    found = td.schema_errors(doc)
    assert len(found) == 1 and repr(field) in found[0] and "Additional properties" in found[0], found


def test_serve_listens_on_the_port_kuberay_and_the_network_policy_expect():
    doc = load("RayService")
    http = yaml.safe_load(doc["spec"]["serveConfigV2"])["http_options"]
    assert http == {"host": "0.0.0.0", "port": td.SERVE_PORT,      # the pod's address; the policy guards it
                    "request_timeout_s": REQUEST_TIMEOUT_S}        # as `synthstream serve` sets it
    for name, group in td.ray_groups(doc):                       # proxy_location EveryNode: every pod serves
        (c,) = group["template"]["spec"]["containers"]
        assert {"containerPort": td.SERVE_PORT, "name": "serve"} in c["ports"], name


def test_serve_config_names_the_reader_application():
    doc = load("RayService")
    config = yaml.safe_load(doc["spec"]["serveConfigV2"])
    assert set(config) == {"proxy_location", "http_options", "applications"}
    (application,) = config["applications"]
    module, _, attr = application["import_path"].partition(":")
    builder = getattr(importlib.import_module(module), attr)
    bound = builder(application["args"])                # builds the deployment graph; starts nothing
    assert type(bound).__name__ == "Application"
    assert [d["name"] for d in application["deployments"]] == ["Reader"]
    assert application["args"]["checkpoint"] in __import__("trainer.checkpoint").checkpoint.shipped_models() \
        or application["args"]["checkpoint"].startswith(td.RUNS_PATH + "/")
    replicas = application["deployments"][0]["num_replicas"]
    cpus = replicas * float(application["args"]["replica_cpus"])
    workers = cluster(doc)["workerGroupSpecs"]
    assert cpus <= sum(g["maxReplicas"] * td.quantity(g["template"]["spec"]["containers"][0]["resources"]["limits"]
                                                       ["cpu"]) for g in workers)
    assert cluster(doc)["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_read_job_is_a_read_command_whose_actor_pool_fits():
    from synthstream.cli import build_parser

    doc = load("RayJob")
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[0] == td.console_script()
    args = build_parser().parse_args(argv[1:])
    assert args.command == "read" and args.out.startswith(td.RUNS_PATH + "/") and args.out.endswith(".parquet")
    workers = cluster(doc)["workerGroupSpecs"]
    room = sum(g["maxReplicas"] * td.quantity(g["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
               for g in workers)
    assert args.actors * args.actor_cpus <= room
    s = doc["spec"]
    assert s["shutdownAfterJobFinishes"] is True and s["ttlSecondsAfterFinished"] > 0 and s["backoffLimit"] >= 1
