"""The reader's KubeRay manifests (deploy/kuberay/base/{rayservice-reader,rayjob-read}.yaml) against KubeRay's CRD
schemas with unknown fields rejected, reusing tests/unit/test_deploy.py's strict-schema helpers; and what the
schema cannot check: the Serve config names a real application builder, the entrypoint is a `read` command,
the actor pool fits the cluster, pods are non-root, Ray token auth is on."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import shlex
import sys
from pathlib import Path

import pytest
import yaml

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
BASE = td.ROOT / "deploy" / "kuberay" / "base"
MANIFESTS = {"RayService": BASE / "rayservice-reader.yaml", "RayJob": BASE / "rayjob-read.yaml"}
CRD_FILES = {"RayService": "ray.io_rayservices.yaml", "RayJob": "ray.io_rayjobs.yaml"}


@functools.cache
def validator(kind: str):
    import jsonschema

    path = td.CRDS / CRD_FILES[kind]
    if not path.is_file():
        pytest.skip(f"{path} is not present (the shared folder beside the checkout): no CRD schema to check")
    crd = yaml.load(path.read_text(), Loader=td.YAML_LOADER)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = td.strict(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(doc: dict) -> list[str]:
    found = validator(doc["kind"]).iter_errors(doc)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found)


def load(kind: str) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(MANIFESTS[kind].read_text()) if d]
    assert doc["kind"] == kind and doc["apiVersion"] == "ray.io/v1"
    return doc


def cluster(doc: dict) -> dict:
    return doc["spec"]["rayClusterConfig" if doc["kind"] == "RayService" else "rayClusterSpec"]


def pods(doc: dict) -> list[dict]:
    spec = cluster(doc)
    found = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    if doc["kind"] == "RayJob":
        found.append(doc["spec"]["submitterPodTemplate"]["spec"])
    return found


@pytest.mark.parametrize("kind", list(MANIFESTS))
def test_manifest_matches_the_crd_schema(kind):
    assert errors(load(kind)) == []


@pytest.mark.parametrize("kind, where, field", [
    ("RayService", ("spec",), "serveConfigV3"),
    ("RayService", ("spec", "rayClusterConfig", "headGroupSpec"), "rayStartParam"),
    ("RayJob", ("spec", "rayClusterSpec", "workerGroupSpecs", 0), "maxReplica"),
])
def test_schema_check_rejects_unknown_fields(kind, where, field):
    doc = load(kind)
    node = doc
    for key in where:
        node = node[key]
    node[field] = {}
    found = errors(doc)
    assert len(found) == 1 and repr(field) in found[0] and "Additional properties" in found[0], found


@pytest.mark.parametrize("kind", list(MANIFESTS))
def test_pods_are_non_root_with_token_auth_and_the_projects_image(kind):
    doc = load(kind)
    assert cluster(doc)["authOptions"] == {"mode": "token", "secretName": td.TOKEN_SECRET}
    assert cluster(doc)["rayVersion"] == td.pinned_ray()
    images = set()
    for pod in pods(doc):
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsUser"] != 0
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"] == c["resources"]["limits"]
            images.add(c["image"])
    (image,) = images                           # the project's image (kustomize's `images:` retags it per overlay)
    name, tag = image.split(":")
    assert name == "synthstream" and td.pinned_ray() in tag and tag.endswith("-cpu"), image


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
