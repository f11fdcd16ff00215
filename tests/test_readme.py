"""The README's commands keep working: its fast unit-test command selects no test that runs a
system program (ffmpeg, GStreamer, a browser, a server), so it passes on a machine with Python
alone; the directories and files it names exist; the LICENSE is the one pyproject names."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Programs from system packages that tests start as argv[0] (scripts/test.sh installs them).
SYSTEM_PROGRAMS = frozenset(
    {
        "ffmpeg", "ffprobe", "ffplay", "gst-launch-1.0", "gst-inspect-1.0", "nginx", "obs",
        "Xvfb", "chromium", "haproxy", "prometheus", "promtool", "systemd-analyze", "ip",
        "initdb", "pg_ctl", "psql", "npm", "node",
    }
)  # fmt: skip


def fast_command() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("fast unit tests alone", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    command = block.replace("\\\n", " ").split("&&", 1)[1]
    return shlex.split(command)


def selected_files(argv: list[str]) -> list[Path]:
    ignored = {ROOT / a.split("=", 1)[1] for a in argv if a.startswith("--ignore=")}
    paths = [ROOT / a for a in argv if a.startswith("tests")]
    files: list[Path] = []
    for path in paths:
        assert path.exists(), f"README names {path.relative_to(ROOT)}, which does not exist"
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        files += [f for f in found if f not in ignored and not any(i in f.parents for i in ignored)]
    return files


def program_calls(path: Path) -> set[str]:
    """System programs `path` starts: a list or tuple whose first item names one."""
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in SYSTEM_PROGRAMS:
                found.add(str(first.value))
    return found


def imported_test_modules(path: Path) -> set[Path]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("tests."):
                candidate = ROOT / (name.replace(".", "/") + ".py")
                if candidate.exists():
                    out.add(candidate)
    return out


def test_the_fast_command_needs_no_system_package() -> None:
    argv = fast_command()
    assert argv[:3] == ["python3", "-m", "pytest"], argv
    markers = argv[argv.index("-m", 3) + 1]
    assert all(f"not {m}" in markers for m in ("browser", "multinode", "slow"))
    offenders = []
    for test_file in selected_files(argv):
        seen, todo = set(), [test_file]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            todo += imported_test_modules(module)
            if calls := program_calls(module):
                via = "" if module == test_file else f" via {module.relative_to(ROOT)}"
                offenders.append(f"{test_file.relative_to(ROOT)}{via}: {sorted(calls)}")
    assert not offenders, "the README's fast command would run system programs:\n" + "\n".join(
        offenders
    )


def test_the_check_finds_a_program_call(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('import subprocess\nsubprocess.run(["ffprobe", "-v", "error", "x.ts"])\n')
    assert program_calls(probe) == {"ffprobe"}
    assert program_calls(ROOT / "tests" / "support" / "publishers.py") >= {"ffmpeg"}
    assert re.search(r"pip install -e '\.\[test\]' &&", (ROOT / "README.md").read_text())


def test_the_license_file_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a pointer to it
