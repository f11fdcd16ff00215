"""The page-cache regimes a benchmark trial runs in (root only).

- "cold": `sync`, then `echo 3 > /proc/sys/vm/drop_caches` before the trial: a fresh box, with
  plenty of free memory. A buffered writer's new page-cache pages then come from free memory
  (on a VM that reports free pages to its host, each first touch faults in the host).
- "full": the page cache filled to the machine's memory before the trial, as after a day of
  ingest: a buffered writer's every new page is a reclaim of an old one, billed to the
  writer. Filled by reading a sparse file (its holes become clean, zero-filled cache pages:
  no disk traffic, no disk space), read again before each trial to top it up.
- "asis": nothing done (what the box happens to be in).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REGIMES = ("asis", "cold", "full")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
FILL_FILE_NAME = "lcbench-page-cache-fill"  # sparse, removed by `release`
FILL_READ_BYTES = 16 * 1024 * 1024  # one read while filling
# "Full": free memory below this (the kernel keeps its watermarks; past them reads reclaim).
FULL_FREE_BYTES = 512 * 1024 * 1024
FILL_TIMEOUT_S = 180.0  # ~0.5 GB/s on a VM that faults free pages in from its host


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        out[name] = int(rest.split()[0]) * 1024
    return out


def drop() -> None:
    subprocess.run(["sync"], check=False)
    DROP_CACHES.write_text("3\n")


def fill(directory: Path) -> dict[str, float]:
    """Read the sparse fill file until free memory is under FULL_FREE_BYTES (bounded in
    time). Returns what it did: seconds, GiB read, GiB cached and free after."""
    info = meminfo()
    path = directory / FILL_FILE_NAME
    if not path.exists() or path.stat().st_size < info["MemTotal"]:
        with path.open("wb") as f:
            f.truncate(info["MemTotal"])
    start = time.monotonic()
    read = 0
    if info["MemFree"] < FULL_FREE_BYTES:
        return {"s": 0.0, "read_gib": 0.0, "cached_gib": round(info["Cached"] / 2**30, 1),
                "free_gib": round(info["MemFree"] / 2**30, 2)}  # fmt: skip
    buf = bytearray(FILL_READ_BYTES)
    fd = os.open(path, os.O_RDONLY)
    try:
        while time.monotonic() - start < FILL_TIMEOUT_S:
            n = os.preadv(fd, [buf], read)
            if n <= 0:
                break
            read += n
            if meminfo()["MemFree"] < FULL_FREE_BYTES:
                break
    finally:
        os.close(fd)
    after = meminfo()
    return {
        "s": round(time.monotonic() - start, 1),
        "read_gib": round(read / 2**30, 1),
        "cached_gib": round(after["Cached"] / 2**30, 1),
        "free_gib": round(after["MemFree"] / 2**30, 2),
    }


def prepare(regime: str, directory: Path) -> dict[str, float]:
    """Put the box into `regime` before a trial; returns the figures to report."""
    if regime == "cold":
        drop()
        info = meminfo()
        return {
            "cached_gib": round(info["Cached"] / 2**30, 1),
            "free_gib": round(info["MemFree"] / 2**30, 1),
        }
    if regime == "full":
        return fill(directory)
    if regime == "asis":
        return {}
    raise ValueError(f"unknown page-cache regime {regime!r} (one of {', '.join(REGIMES)})")


def release(directory: Path) -> None:
    """Remove the fill file (its cached pages go with it)."""
    (directory / FILL_FILE_NAME).unlink(missing_ok=True)


def available() -> bool:
    return os.access(DROP_CACHES, os.W_OK)
