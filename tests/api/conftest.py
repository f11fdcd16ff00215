"""The API tests' fixtures: the real API app on loopback (tests/support/api_service.py).

`service` runs on the local filesystem; a test marked with `ON_LOCAL_AND_S3` runs on both
the local filesystem and S3 (moto), once each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.api_service import (
    BUCKETS,
    Service,
    local_storages,
    s3_storage,
    start_service,
    stop_service,
)
from tests.support.moto import MotoServer


@pytest.fixture
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    backend = getattr(request, "param", "local")
    if backend == "s3":
        moto: MotoServer = request.getfixturevalue("moto")
        storages = {name: s3_storage(moto) for name, _ in BUCKETS}
    else:
        storages = local_storages(tmp_path)
    svc = await start_service(tmp_path, storages)  # type: ignore[arg-type]
    try:
        yield svc
    finally:
        await stop_service(svc)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # auto_decompress off and no default headers beyond aiohttp's: tests sign what they send.
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
