"""api/owners.py without a whole service: a request handed to a sibling worker arrives as it
was sent (path and query escapes, headers) and its answer comes back as it was given; a
sibling that is gone leaves the answer to storage; who owns a push is read from its record."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from livechannel.api.owners import FORWARDED_HEADER, Owner, PushOwners
from livechannel.fleet.node import WorkerName
from livechannel.store.base import Acl, ChannelConfig
from livechannel.store.memory import MemoryStore

B = "live"


async def _echo(request: web.Request) -> web.StreamResponse:
    """The sibling: says what reached it."""
    got = request.headers
    lines = [request.raw_path, got.get(FORWARDED_HEADER, "-"), got.get("Connection", "-"),
             got.get("X-Oss-Date", "-")]  # fmt: skip
    return web.Response(text="\n".join(lines), headers={"X-Oss-Request-Id": "sibling"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def http_port(handler: Handler) -> AsyncIterator[int]:
    """`handler` answering every GET on a loopback port (worker 0, as a player reaches it)."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def sibling_socket(directory: Path, handler: Handler) -> AsyncIterator[None]:
    """`handler` answering every GET on worker 1's socket in `directory`."""
    sibling = PushOwners(WorkerName("node", 1, "h", 2), 2, directory, MemoryStore(), [B])
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None
    listener = await sibling.listen(runner.server, 16)
    assert listener is not None
    try:
        yield
    finally:
        listener.close()
        await runner.cleanup()


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[tuple[str, PushOwners]]:
    """Worker 0's HTTP port (every request handed to worker 1) and worker 1's socket."""
    directory = tmp_path / "run"
    owners = PushOwners(WorkerName("node", 0, "h", 1), 2, directory, MemoryStore(), [B])

    async def hand_on(request: web.Request) -> web.StreamResponse:
        answer = await owners.forward(request, 1)
        return answer if answer is not None else web.Response(status=599)

    try:
        async with sibling_socket(directory, _echo), http_port(hand_on) as port:
            yield f"http://127.0.0.1:{port}", owners
    finally:
        await owners.close()


async def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    def fetch() -> tuple[int, dict[str, str], str]:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()

    return await asyncio.to_thread(fetch)


async def test_a_handed_on_request_arrives_as_sent(front: tuple[str, PushOwners]) -> None:
    base, _ = front
    path = "/live/cam/playlist.m3u8?Signature=a%2Bb%2Fc%3D&_HLS_msn=3&x=%20"
    status, headers, text = await _get(base + path, {"x-oss-date": "then", "Connection": "close"})
    assert status == 200
    raw, forwarded, connection, date = text.split("\n")
    assert raw == path  # escapes untouched: the sibling checks the signature on them
    assert forwarded == "0" and date == "then"
    assert connection != "close"  # hop-by-hop headers are this hop's own
    assert headers["X-Oss-Request-Id"] == "sibling"


async def test_a_sibling_that_is_gone_leaves_it_to_storage(tmp_path: Path) -> None:
    owners = PushOwners(WorkerName("node", 0, "h", 1), 2, tmp_path, MemoryStore(), [B])
    seen: list[web.StreamResponse | None] = []

    async def hand_on(request: web.Request) -> web.StreamResponse:
        seen.append(await owners.forward(request, 1))
        return web.Response(status=204)

    try:
        async with http_port(hand_on) as port:
            status, _, _ = await _get(f"http://127.0.0.1:{port}/live/cam/x", {})
        assert status == 204 and seen == [None]
    finally:
        await owners.close()


async def test_who_owns_a_push(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.ensure_bucket(B, Acl.PRIVATE, 0)
    for name in ("sib", "node", "elsewhere", "mine", "nothing-live"):
        await store.put_channel(B, name, ChannelConfig(), 0)
    await store.start_push(B, "sib", "a:1", "n1/1@h:2", 0)
    await store.start_push(B, "node", "a:1", "n2/0@h2:3", 0, "http://n2.example:8080")
    await store.start_push(B, "elsewhere", "a:1", "n3/0@h3:4", 0)  # advertised nothing
    await store.start_push(B, "mine", "a:1", "n1/0@h:1", 0)
    clock = [0.0]
    owners = PushOwners(WorkerName("n1", 0, "h", 1), 2, tmp_path, store, [B],
                        "http://n1.example:8080", clock=lambda: clock[0])  # fmt: skip
    assert await owners.owner(B, "sib") == Owner(worker=1)
    assert await owners.owner(B, "node") == Owner(url="http://n2.example:8080")
    assert await owners.owner(B, "elsewhere") is None
    assert await owners.owner(B, "mine") is None
    assert await owners.owner(B, "nothing-live") is None
    await store.start_push(B, "nothing-live", "a:1", "n1/1@h:2", 0)
    assert await owners.owner(B, "nothing-live") is None  # remembered for OWNER_CACHE_S
    clock[0] += 1.5
    assert await owners.owner(B, "nothing-live") == Owner(worker=1)


async def test_a_player_that_leaves_before_the_answer_is_no_error(tmp_path: Path) -> None:
    """hls.js drops blocking reloads it no longer needs: the sibling's late answer meets a
    closed connection, which is not a server error."""
    directory = tmp_path / "run"
    owners = PushOwners(WorkerName("node", 0, "h", 1), 2, directory, MemoryStore(), [B])
    answer_now = asyncio.Event()

    async def slow(_request: web.Request) -> web.StreamResponse:
        await answer_now.wait()
        return web.Response(text="#EXTM3U\n")

    outcome: list[object] = []

    async def hand_on(request: web.Request) -> web.StreamResponse:
        try:
            response = await owners.forward(request, 1)
        except Exception as e:  # what the test is about
            outcome.append(e)
            raise
        outcome.append(response)
        assert response is not None
        return response

    try:
        async with sibling_socket(directory, slow), http_port(hand_on) as port:
            await _leave_before_the_answer(port, answer_now, outcome)
        assert len(outcome) == 1 and isinstance(outcome[0], web.StreamResponse), outcome
    finally:
        await owners.close()


async def _leave_before_the_answer(port: int, answer_now: asyncio.Event,
                                   outcome: list[object]) -> None:  # fmt: skip
    """A player asks, waits until its request is handed on, and leaves; then the sibling
    answers, and the handler's outcome is awaited."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /live/cam/playlist.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)  # handed on, waiting for the sibling
    writer.close()  # the player leaves
    await writer.wait_closed()
    await asyncio.sleep(0.1)
    answer_now.set()
    for _ in range(50):
        if outcome:
            break
        await asyncio.sleep(0.02)
