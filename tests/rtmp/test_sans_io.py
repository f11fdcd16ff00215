"""The RTMP core stays sans-IO: no sockets, no event loop, no clock (docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import livechannel.rtmp

FORBIDDEN = {"asyncio", "aiohttp", "socket", "time", "selectors", "threading", "uvloop", "datetime"}
CORE_DIR = Path(livechannel.rtmp.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_modules_import_no_io_or_clock() -> None:
    modules = sorted(CORE_DIR.glob("*.py"))
    assert len(modules) >= 8
    offenders = {p.name: _imported_roots(p) & FORBIDDEN for p in modules}
    assert {name: bad for name, bad in offenders.items() if bad} == {}
