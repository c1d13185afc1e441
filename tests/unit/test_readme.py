"""The README is a user guide that stays true: its commands parse with the real CLI, its links resolve, the
two contract commands are the ones CI runs, and the generated style reference is current."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import tomllib

from synthstream import stylesdoc
from synthstream.cli import build_parser
from synthstream.style import field_table, parse_style

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
MAX_LINES = 250

SETUP = "bash cluster/setup.sh && "
MAIN_COMMAND = SETUP + ".venv/bin/synthstream train --style tiny --steps 400 --val-every 100 --out runs/demo"
TEST_COMMAND = SETUP + ".venv/bin/ruff check . && .venv/bin/python -m pytest -q"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def blocks(text: str, *langs: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang in langs]


def commands(text: str) -> list[str]:
    """Every `synthstream ...` command in the README's shell blocks (continuation lines joined, comments and
    `&&`-chained set-up dropped), plus inline code spans that are whole commands (they hold a flag)."""
    found = []
    for body in blocks(text, "bash", "sh", ""):
        for line in body.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0].endswith("synthstream"):
                    found.append(shlex.join(["synthstream", *words[1:]]))
    prose = FENCE.sub("", text).replace("\n", " ")
    found += [span for span in re.findall(r"`([^`]+)`", prose) if span.startswith("synthstream ") and " --" in span]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m) for m in re.findall(r"^#+ (.*)$", text, re.M)}


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; move detail to docs/ (at most {MAX_LINES})"


def test_contract_commands_are_verbatim_and_ci_runs_the_test_command():
    lines = [line.strip() for body in blocks(README.read_text(encoding="utf-8"), "bash") for line in body.splitlines()]
    assert MAIN_COMMAND in lines
    assert TEST_COMMAND in lines
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1].strip() == TEST_COMMAND


def test_every_readme_command_parses():
    parser = build_parser()
    found = commands(README.read_text(encoding="utf-8"))
    assert len(found) >= 15, found
    bad = []
    for command in found:
        argv = shlex.split(command)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            bad.append(f"{command}  (exit {e.code})")
    assert not bad, "README commands the CLI refuses:\n" + "\n".join(bad)


def test_readme_styles_are_valid():
    styles = blocks(README.read_text(encoding="utf-8"), "toml")
    assert styles
    for body in styles:
        parse_style(tomllib.loads(body), "README")


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_style_reference_is_current():
    current = (ROOT / "docs" / "styles.md").read_text(encoding="utf-8")
    assert current == stylesdoc.render(), "docs/styles.md is stale: run python -m synthstream.stylesdoc"


def test_every_style_field_has_a_unit_and_a_doc():
    for section, fields in field_table().items():
        for key, (kind, _, _, _, unit, doc) in fields.items():
            assert doc, f"{section}.{key} has no doc"
            assert unit or kind == "bool", f"{section}.{key} has no unit"
