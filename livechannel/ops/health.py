"""Probes for process managers and load balancers: `GET /-/healthz` and `GET /-/readyz`.

- `/-/healthz`: the process serves HTTP (its event loop turns). 200, always; nothing else is
  touched, so a liveness probe never restarts a service because its storage is down.
- `/-/readyz`: the metadata store and every bucket's storage answer. 200 when they all do,
  else 503; the JSON body names each check and, for the failed ones, why.

Both are unauthenticated (probes carry no keys) and cheap: a readiness check is one store
query and one HEAD per bucket, run concurrently, each bounded by READY_CHECK_TIMEOUT_S (a hung
S3 endpoint makes the probe fail, not hang), and its result is shared by every request within
READY_CACHE_S, so a flood of probes costs the backends at most one round per interval. The
bodies carry no names beyond the configured buckets', no addresses and no figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from livechannel.storage.base import ObjectStorage
from livechannel.store.base import MetadataStore

HEALTHZ_PATH = "/-/healthz"
READYZ_PATH = "/-/readyz"
# A probe's own timeout is typically 1-5 s (Kubernetes: 1 s default, ours in deploy/ 5 s):
# answer within it even when a backend hangs.
READY_CHECK_TIMEOUT_S = 2.0
# Probes come every few seconds per prober; one round of backend checks per second at most.
READY_CACHE_S = 1.0
# The key a storage check HEADs: never written, so the answer is "not found" — an answer.
PROBE_KEY = ".livechannel-readyz-probe"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Readiness:
    ok: bool
    checks: dict[str, str]  # "store", "bucket:<name>" -> "ok" or what went wrong

    def body(self) -> dict[str, object]:
        down = sorted(name for name, state in self.checks.items() if state != "ok")
        return {"status": "ok" if self.ok else "unavailable", "down": down, "checks": self.checks}


async def _check(what: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(what, READY_CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {READY_CHECK_TIMEOUT_S:g} s"
    except Exception as e:  # any failure of a backend is "not ready", named
        return f"{type(e).__name__}: {e}"[:200]
    return "ok"


async def check_readiness(store: MetadataStore, storages: Mapping[str, ObjectStorage]) -> Readiness:
    names = ["store", *(f"bucket:{name}" for name in storages)]
    results = await asyncio.gather(
        _check(store.list_buckets()),
        *(_check(storage.head(PROBE_KEY)) for storage in storages.values()),
    )
    checks = dict(zip(names, results, strict=True))
    return Readiness(all(r == "ok" for r in results), checks)


class ReadyProbe:
    """Single-flight, briefly cached readiness: concurrent probes share one round."""

    def __init__(
        self,
        store: MetadataStore,
        storages: Mapping[str, ObjectStorage],
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._storages, self._clock_s = store, storages, clock_s
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Task[Readiness] | None = None

    async def readiness(self) -> Readiness:
        if self._last is not None and self._clock_s() - self._last[0] < READY_CACHE_S:
            return self._last[1]
        if self._running is None:
            self._running = asyncio.create_task(check_readiness(self._store, self._storages))
        task = self._running
        try:
            result = await asyncio.shield(task)
        finally:
            if task.done() and self._running is task:
                self._running = None
        self._last = (self._clock_s(), result)
        return result


NO_STORE = {"Cache-Control": "no-store"}


async def healthz(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"}, headers=NO_STORE)


def readyz_handler(probe: ReadyProbe) -> Handler:
    async def readyz(_request: web.Request) -> web.StreamResponse:
        result = await probe.readiness()
        return web.json_response(result.body(), status=200 if result.ok else 503, headers=NO_STORE)

    return readyz
