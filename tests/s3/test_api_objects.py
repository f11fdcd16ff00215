"""Our HTTP API on an S3-backed bucket, where only a remote store shows it: the body is
streamed (not fetched whole first) and a Range reaches S3. The API's object tests run on S3
too, from tests/api/test_objects.py (`ON_LOCAL_AND_S3`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.api_service import (
    PRIVATE,
    PUBLIC_READ,
    PUBLIC_RW,
    s3_storage,
    start_service,
    stop_service,
    sync,
)
from tests.support.moto import MotoServer
from tests.support.tcp_proxy import TcpProxy

BIG_BYTES = 48 * 1024 * 1024  # far more than socket buffers and one storage chunk


async def test_get_streams_and_passes_range_through(tmp_path: Path, moto: MotoServer) -> None:
    proxy = await asyncio.to_thread(lambda: TcpProxy(moto.port).start())
    try:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        storage = s3_storage(moto, endpoint)
        svc = await start_service(
            tmp_path, {PRIVATE: storage, PUBLIC_READ: s3_storage(moto), PUBLIC_RW: s3_storage(moto)}
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
