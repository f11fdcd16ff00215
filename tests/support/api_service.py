"""The real API app on 127.0.0.1 (port 0) over SqliteStore, with its buckets on the local
filesystem or on S3 (moto), and `oss2` as the client.

`oss2` is blocking (requests); tests call it through `asyncio.to_thread` (`sync`) so the
service keeps running on the test's event loop, where the store can also be driven directly.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import oss2
import pytest
from aiohttp import web
from oss2.models import LiveChannelInfo, LiveChannelInfoTarget

from livechannel.api.app import create_app
from livechannel.api.context import ApiContext
from livechannel.auth.urls import ServiceUrls
from livechannel.storage.base import ObjectStorage
from livechannel.storage.local import LocalStorage
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import s3_settings
from livechannel.store.base import Acl
from livechannel.store.sqlite import SqliteStore
from tests.support.moto import MotoServer

T = TypeVar("T")

AK = "LTAIapitestkey01"
SK = "api-test-secret-0123456789"
PRIVATE, PUBLIC_READ, PUBLIC_RW = "live", "pub", "open"
DOMAIN = "127.0.0.1"


def sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Run a blocking oss2 call off the loop that serves it."""
    return asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))


@dataclass
class Clock:
    offset_ms: int = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


class ClosingSession(oss2.Session):
    """oss2 streams every response (`stream=True`) and leaves HEAD answers and unread bodies
    holding their sockets until garbage collection; we close them all at teardown instead, so
    no socket is ever left to the collector (a ResourceWarning, an error under pytest here)."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[Any] = []

    def do_request(self, req: Any, timeout: Any) -> Any:
        response = super().do_request(req, timeout)
        self.responses.append(response)
        return response

    def close(self) -> None:
        for response in self.responses:
            response.response.close()
        self.session.close()


@dataclass
class Service:
    port: int
    store: SqliteStore
    storages: dict[str, ObjectStorage]
    ctx: ApiContext
    clock: Clock
    runner: web.AppRunner
    disabled: list[tuple[str, str]] = field(default_factory=list)
    session: ClosingSession = field(default_factory=ClosingSession)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bucket(self, name: str = PRIVATE, *, anonymous: bool = False) -> oss2.Bucket:
        auth = oss2.AnonymousAuth() if anonymous else oss2.Auth(AK, SK)
        return oss2.Bucket(auth, self.endpoint, name, session=self.session)

    def service(self, *, anonymous: bool = False) -> oss2.Service:
        auth = oss2.AnonymousAuth() if anonymous else oss2.Auth(AK, SK)
        return oss2.Service(auth, self.endpoint, session=self.session)


# A test that must behave the same whichever store holds the buckets: run once on the local
# filesystem and once on S3 (moto), through the API tests' `service` fixture.
ON_LOCAL_AND_S3 = pytest.mark.parametrize("service", ["local", "s3"], indirect=True)

BUCKETS = ((PRIVATE, Acl.PRIVATE), (PUBLIC_READ, Acl.PUBLIC_READ),
           (PUBLIC_RW, Acl.PUBLIC_READ_WRITE))  # fmt: skip


def local_storages(root: Path) -> dict[str, ObjectStorage]:
    return {name: LocalStorage(str(root / name), fsync=False) for name, _ in BUCKETS}


def s3_storage(moto: MotoServer, endpoint: str | None = None) -> S3Storage:
    """A fresh S3 bucket on moto, optionally reached through another endpoint (a proxy)."""
    table = moto.storage_table(moto.new_bucket())
    if endpoint:
        table["endpoint"] = endpoint
    return S3Storage(s3_settings("test", table, {}, None))


async def start_service(tmp_path: Path, storages: dict[str, ObjectStorage]) -> Service:
    """The API app with the three buckets (private, public-read, public-read-write) on
    `storages`; stop it with `stop_service`."""
    clock = Clock()
    store = await SqliteStore.open(str(tmp_path / "meta.db"))
    for name, acl in BUCKETS:
        await store.ensure_bucket(name, acl, clock())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    disabled: list[tuple[str, str]] = []
    ctx = ApiContext(
        store=store,
        storages=storages,
        credentials={AK: SK},
        urls=ServiceUrls(DOMAIN, 1935, port),
        now_ms=clock,
        on_channel_disabled=lambda b, c: disabled.append((b, c)),
    )
    runner = web.AppRunner(create_app(ctx), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return Service(port, store, storages, ctx, clock, runner, disabled)


async def stop_service(svc: Service) -> None:
    svc.session.close()
    await svc.runner.cleanup()
    for storage in svc.storages.values():
        await storage.close()
    await svc.store.close()


def info(**target: object) -> LiveChannelInfo:
    """A LiveChannelInfo for oss2: `target` fields, plus `description` and `status`."""
    description = str(target.pop("description", ""))
    status = str(target.pop("status", "enabled"))
    return LiveChannelInfo(
        status=status, description=description, target=LiveChannelInfoTarget(**target)
    )
