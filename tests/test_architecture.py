"""The shape of the package, checked from its source (docs/design.md):

* the sans-IO cores import no I/O, event loop or clock, one banned list for all of them;
* no module imports from a layer above its own; only server.py and cli.py see everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "livechannel"

# --- sans-IO ------------------------------------------------------------------------------

# Bytes in, events out, `now` an argument: no sockets, event loops, threads, processes,
# files, environment, clocks or logging (a core reports through what it returns).
SANS_IO = sorted(
    [
        *(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "rtmp").glob("*.py")),
        *(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "media").glob("*.py")),
        "hls/segmenter.py",
        "hls/segments.py",
        "hls/playlist.py",
        "hls/low_latency.py",
        "auth/signing.py",
        "api/xml.py",
        "api/addressing.py",
        "api/auth.py",
        "api/ranges.py",
        "api/dates.py",
        "api/channel_config.py",
        "api/hls_sign.py",
    ]
)
BANNED_MODULES = frozenset(
    {
        "asyncio", "aiohttp", "uvloop", "socket", "ssl", "select", "selectors", "threading",
        "multiprocessing", "concurrent", "subprocess", "signal", "os", "pathlib", "shutil",
        "tempfile", "io", "sqlite3", "http", "urllib.request", "time", "logging",
    }
)  # fmt: skip
# Clock reads through modules a core may use for arithmetic on times it was given.
BANNED_CALLS = frozenset({("datetime", "now"), ("datetime", "utcnow"), ("date", "today")})


def imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def banned(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BANNED_MODULES)


def test_the_sans_io_list_names_real_modules() -> None:
    assert len(SANS_IO) >= 30
    assert all((PACKAGE / relative).is_file() for relative in SANS_IO)


@pytest.mark.parametrize("relative", SANS_IO)
def test_sans_io_modules_import_no_io_or_clock(relative: str) -> None:
    tree = ast.parse((PACKAGE / relative).read_text(), relative)
    assert sorted(m for m in imported_modules(tree) if banned(m)) == []
    calls = {
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    assert sorted(calls & BANNED_CALLS) == []


def test_the_guard_sees_what_it_bans() -> None:
    tree = ast.parse("import os.path\nfrom asyncio import sleep\nfrom time import monotonic\n")
    assert sorted(m for m in imported_modules(tree) if banned(m)) == [
        "asyncio",
        "asyncio.sleep",
        "os.path",
        "time",
        "time.monotonic",
    ]
    assert not banned("osx") and not banned("urllib.parse") and banned("http.client")


# --- layers -------------------------------------------------------------------------------

# Lowest first. A module may import from its own layer or below, never above. Two pure
# modules that the config package validates with sit apart from the rest of their package
# (which needs the store, storage and the HLS pipeline): `fleet.node` (a node's identity) and
# `ops.webhook_config` (a bucket's [buckets.webhooks] table).
LAYERS: list[set[str]] = [
    {"errors", "__init__"},
    {"rtmp", "media", "auth"},
    {"store", "fleet.node", "ops.webhook_config"},
    {"config"},
    {"storage"},
    {"ops"},
    {"hls"},
    {"fleet"},
    {"api"},
    {"ingest"},
    {"console"},
    {"admin"},  # the operator's commands: a client of the HTTP API
]
# The places that wire everything: server.py, and cli.py with its entry point and start-up
# banner (firstrun.py reads what serve() reports when it is up).
TOP = {"server", "cli", "__main__", "firstrun"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def layer_of(module: str) -> int | None:
    """The layer of `module` (dotted, below livechannel): its longest listed prefix."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        for number, layer in enumerate(LAYERS):
            if prefix in layer:
                return number
    return None


def livechannel_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module below livechannel) of every import of our own code, relative ones
    resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join([*base, node.module or ""]).strip(".")]
                names = [f"livechannel.{n}" if n else "livechannel" for n in names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "livechannel":
                found.append((node.lineno, "__init__"))
            elif name.startswith("livechannel."):
                found.append((node.lineno, name.removeprefix("livechannel.")))
    return found


def test_every_module_has_a_layer() -> None:
    modules = [module_name(p) for p in sorted(PACKAGE.rglob("*.py"))]
    unplaced = [m for m in modules if m.split(".")[0] not in TOP and layer_of(m) is None]
    assert unplaced == [], "add these packages to LAYERS (and docs/design.md)"


def test_no_module_imports_upward() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if module.split(".")[0] in TOP:
            continue
        own = layer_of(module)
        assert own is not None, module
        for line, target in livechannel_imports(path):
            theirs = layer_of(target)
            if target.split(".")[0] in TOP or (theirs is not None and theirs > own):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert upward == []
