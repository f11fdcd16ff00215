"""The declared dependencies are exactly what the code imports.

`pip install .` must give a service that starts: every third-party module that livechannel/
imports is covered by a runtime dependency, and every runtime dependency is imported by
livechannel/ (test-only packages belong in the `test` extra, benchmark-only ones in `bench`).
The tests' own imports are covered by the runtime dependencies plus the `test` extra, the
benchmark's by the runtime dependencies plus the `bench` extra.

The requirements are read from the installed distribution's metadata (what pip wrote), and
import names are mapped to distribution names through the installed packages'
`top_level`/RECORD data (`importlib.metadata.packages_distributions`), so `import yaml` is
known to come from PyYAML without a hand-kept table. tests/install/test_clean_install.py runs
the same check inside a fresh virtual environment, against the wheel's own metadata.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DIST = "livechannel"


def imported_roots(folder: Path, base: Path = ROOT) -> dict[str, str]:
    """Top-level names of absolute imports under `folder` -> one file importing it (for the
    message). Imports inside functions and `try` blocks count: they run too."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], str(path.relative_to(base)))
    return found


def third_party(roots: dict[str, str], local: Iterable[str]) -> dict[str, str]:
    skip = set(sys.stdlib_module_names) | set(local)
    return {name: where for name, where in roots.items() if name not in skip}


def extra_of(req: Requirement) -> str:
    """The extra a requirement of the metadata belongs to ('' = runtime): pip writes
    `name; extra == "test"` (after any other marker, joined with `and`)."""
    marker = str(req.marker) if req.marker else ""
    return marker.split("extra ==", 1)[1].strip().strip("\"'") if "extra ==" in marker else ""


def split_requirements(requires: Iterable[str]) -> tuple[set[str], dict[str, set[str]]]:
    """(runtime distribution names, extra -> distribution names), canonicalized."""
    runtime: set[str] = set()
    extras: dict[str, set[str]] = {}
    for text in requires:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if extra := extra_of(req):
            extras.setdefault(extra, set()).add(name)
        else:
            runtime.add(name)
    return runtime, extras


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed package


def distributions_of(root: str) -> set[str]:
    return {canonicalize_name(d) for d in _packages_distributions().get(root, [])}


def uncovered(imports: dict[str, str], allowed: set[str]) -> list[str]:
    return [
        f"{root} (imported by {where}; installed from {sorted(distributions_of(root)) or '?'})"
        for root, where in sorted(imports.items())
        if not distributions_of(root) & allowed
    ]


def _key(req: Requirement, extra: str) -> tuple[str, str]:
    """Names only: a changed version bound leaves what is installed able to run the code."""
    return canonicalize_name(req.name), extra


def installed_requires() -> list[str]:
    """The installed livechannel's requirements, after checking that the installation is of
    this tree's pyproject.toml (an install made before a dependency changed is stale: its
    metadata, and what pip installed from it, say nothing about the current code)."""
    requires = importlib.metadata.requires(DIST) or []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_key(Requirement(r), "") for r in project["dependencies"]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        declared |= {_key(Requirement(r), extra) for r in reqs}
    installed = set()
    for text in requires:
        req = Requirement(text)
        installed.add(_key(req, extra_of(req)))
    assert installed == declared, (
        f"the installed {DIST} metadata is stale (run `pip install -e '.[test]'`): "
        f"pyproject.toml only: {sorted(declared - installed)}; "
        f"installed only: {sorted(installed - declared)}"
    )
    return requires


def test_runtime_dependencies_are_exactly_the_imports() -> None:
    runtime, _ = split_requirements(installed_requires())
    imports = third_party(imported_roots(ROOT / "livechannel"), {"livechannel"})
    missing = uncovered(imports, runtime)
    assert not missing, f"imported by livechannel/ but not a runtime dependency: {missing}"
    used = set().union(*(distributions_of(root) for root in imports))
    unused = sorted(runtime - used)
    assert not unused, (
        f"runtime dependencies livechannel/ never imports (move them to an extra): {unused}"
    )


def test_test_imports_are_declared() -> None:
    runtime, extras = split_requirements(installed_requires())
    local = {p.stem for p in ROOT.iterdir()} | {"livechannel", "tests", "bench", "samples"}
    imports = third_party(imported_roots(ROOT / "tests"), local)
    missing = uncovered(imports, runtime | extras.get("test", set()))
    assert not missing, (
        f"imported by tests/ but in neither the runtime nor the test extra: {missing}"
    )


def test_bench_imports_are_declared() -> None:
    """bench/ needs the runtime dependencies plus the `bench` extra. Its optional tools may
    not be installed here: then the import name must be the declared distribution's name."""
    runtime, extras = split_requirements(installed_requires())
    allowed = runtime | extras.get("bench", set())
    local = {p.stem for p in (ROOT / "bench").iterdir()} | {
        "livechannel",
        "tests",
        "bench",
        "samples",
    }
    imports = third_party(imported_roots(ROOT / "bench"), local)
    missing = [
        m for m in uncovered(imports, allowed) if canonicalize_name(m.split()[0]) not in allowed
    ]
    assert not missing, (
        f"imported by bench/ but in neither the runtime nor the bench extra: {missing}"
    )


def test_the_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    """The checks above are not vacuous: an import of a real installed package that is not
    declared (numpy, a test-only package) is reported, with its distribution's name."""
    (tmp_path / "mod.py").write_text("import numpy\nimport yaml\nfrom aiohttp import web\n")
    imports = third_party(imported_roots(tmp_path, tmp_path), {"livechannel"})
    runtime, _ = split_requirements(installed_requires())
    missing = uncovered(imports, runtime)
    assert [m.split()[0] for m in missing] == ["numpy", "yaml"]
    assert "pyyaml" in missing[1]
