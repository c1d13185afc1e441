"""Layers point one way: the import contracts in pyproject.toml ([tool.importlinter]) hold, and every module of
synthstream is placed in a layer (a new module cannot slip past the contract unplaced)."""

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_every_synthstream_module_is_in_a_layer():
    placed = {m.strip() for layer in contracts()["layers"]["layers"] for m in layer.replace("\\", " ").split(":")}
    children = {p.stem if p.is_file() else p.name for p in (ROOT / "synthstream").iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert {f"synthstream.{c}" for c in children} <= placed, "place new modules in [tool.importlinter]'s layers"
    assert placed <= {f"synthstream.{c}" for c in children} | {"trainer"}, "a layer names a module that is gone"


def test_import_contracts_hold():
    # lint-imports in a child process, from the repository root: it reads pyproject.toml there
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
