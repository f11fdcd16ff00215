"""The code passes its linters: ruff on everything, mypy (strict where pyproject says) on the
package. Run here so that a fresh clone's CI catches what a local editor would."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_TIMEOUT_S = 300  # mypy from a cold cache takes ~30 s on two cores


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True,
        timeout=LINT_TIMEOUT_S,
    )  # fmt: skip


def test_ruff() -> None:
    r = run("ruff", "check", "livechannel", "tests", "bench", "scripts", "samples")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    """The `# fmt: skip` markers guard hand-aligned byte tables against this formatter."""
    r = run("ruff", "format", "--check", "livechannel", "tests", "bench", "scripts", "samples")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy() -> None:
    r = run("mypy", "livechannel")
    assert r.returncode == 0, r.stdout + r.stderr


def test_tests_share_helpers_only_through_support() -> None:
    """No test module imports another test module or a conftest (helpers live in
    tests/support/, fixtures in a conftest pytest finds), and none imports a test function,
    which pytest would collect a second time under the importer's name."""
    offences = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            last = node.module.rsplit(".", 1)[-1]
            where = f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}"
            if node.module.startswith("tests.") and (
                last.startswith("test_") or last == "conftest"
            ):
                offences.append(where)
            offences += [
                f"{where} import {a.name}" for a in node.names if a.name.startswith("test_")
            ]
    assert offences == [], "\n".join(offences)


# What a reader of the repository cannot follow: the founders' seed documents and spec files
# (not in the repository), and issue numbers. Cite the public document by name and section
# ("OSS API reference, PutLiveChannel"; "RFC 8216 4.3.3.1") or our own docs/ instead.
DEAD_REFERENCE = re.compile(
    "|".join(
        [
            r"(?<![-\w])[Ss]eed \d+(\.\d+)?\b",
            r"\bseed chapters?\b",
            r"\bthe seed" + "'s",  # (split: this line must not match itself)
            r"\b[Ii]ssues? #?\d+\b",
            r"\.\./shared",
            r"\bspec/[a-z-]+\.md",
            r"\bDESIGN" + r"\.md",
        ]
    )
)
CITING_TREES = ("livechannel", "tests", "bench", "scripts", "samples", "docs", "deploy")


def test_references_lead_somewhere() -> None:
    files = [ROOT / "README.md"]
    for tree in CITING_TREES:
        files += [p for p in (ROOT / tree).rglob("*") if p.suffix in (".py", ".md", ".toml")]
    dead = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if DEAD_REFERENCE.search(line)
    ]
    assert dead == [], "\n".join(dead)
