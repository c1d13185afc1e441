"""deploy/ agrees with the project: the image recipe, and the KubeRay manifests as rendered by kustomize.

No container daemon and no Kubernetes cluster run here, so this checks what can be checked without them:
the Dockerfile against pyproject, cluster/setup.sh's pins, the installed Ray and the styles' fonts; every
rendered RayJob/RayCluster/RayService against KubeRay's CRD schema (../shared/schemas/kuberay) with unknown fields
rejected, as kubeconform's strict mode does, and the NetworkPolicies against a strict subset of the core
schema; and the project's own invariants (entrypoints parse and train the shipped model's recipe, resources
fit, pods non-root with read-only roots, ports reachable only from the cluster's own pods, ...), checked on
every pod template the base renders, so a new manifest is covered as soon as the kustomization lists it.
Rendering uses `kubectl kustomize` when kubectl is on PATH, else the small renderer below (which handles
exactly what deploy/kuberay uses, and is compared with kubectl where both exist).
"""
from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
FONT_PACKAGES = ROOT / "cluster" / "debian-packages.txt"
KUBERAY = ROOT / "deploy" / "kuberay"
TARGETS = ["base", "overlays/cpu-small", "overlays/gpu"]
CRDS = ROOT.parent / "shared" / "schemas" / "kuberay"
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml",
             "RayService": "ray.io_rayservices.yaml"}
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml: the CRDs are 40k lines
RUNS_CLAIM, RUNS_PATH = "synthstream-runs", "/mnt/runs"
TOKEN_SECRET = "synthstream-ray-token"
GENERATOR_RESOURCE = "synthstream_generator"


# -- project facts -------------------------------------------------------------------------------------------

@functools.cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


SETUP = ROOT / "cluster" / "setup.sh"


def setup_pin(package: str) -> str:
    """The exact version cluster/setup.sh installs of `package` (pyproject.toml gives ranges)."""
    found = set(re.findall(rf"\b{package}(?:\[[^\]]*\])?==([0-9][0-9.]*)", SETUP.read_text()))
    assert len(found) == 1, f"{SETUP.name} must pin {package} exactly once (==X.Y.Z), found {found}"
    return found.pop()


def pinned_ray() -> str:
    return setup_pin("ray")


def test_pyproject_admits_the_pinned_ray():
    from packaging.requirements import Requirement

    reqs = [Requirement(d) for d in pyproject()["project"]["dependencies"] if re.match(r"ray\b", d)]
    assert len(reqs) == 1 and reqs[0].specifier.contains(pinned_ray()), (reqs, pinned_ray())


def project_version() -> str:
    """Images are tagged with the project's version and Ray's (an immutable tag: one build per tag)."""
    return pyproject()["project"]["version"]


def console_script() -> str:
    scripts = pyproject()["project"]["scripts"]
    assert list(scripts) == ["synthstream"], scripts
    return "synthstream"


def font_packages() -> list[str]:
    lines = (ln.split("#", 1)[0].strip() for ln in FONT_PACKAGES.read_text().splitlines())
    return [ln for ln in lines if ln]


# -- the image recipe --------------------------------------------------------------------------------------

@functools.cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(ln for ln in DOCKERFILE.read_text().splitlines()
                                          if not ln.lstrip().startswith("#")))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln.strip() else "")
            for ln in text.splitlines() if ln.strip()]


def docker_args() -> dict[str, str]:
    return dict(a.split("=", 1) for i, a in dockerfile() if i == "ARG" and "=" in a)


def test_dockerfile_base_is_the_pinned_ray_image():
    import ray

    (base,) = [a for i, a in dockerfile() if i == "FROM"]
    args = docker_args()
    tag = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert tag == f"rayproject/ray:{args['RAY_VERSION']}-py311-cpu", tag
    assert args["RAY_VERSION"] == pinned_ray() == ray.__version__
    assert args["VARIANT"] == "cpu" and base.endswith("-${VARIANT}")    # the CUDA build: VARIANT=cu1xx


def test_dockerfile_installs_exactly_the_font_list():
    runs = [a for i, a in dockerfile() if i == "RUN"]
    assert any(f"/tmp/{FONT_PACKAGES.name}" in a for i, a in dockerfile() if i == "COPY")
    (apt,) = [r for r in runs if "apt-get install" in r]
    assert re.search(rf"sed -e 's/#\.\*//' /tmp/{re.escape(FONT_PACKAGES.name)} \| xargs apt-get install", apt)
    named_here = [w for r in runs for w in r.split() if w.startswith("fonts-") or w == "fontconfig"]
    assert not named_here, f"Dockerfile names packages itself ({named_here}); they belong in {FONT_PACKAGES}"
    setup = (ROOT / "cluster" / "setup.sh").read_text()
    assert "cluster/debian-packages.txt" in setup and not re.search(r"\bfonts-[a-z]", setup)


def python_dependencies() -> set[str]:
    """The distribution names pyproject.toml depends on (without versions and extras)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0] for d in deps}


def test_every_style_font_and_word_list_package_is_in_the_list():
    listed = set(font_packages())
    for path in sorted((ROOT / "synthstream" / "styles").glob("*.toml")):
        style = tomllib.loads(path.read_text())
        for font in style.get("fonts", []):
            if "module" in font:                 # a Python dependency's own file (the captcha package's font)
                assert font["module"] in python_dependencies(), f"{path.name}: {font} not a dependency"
                continue
            assert font.get("package") in listed, f"{path.name}: {font} not in {FONT_PACKAGES.name}"
        word_list = style.get("text", {}).get("word_list")
        if word_list:
            assert word_list.get("package") in listed, f"{path.name}: {word_list} not in {FONT_PACKAGES.name}"


def test_dockerfile_runs_as_non_root_and_smokes_the_console_script():
    steps = dockerfile()
    users = [(n, a.strip()) for n, (i, a) in enumerate(steps) if i == "USER"]
    apt = next(n for n, (i, a) in enumerate(steps) if i == "RUN" and "apt-get" in a)
    pip = next(n for n, (i, a) in enumerate(steps) if i == "RUN" and "/tmp/synthstream-src" in a)
    assert users and users[-1][1] not in ("root", "0") and users[-1][0] < pip, users   # install as `ray` too
    assert all(u not in ("root", "0") for n, u in users if n > apt)
    assert 'pip install --no-cache-dir "/tmp/synthstream-src[' in steps[pip][1]        # not editable (-e)
    script = console_script()
    assert any(i == "RUN" and f"{script} --help" in a for i, a in steps)
    (entry,) = [a for i, a in steps if i == "ENTRYPOINT"]
    assert json.loads(entry) == [script]


def test_dockerfile_installs_the_pinned_torch_in_its_own_layer_before_the_sources():
    steps = dockerfile()
    (torch_step,) = [n for n, (i, a) in enumerate(steps) if i == "RUN" and "torch" in a]
    (copy_src,) = [n for n, (i, a) in enumerate(steps) if i == "COPY" and "/tmp/synthstream-src" in a]
    run = steps[torch_step][1]
    assert torch_step < copy_src and '"torch==${TORCH_VERSION}"' in run and "&&" not in run, run
    assert docker_args()["TORCH_VERSION"] == setup_pin("torch")          # the CPU pin of cluster/setup.sh


def test_dockerfile_keeps_caches_in_tmp_for_a_read_only_root():
    env = " ".join(a for i, a in dockerfile() if i == "ENV")
    for var in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        assert re.search(rf"\b{var}=/tmp/", env), var
    assert "SYNTHSTREAM_FONT_PATH=/etc/synthstream/fonts:" in env


def test_dockerignore_keeps_local_state_out():
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "runs", "**/__pycache__", ".pytest_cache"} <= ignored


# -- rendering ---------------------------------------------------------------------------------------------

def _load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), path
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _apply_json6902(doc: dict, ops: list[dict]) -> None:
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        kind = op["op"]
        if kind == "test":
            got = node[int(last)] if isinstance(node, list) else node[last]
            assert got == op["value"], f"JSON6902 test {op['path']}: {got!r} != {op['value']!r}"
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif kind == "replace":
            if isinstance(node, list):
                node[int(last)] = copy.deepcopy(op["value"])
            else:
                assert last in node, f"JSON6902 replace: no {op['path']}"
                node[last] = copy.deepcopy(op["value"])
        elif kind == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                node[last] = copy.deepcopy(op["value"])
        else:
            raise AssertionError(f"the test renderer does not implement JSON6902 {kind!r}")


def _matches(doc: dict, target: dict) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    want = {"group": group, "version": version, "kind": doc["kind"], "name": doc["metadata"]["name"]}
    return all(want[k] == v for k, v in target.items())


def _containers(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def render_python(directory: Path) -> list[dict]:
    """kustomize build for the subset deploy/kuberay uses: resources, labels, images, JSON6902 patches."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(k) - {"apiVersion", "kind", "resources", "labels", "images", "patches"}
    assert not unknown, f"{directory}: the test renderer does not implement {sorted(unknown)}"
    docs: list[dict] = []
    for res in k.get("resources", []):
        path = (directory / res).resolve()
        docs += render_python(path) if path.is_dir() else _load_all(path)
    for patch in k.get("patches", []):
        ops = yaml.safe_load((directory / patch["path"]).read_text())
        assert isinstance(ops, list), f"{patch['path']}: only JSON6902 patches are implemented here"
        hits = [d for d in docs if _matches(d, patch["target"])]
        assert hits, f"{patch['path']}: no resource matches {patch['target']}"
        for doc in hits:
            _apply_json6902(doc, ops)
    for label in k.get("labels", []):
        assert not label.get("includeSelectors") and not label.get("includeTemplates"), label
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in k.get("images", []):
        for c in _containers(docs):
            name, tag = re.fullmatch(r"([^:@]+)(.*)", c["image"]).groups()
            if name == image["name"]:
                c["image"] = image.get("newName", name) + (f":{image['newTag']}" if "newTag" in image else tag)
    return docs


def render_kubectl(directory: Path) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@functools.cache
def _rendered(target: str) -> tuple:
    directory = KUBERAY / target
    return tuple(render_kubectl(directory) if shutil.which("kubectl") else render_python(directory))


def rendered(target: str) -> list[dict]:
    return copy.deepcopy(list(_rendered(target)))


def ray_resources(target: str) -> list[dict]:
    return [d for d in rendered(target) if d["kind"] in CRD_FILES]


def _key(doc: dict) -> tuple:
    return doc["kind"], doc["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_python_renderer_agrees_with_kubectl(target):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not on PATH: nothing to compare the Python renderer with")
    directory = KUBERAY / target
    assert sorted(render_python(directory), key=_key) == sorted(render_kubectl(directory), key=_key)


def test_overlays_render_the_same_resources():
    names = {t: sorted(map(_key, rendered(t))) for t in TARGETS}
    assert names["base"] == names["overlays/cpu-small"] == names["overlays/gpu"]
    assert names["base"] == [("NetworkPolicy", "synthstream-bench"), ("NetworkPolicy", "synthstream-interactive"),
                             ("NetworkPolicy", "synthstream-read"), ("NetworkPolicy", "synthstream-reader"),
                             ("NetworkPolicy", "synthstream-train"),
                             ("PersistentVolumeClaim", RUNS_CLAIM), ("RayCluster", "synthstream-interactive"),
                             ("RayJob", "synthstream-bench"), ("RayJob", "synthstream-read"),
                             ("RayJob", "synthstream-train"), ("RayService", "synthstream-reader")]


def test_every_manifest_in_base_is_in_the_kustomization():
    """A manifest left out of the kustomization is neither deployed nor checked by the tests below."""
    base = KUBERAY / "base"
    listed = set(yaml.safe_load((base / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in base.glob("*.yaml")} - {"kustomization.yaml"}


def _pod_specs(node):
    """Every pod spec (a mapping with `containers`) anywhere in a rendered document."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
        for value in node.values():
            yield from _pod_specs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _pod_specs(item)


@pytest.mark.parametrize("target", TARGETS)
def test_the_checks_below_see_every_pod(target):
    """Every pod spec in the rendering belongs to a Ray resource's head, worker group or submitter, which the
    hardening checks iterate over; a new kind of resource with pods must be added to them first."""
    for doc in rendered(target):
        found = sorted(id(p) for p in _pod_specs(doc))
        checked = sorted(id(t["spec"]) for _, t in pod_templates(doc)) if doc["kind"] in CRD_FILES else []
        assert found == checked, f"{_key(doc)}: a pod the checks do not iterate over"


# -- the CRD schemas ---------------------------------------------------------------------------------------

def strict(schema):
    """Reject unknown fields: additionalProperties false on every object schema with `properties` that
    neither sets additionalProperties nor preserves unknown fields (kubeconform's -strict)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: ({p: strict(s) for p, s in v.items()} if k == "properties" else strict(v))
           for k, v in schema.items()}
    if "properties" in schema:
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.cache
def validator(kind: str):
    import jsonschema

    path = CRDS / CRD_FILES[kind]
    if not path.is_file():
        pytest.skip(f"{path} is not present (the shared folder beside the checkout): no CRD schema to check")
    crd = yaml.load(path.read_text(), Loader=YAML_LOADER)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(doc: dict) -> list[str]:
    errors = validator(doc["kind"]).iter_errors(doc)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("target", TARGETS)
def test_ray_resources_match_the_crd_schema(target):
    for doc in ray_resources(target):
        assert doc["apiVersion"] == "ray.io/v1"
        assert schema_errors(doc) == [], f"{target}: {_key(doc)}"


@pytest.mark.parametrize("where, field", [
    (("spec", "rayClusterSpec", "headGroupSpec"), "rayStartParam"),                       # a typo
    (("spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0), "securityContxt"),
    (("spec",), "shutdownAfterJobFinish"),
])
def test_schema_check_rejects_unknown_fields(where, field):
    (train,) = [d for d in ray_resources("overlays/gpu") if d["metadata"]["name"] == "synthstream-train"]
    assert schema_errors(train) == []
    node = train
    for key in where:
        node = node[key]
    node[field] = {}
    errors = schema_errors(train)
    assert len(errors) == 1 and repr(field) in errors[0] and "Additional properties" in errors[0], errors


# -- invariants --------------------------------------------------------------------------------------------

_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    """A Kubernetes quantity ("500m", "2", "8Gi", 4) as a number (CPUs or bytes)."""
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(value))
    assert m, f"not a quantity: {value!r}"
    number, unit = float(m.group(1)), m.group(2) or ""
    return number / 1000 if unit == "m" else number * _UNITS[unit]


def cluster_spec(doc: dict) -> dict:
    key = {"RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}.get(doc["kind"])
    return doc["spec"][key] if key else doc["spec"]


def ray_groups(doc: dict) -> list[tuple[str, dict]]:
    """(name, group spec) for the head and every worker group."""
    spec = cluster_spec(doc)
    return [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]


def containers(doc: dict) -> list[tuple[str, dict, dict]]:
    """(where, container or container-like spec, its pod's spec) for every container KubeRay runs."""
    spec = cluster_spec(doc)
    found = [(f"{name}/{c['name']}", c, g["template"]["spec"])
             for name, g in ray_groups(doc) for c in g["template"]["spec"]["containers"]]
    if spec.get("enableInTreeAutoscaling"):
        found.append(("autoscaler", spec["autoscalerOptions"], {}))
    if doc["kind"] == "RayJob":
        pod = doc["spec"]["submitterPodTemplate"]["spec"]
        found += [(f"submitter/{c['name']}", c, pod) for c in pod["containers"]]
    return found


def entrypoint(doc: dict):
    from synthstream.cli import build_parser

    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[0] == console_script(), argv
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{doc['metadata']['name']}: synthstream's parser refuses the entrypoint {argv}")


@pytest.mark.parametrize("target", TARGETS)
def test_entrypoints_are_synthstream_commands_writing_to_the_runs_volume(target):
    jobs = {d["metadata"]["name"]: d for d in ray_resources(target) if d["kind"] == "RayJob"}
    train, bench = entrypoint(jobs["synthstream-train"]), entrypoint(jobs["synthstream-bench"])
    assert (train.command, bench.command, bench.bench) == ("train", "bench", "stream")
    assert train.out.startswith(RUNS_PATH + "/") and bench.json.startswith(RUNS_PATH + "/")
    assert train.no_progress and train.generator_resource == GENERATOR_RESOURCE
    assert train.gpu == (target == "overlays/gpu")
    for job in jobs.values():
        s = job["spec"]
        assert s["shutdownAfterJobFinishes"] is True and s["ttlSecondsAfterFinished"] > 0 and "backoffLimit" in s
    spec = jobs["synthstream-train"]["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["activeDeadlineSeconds"] > train.resource_wait + 600       # room to grow, then to train


@functools.cache
def shipped_recipe() -> tuple[str, str]:
    """(style, preset) the shipped `wikipedia` model was trained with: what the README recommends."""
    from trainer import checkpoint

    state = checkpoint.load(ROOT / "trainer" / "models" / "wikipedia.pt")
    return state["style"]["name"], state["preset"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_train_job_trains_the_shipped_models_recipe(target):
    (job,) = [d for d in ray_resources(target) if d["metadata"]["name"] == "synthstream-train"]
    args = entrypoint(job)
    assert (args.style, args.preset) == shipped_recipe(), shipped_recipe()


def _group_cpus(group: dict) -> float:
    (c,) = group["template"]["spec"]["containers"]
    return quantity(c["resources"]["limits"]["cpu"])


def _advertised(group: dict) -> dict:
    text = group["rayStartParams"].get("resources")
    return json.loads(json.loads(text)) if text else {}      # KubeRay's form: '"{\"name\": n}"'


@pytest.mark.parametrize("target", TARGETS)
def test_training_fits_the_cluster_it_can_grow_to(target):
    """Generator actors fit on the group advertising their resource, each training worker's CPUs (and GPU) on
    one pod of another group, when the autoscaler has added every pod (maxReplicas); groups may start at 0."""
    (job,) = [d for d in ray_resources(target) if d["metadata"]["name"] == "synthstream-train"]
    args = entrypoint(job)
    groups = dict(ray_groups(job))
    assert groups.pop("head")["rayStartParams"]["num-cpus"] == "0"
    gen = [g for g in groups.values() if args.generator_resource in _advertised(g)]
    assert len(gen) == 1, "exactly one worker group advertises the generator resource"
    (gen,) = gen
    assert _advertised(gen)[args.generator_resource] == _group_cpus(gen)
    assert gen["maxReplicas"] * (_group_cpus(gen) // args.generator_cpus) >= args.generators
    per_worker = args.worker_cpus
    assert per_worker is not None and args.resource_wait > 0, "a job on an autoscaling cluster sizes its workers"
    trainers = [g for g in groups.values() if g is not gen]
    slots = sum(g["maxReplicas"] * (_group_cpus(g) // per_worker) for g in trainers if _group_cpus(g) >= per_worker)
    assert per_worker >= 1 and slots >= args.workers, (per_worker, slots)
    if args.gpu:
        gpus = sum(g["maxReplicas"] * quantity(g["template"]["spec"]["containers"][0]["resources"]["limits"]
                                            .get("nvidia.com/gpu", 0)) for g in trainers)
        assert gpus >= args.workers


@pytest.mark.parametrize("target", TARGETS)
def test_gpu_groups_request_and_tolerate_gpus(target):
    gpu_groups = 0
    for doc in ray_resources(target):
        for name, group in ray_groups(doc):
            pod = group["template"]["spec"]
            res = pod["containers"][0]["resources"]
            if "nvidia.com/gpu" in res.get("limits", {}) or "nvidia.com/gpu" in res.get("requests", {}):
                gpu_groups += 1
                assert quantity(res["requests"]["nvidia.com/gpu"]) >= 1
                assert any(t["key"] == "nvidia.com/gpu" for t in pod.get("tolerations", [])), name
    assert (gpu_groups > 0) == (target == "overlays/gpu")


@pytest.mark.parametrize("target", TARGETS)
def test_images_are_this_project_on_the_pinned_ray(target):
    variant = "cu" if target == "overlays/gpu" else "cpu"
    for doc in ray_resources(target):
        assert cluster_spec(doc)["rayVersion"] == pinned_ray()
        for where, c, _ in containers(doc):
            if where == "autoscaler":
                assert "image" not in c          # the autoscaler sidecar runs the head's image
                continue
            tag = rf"{re.escape(project_version())}-ray{re.escape(pinned_ray())}-py311-{variant}[0-9]*"
            assert re.fullmatch(rf"(.+/)?synthstream(:{tag}|@sha256:[0-9a-f]{{64}})", c["image"]), (where, c["image"])


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_restricted_and_non_root(target):
    for doc in ray_resources(target):
        for where, c, pod in containers(doc):
            def effective(key, c=c, pod=pod):
                return c.get("securityContext", {}).get(key, pod.get("securityContext", {}).get(key))
            assert effective("runAsNonRoot") is True and effective("runAsUser") == 1000, where
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], where
            assert effective("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert not c["securityContext"].get("privileged"), where
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where


@pytest.mark.parametrize("target", TARGETS)
def test_limits_equal_requests(target):
    for doc in ray_resources(target):
        for where, c, _ in containers(doc):
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and res["limits"] == res["requests"], where


@pytest.mark.parametrize("target", TARGETS)
def test_object_store_is_explicit_and_fits_dev_shm(target):
    for doc in ray_resources(target):
        for name, group in ray_groups(doc):
            pod = group["template"]["spec"]
            store = int(group["rayStartParams"]["object-store-memory"])
            (ray_container,) = pod["containers"]
            mounts = {m["mountPath"]: m["name"] for m in ray_container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            shm = volumes[mounts["/dev/shm"]]["emptyDir"]
            assert shm["medium"] == "Memory" and quantity(shm["sizeLimit"]) >= store, (name, shm, store)
            assert store < quantity(ray_container["resources"]["limits"]["memory"]) / 2, name
            assert volumes[mounts[RUNS_PATH]]["persistentVolumeClaim"]["claimName"] == RUNS_CLAIM, name


@pytest.mark.parametrize("target", TARGETS)
def test_clusters_are_private_authenticated_and_autoscaled(target):
    for doc in ray_resources(target):
        spec = cluster_spec(doc)
        assert spec["authOptions"] == {"mode": "token", "secretName": TOKEN_SECRET}
        assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
        assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["version"] == "v2"
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert {"name": "RAY_enable_autoscaler_v2", "value": "1"} in head["env"]
        assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
        assert all(g["minReplicas"] == 0 and g["maxReplicas"] >= g["replicas"] for g in spec["workerGroupSpecs"])
        no_token_here = json.dumps(doc)
        assert "RAY_AUTH_TOKEN" not in no_token_here and "auth_token" not in no_token_here


def test_runs_volume_is_shared_in_the_base():
    (pvc,) = [d for d in rendered("base") if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == RUNS_CLAIM and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def pod_templates(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod template) for every pod a Ray resource makes: head, worker groups, a RayJob's submitter."""
    found = [(name, g["template"]) for name, g in ray_groups(doc)]
    if doc["kind"] == "RayJob":
        found.append(("submitter", doc["spec"]["submitterPodTemplate"]))
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_writes_only_to_emptydirs_and_volumes_with_ephemeral_storage_bounded(target):
    for doc in ray_resources(target):
        head_pod = cluster_spec(doc)["headGroupSpec"]["template"]["spec"]
        for where, c, pod in containers(doc):
            volumes = {v["name"]: v for v in (pod or head_pod).get("volumes", [])}   # the autoscaler: the head's
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: no writable /tmp (Ray's session dir /tmp/ray, caches)"
            tmp = volumes[mounts["/tmp"]]["emptyDir"]
            limits = c["resources"]["limits"]
            assert "ephemeral-storage" in limits, where
            if pod:
                pod_limit = sum(quantity(x["resources"]["limits"]["ephemeral-storage"]) for x in pod["containers"])
                assert quantity(tmp["sizeLimit"]) <= pod_limit, (where, tmp, pod_limit)


@pytest.mark.parametrize("target", TARGETS)
def test_only_an_autoscaling_head_gets_a_service_account_token(target):
    for doc in ray_resources(target):
        autoscaled = cluster_spec(doc).get("enableInTreeAutoscaling", False)
        for where, template in pod_templates(doc):
            expected = where == "head" and autoscaled          # the autoscaler sidecar calls the Kubernetes API
            assert template["spec"]["automountServiceAccountToken"] is expected, where


def test_no_secret_is_made_from_a_command_line_literal():
    for path in [*(ROOT / "deploy").rglob("*"), ROOT / "docs" / "cluster.md", ROOT / "docs" / "security.md"]:
        if path.is_file():
            assert "--from-literal" not in path.read_text(errors="replace"), path


# -- who may connect: NetworkPolicy --------------------------------------------------------------------------

CLUSTER_LABEL = "synthstream.io/cluster"
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}
METRICS_PORTS = {8080, 44217, 44227}                  # every pod's, the autoscaler's and the dashboard's
DASHBOARD_PORT = 8265
SERVE_PORT = 8000                                     # a RayService's Serve HTTP proxy
READER_CLIENT = {"synthstream.io/reader-client": "true"}

_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array"}}}
_PEER = {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
    "podSelector": _SELECTOR, "namespaceSelector": _SELECTOR, "ipBlock": {"type": "object"}}}
_PORT = {"type": "object", "additionalProperties": False, "required": ["port"], "properties": {
    "protocol": {"enum": ["TCP", "UDP", "SCTP"]}, "port": {"type": ["integer", "string"]},
    "endPort": {"type": "integer"}}}
_RULE = {"type": "object", "additionalProperties": False, "properties": {
    "from": {"type": "array", "items": _PEER, "minItems": 1}, "ports": {"type": "array", "items": _PORT}}}
NETWORK_POLICY = {   # the fields of networking.k8s.io/v1 NetworkPolicy these manifests may use, strictly
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "networking.k8s.io/v1"}, "kind": {"const": "NetworkPolicy"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "additionalProperties": False, "required": ["podSelector", "policyTypes"],
                 "properties": {"podSelector": _SELECTOR,
                                "policyTypes": {"type": "array", "items": {"enum": ["Ingress", "Egress"]}},
                                "ingress": {"type": "array", "items": _RULE},
                                "egress": {"type": "array"}}}}}


def network_policies(target: str) -> dict[str, dict]:
    """Cluster label value -> the one policy selecting it."""
    import jsonschema

    out: dict[str, dict] = {}
    for doc in rendered(target):
        if doc["kind"] == "NetworkPolicy":
            jsonschema.validate(doc, NETWORK_POLICY)
            labels = doc["spec"]["podSelector"]["matchLabels"]
            assert set(labels) == {CLUSTER_LABEL}, doc["metadata"]["name"]
            assert labels[CLUSTER_LABEL] not in out, f"two policies select {labels}"
            out[labels[CLUSTER_LABEL]] = doc
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_every_ray_cluster_admits_only_its_own_pods_operator_and_monitoring(target):
    """Ray's ports: the cluster's own pods; the dashboard: the operator and monitoring; metrics: monitoring;
    a RayService's Serve port: the operator (proxy health check) and labelled client pods of the namespace."""
    policies = network_policies(target)
    clusters = set()
    for doc in ray_resources(target):
        labels = {template["metadata"]["labels"][CLUSTER_LABEL] for _, template in pod_templates(doc)}
        assert len(labels) == 1, f"{_key(doc)}: every pod template carries one {CLUSTER_LABEL} value: {labels}"
        (label,) = labels
        assert label not in clusters, f"two Ray clusters share {CLUSTER_LABEL}={label}"
        clusters.add(label)
        policy = policies[label]["spec"]
        assert policy["policyTypes"] == ["Ingress"]
        own, *others = policy["ingress"]
        assert own == {"from": [{"podSelector": {"matchLabels": {CLUSTER_LABEL: label}}}]}   # every port: Ray's
        opened: dict[str, set] = {}
        for rule in others:
            (peer,) = rule["from"]
            assert rule.get("ports"), f"{label}: a rule for other pods opens every port: {rule}"
            who = ("operator" if peer == {"namespaceSelector": {}, "podSelector": {"matchLabels": OPERATOR}} else
                   "monitoring" if peer == {"namespaceSelector": {"matchLabels": MONITORING}} else
                   "clients" if peer == {"podSelector": {"matchLabels": READER_CLIENT}} else None)
            assert who and who not in opened, f"{label}: unexpected peer {peer}"
            opened[who] = {p["port"] for p in rule["ports"]}
        serve = doc["kind"] == "RayService"
        expected = {"operator": {DASHBOARD_PORT} | ({SERVE_PORT} if serve else set()),
                    "monitoring": METRICS_PORTS | {DASHBOARD_PORT}} | ({"clients": {SERVE_PORT}} if serve else {})
        assert opened == expected, (label, opened)
        head = cluster_spec(doc)["headGroupSpec"]["template"]["spec"]["containers"][0]
        declared = {p["name"]: p["containerPort"] for p in head["ports"]}
        assert declared["metrics"] in METRICS_PORTS and declared["dashboard"] == DASHBOARD_PORT
        assert declared.get("serve") == (SERVE_PORT if serve else None), declared   # KubeRay's name for it
    assert clusters == set(policies), "a policy selects no Ray cluster"
