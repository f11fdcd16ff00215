"""The code passes its linters: ruff on everything, mypy (strict where pyproject says) on the
package. Run here so that a fresh clone's CI catches what a local editor would."""

from __future__ import annotations

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
