"""media/ is a sans-IO core: no event loop, sockets or clocks (docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import livechannel.media

FORBIDDEN = {"asyncio", "aiohttp", "socket", "time", "datetime", "threading", "selectors", "os"}


def test_media_imports_no_io() -> None:
    root = Path(livechannel.media.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
