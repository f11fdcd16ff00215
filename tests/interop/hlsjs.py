"""hls.js from the npm registry, kept in a cache directory outside the repository.

python3 -m tests.interop.hlsjs    # install it if missing (scripts/test.sh does this)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

HLSJS_VERSION = "1.7.4"  # pinned: the player the tests prove we work with
NPM_TIMEOUT_S = 300.0  # one small package; a slow registry still answers well within this


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livechannel-interop"


def installed_version(prefix: Path) -> str | None:
    try:
        meta = json.loads((prefix / "node_modules" / "hls.js" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(meta.get("version"))


def ensure_hlsjs() -> Path:
    """Path of hls.min.js, installing the pinned version with npm when it is missing."""
    prefix = cache_dir()
    if installed_version(prefix) != HLSJS_VERSION:
        prefix.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
               "--no-save", f"hls.js@{HLSJS_VERSION}"]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        if r.returncode != 0 or installed_version(prefix) != HLSJS_VERSION:
            raise RuntimeError(f"npm install hls.js@{HLSJS_VERSION} failed:\n{r.stderr[-2000:]}")
    return prefix / "node_modules" / "hls.js" / "dist" / "hls.min.js"


if __name__ == "__main__":
    print(ensure_hlsjs())
