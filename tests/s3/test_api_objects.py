"""GetObject / HeadObject / ListObjects through our HTTP API on S3-backed buckets: the API's
own object tests (oss2 as the client) rerun with every bucket on moto, plus what only a
remote store shows: the body is streamed (not fetched whole first) and Range reaches S3."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from livechannel.api.app import create_app
from livechannel.api.context import ApiContext
from livechannel.auth.urls import ServiceUrls
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import s3_settings
from livechannel.store.base import Acl
from livechannel.store.sqlite import SqliteStore
from tests.api.conftest import (  # noqa: F401  (http: a fixture the imported tests use)
    AK,
    DOMAIN,
    PRIVATE,
    PUBLIC_READ,
    PUBLIC_RW,
    SK,
    Clock,
    Service,
    http,
    sync,
)
from tests.api.test_objects import (  # noqa: F401  (collected here, on S3)
    test_conditional_requests,
    test_delete_object_and_batch_delete,
    test_get_object_streams_whole_object,
    test_get_object_to_file_with_crc_check,
    test_head_and_missing_objects,
    test_hls_sign_playlist_in_private_bucket,
    test_list_objects_paging_delimiter_and_iterator,
    test_list_objects_with_keys_that_need_url_encoding,
    test_playlist_content_type_and_short_cache,
    test_public_read_bucket_plays_anonymously,
    test_range_past_the_end_is_416_and_bad_syntax_is_ignored,
    test_ranges,
    test_signed_url_get_of_segment_and_playlist,
)
from tests.support.moto import MotoServer
from tests.support.tcp_proxy import TcpProxy

BIG_BYTES = 48 * 1024 * 1024  # far more than socket buffers and one storage chunk


async def start_service(tmp_path: Path, storages: dict[str, S3Storage]) -> Service:
    clock = Clock()
    store = await SqliteStore.open(str(tmp_path / "meta.db"))
    for name, acl in ((PRIVATE, Acl.PRIVATE), (PUBLIC_READ, Acl.PUBLIC_READ),
                      (PUBLIC_RW, Acl.PUBLIC_READ_WRITE)):  # fmt: skip
        await store.ensure_bucket(name, acl, clock())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    ctx = ApiContext(
        store=store,
        storages=storages,
        credentials={AK: SK},
        urls=ServiceUrls(DOMAIN, 1935, port),
        now_ms=clock,
    )
    runner = web.AppRunner(create_app(ctx), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    svc = Service(port, store, storages, ctx, clock)  # type: ignore[arg-type]
    svc.runner = runner  # type: ignore[attr-defined]
    return svc


async def stop_service(svc: Service) -> None:
    svc.session.close()
    await svc.runner.cleanup()  # type: ignore[attr-defined]
    for storage in svc.storages.values():
        await storage.close()
    await svc.store.close()


def s3(moto: MotoServer, endpoint: str | None = None) -> S3Storage:
    table = moto.storage_table(moto.new_bucket())
    if endpoint:
        table["endpoint"] = endpoint
    return S3Storage(s3_settings("test", table, {}, None))


@pytest.fixture
async def service(tmp_path: Path, moto: MotoServer) -> AsyncIterator[Service]:
    svc = await start_service(
        tmp_path, {name: s3(moto) for name in (PRIVATE, PUBLIC_READ, PUBLIC_RW)}
    )
    try:
        yield svc
    finally:
        await stop_service(svc)


async def test_get_streams_and_passes_range_through(tmp_path: Path, moto: MotoServer) -> None:
    proxy = await asyncio.to_thread(lambda: TcpProxy(moto.port).start())
    try:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        storage = s3(moto, endpoint)
        svc = await start_service(
            tmp_path, {PRIVATE: storage, PUBLIC_READ: s3(moto), PUBLIC_RW: s3(moto)}
        )
        try:
            data = bytes(range(256)) * (BIG_BYTES // 256)
            await storage.put("cam/big.ts", data, "")
            bucket = svc.bucket()

            # Streamed: when the first bytes reach the player, S3 has sent only part of it.
            result = await sync(bucket.get_object, "cam/big.ts")
            first = await sync(result.read, 1024)
            await asyncio.sleep(0.5)  # let whatever would be buffered arrive
            assert first == data[:1024]
            # Loopback socket buffers on the five hops (proxy in/out, obstore, our server,
            # the client) hold up to ~30 MB between them; a whole-object download would
            # have pulled all of it before the first byte reached the client.
            assert proxy.upstream_bytes < BIG_BYTES * 3 // 4, proxy.upstream_bytes
            assert await sync(result.read) == data[1024:]

            # Range: asked of S3 itself, not cut from a whole download.
            before = proxy.upstream_bytes
            part = await sync(bucket.get_object, "cam/big.ts", byte_range=(1000, 1999))
            assert await sync(part.read) == data[1000:2000]
            assert part.headers["Content-Range"] == f"bytes 1000-1999/{BIG_BYTES}"
            assert proxy.saw(b"range: bytes=1000-1999")
            assert proxy.upstream_bytes - before < 64 * 1024
        finally:
            await stop_service(svc)
    finally:
        await asyncio.to_thread(proxy.stop)
