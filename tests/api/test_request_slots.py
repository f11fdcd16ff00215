"""The request-slot middleware (api/app.py concurrency_limit): the per-address share, and the
one caller without an address, a sibling worker handing on a client (api/owners.py)."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from livechannel.api.app import concurrency_limit
from livechannel.errors import ServiceUnavailable


def request_from(peer: object) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        peer if name == "peername" else default
    )
    return make_mocked_request("GET", "/live/cam/playlist.m3u8", transport=transport)


async def test_per_address_share_and_the_sibling_socket() -> None:
    limit = concurrency_limit(max_requests=4, max_per_ip=1)
    release = asyncio.Event()

    async def handler(_request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    held = [asyncio.ensure_future(limit(request_from(("10.0.0.1", 5000)), handler))]
    await asyncio.sleep(0)
    with pytest.raises(ServiceUnavailable, match="from your address"):
        await limit(request_from(("10.0.0.1", 5001)), handler)
    # Over a Unix socket there is no address: a sibling's requests share no per-address
    # budget (its own worker counted each client), only the total.
    held += [asyncio.ensure_future(limit(request_from(""), handler)) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in held)
    with pytest.raises(ServiceUnavailable, match="too many requests in flight; retry"):
        await limit(request_from(""), handler)
    release.set()
    assert all(r.status == 200 for r in await asyncio.gather(*held))
