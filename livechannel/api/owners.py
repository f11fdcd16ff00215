"""LL-HLS from every worker and node: a request for a channel whose LL-HLS push another
process owns goes to that process.

A push's parts and its LL-HLS playlist live in the memory of the worker that owns the push
(hls/live_endpoint.py). A worker asked for an object of a channel in an LL-HLS bucket, whose
push it does not hold, looks up the channel's running push in the metadata store:

- **Another worker of this node** owns it (`--workers N`: the kernel hands each HTTP
  connection to any worker): the request is fetched from there. Each worker also serves its
  HTTP API on a Unix socket of its own (`<data dir>/run/http-<index>.sock`, in a directory
  only the service's user can open); the request goes there unchanged (method, path, query,
  headers: the sibling checks the signature again) and its answer comes back as it is. Not
  a redirect: workers share one port, and a URL cannot name one of them.
- **Another node** owns it and advertised where players reach it (its `advertise_url`,
  recorded with the push): a 307 redirect there, path and query as they came (the signature
  stays valid). Players fetch the parts from the owner directly, with no second node's event
  loop and network hop on each. Without an advertised URL, storage answers (its classic
  playlist: LL-HLS players play at classic latency).

What it costs: nothing in buckets without LL-HLS (no lookup); in LL-HLS buckets one store
lookup per channel per OWNER_CACHE_S, and a local socket hop or a redirect for the requests
that land on the wrong process. A request is handed on at most once (FORWARDED_HEADER); a
sibling that cannot be reached leaves the answer to storage, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from livechannel.fleet.node import WorkerName
from livechannel.store.base import MetadataStore

log = logging.getLogger("livechannel.api.owners")

# A channel's owner is looked up in the store at most this often per worker: a push that
# starts elsewhere is served at classic latency by this worker for at most this long.
OWNER_CACHE_S = 1.0
# Channels remembered at once (one small tuple each); the table starts over past it.
MAX_OWNER_CACHE_ENTRIES = 10_000
# A local connect succeeds at once or not at all; a sibling that does not accept within this
# is stuck or gone, and storage answers instead.
SIBLING_CONNECT_TIMEOUT_S = 1.0
# Set on a forwarded request: the worker that gets it answers itself, never forwards again.
FORWARDED_HEADER = "X-Livechannel-Forwarded"
FORWARD_PIECE_BYTES = 64 * 1024  # the answer is relayed in pieces, never held whole
# sockaddr_un's sun_path holds 108 bytes with its terminating NUL (unix(7)).
MAX_SOCKET_PATH_BYTES = 107
# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones each connection sets for itself.
_NOT_RELAYED = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
              "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Date", "Server")
)  # fmt: skip


def socket_dir(data_dir: Path) -> Path:
    """Where the workers' sockets live: under the data directory, or, when that path is too
    long for a socket address, in a directory of the temp dir named after it."""
    run = data_dir.resolve() / "run"
    if len(str(run / "http-000.sock").encode()) <= MAX_SOCKET_PATH_BYTES:
        return run
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"livechannel-{digest}"


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"http-{index}.sock"


def prepare_socket_dir(directory: Path) -> None:
    """Private to the service's user (mode 0700): the sockets answer what the API answers,
    but only our own workers should connect to them."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        # In a shared temp directory someone else may have made it first (or a link there).
        raise OSError(f"{directory}: not a directory of this user; remove it and restart")
    directory.chmod(0o700)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who answers for a channel's push instead of this worker."""

    worker: int | None = None  # a sibling worker of this node, by index
    url: str = ""  # another node, where players reach it (its advertise_url)


class PushOwners:
    """This worker's view of the others: who owns a channel's push, and the way there."""

    def __init__(
        self, me: WorkerName, workers: int, directory: Path, store: MetadataStore,
        ll_buckets: Collection[str], my_url: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.me, self.workers, self.directory, self.store = me, workers, directory, store
        self.ll_buckets = frozenset(ll_buckets)
        self.my_url = my_url
        self._clock = clock
        self._owners: dict[tuple[str, str], tuple[Owner | None, float]] = {}
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._unreachable: set[int] = set()  # logged once until it answers again

    def wants(self, request: web.Request, bucket: str, key: str) -> bool:
        """A request this worker may have to hand on: an object of a channel (not the
        bucket's), in an LL-HLS bucket, not handed on to us already."""
        return (
            bucket in self.ll_buckets
            and "/" in key
            and request.method in ("GET", "HEAD")
            and FORWARDED_HEADER not in request.headers
        )

    async def owner(self, bucket: str, channel: str) -> Owner | None:
        """Who else holds `channel`'s running push and can answer for it, if anyone."""
        now = self._clock()
        cached = self._owners.get((bucket, channel))
        if cached is not None and cached[1] > now:
            return cached[0]
        push = await self.store.live_push(bucket, channel)
        name = WorkerName.parse(push.worker) if push is not None else None
        owner = None
        if name is not None and name.node == self.me.node:
            if name.index != self.me.index and name.index < self.workers:
                owner = Owner(worker=name.index)
        elif push is not None and push.owner_url and push.owner_url != self.my_url:
            owner = Owner(url=push.owner_url)
        if len(self._owners) >= MAX_OWNER_CACHE_ENTRIES:
            self._owners.clear()
        self._owners[(bucket, channel)] = (owner, now + OWNER_CACHE_S)
        return owner

    async def listen(
        self, handler: Callable[[], asyncio.BaseProtocol], backlog: int
    ) -> asyncio.AbstractServer | None:
        """This worker's HTTP API (`handler`: aiohttp's protocol factory) on its own socket,
        for its siblings; None with one worker."""
        if self.workers == 1:
            return None
        prepare_socket_dir(self.directory)
        path = socket_path(self.directory, self.me.index)
        path.unlink(missing_ok=True)  # left by a killed run of this worker
        loop = asyncio.get_running_loop()
        return await loop.create_unix_server(handler, path=str(path), backlog=backlog)

    async def answer(self, request: web.Request, owner: Owner) -> web.StreamResponse | None:
        """The owner's answer (fetched from a sibling, or a redirect to another node); None
        if the sibling could not be reached."""
        if owner.worker is None:
            # The Location as a string, not through yarl, which would decode the query's
            # escapes: a signature's %2B read back as "+" is a space, and no longer matches.
            location = owner.url + request.raw_path
            return web.Response(status=307, headers={"Location": location})
        return await self.forward(request, owner.worker)

    async def forward(self, request: web.Request, index: int) -> web.StreamResponse | None:
        """The sibling's answer to `request`, relayed; None if it could not be reached."""
        session = self._session(index)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_RELAYED}
        headers[FORWARDED_HEADER] = str(self.me.index)
        try:
            # The path and query exactly as the client sent them (what it signed).
            url = URL("http://worker" + request.raw_path, encoded=True)
            upstream = await session.request(
                request.method, url, headers=headers, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            if index not in self._unreachable:
                self._unreachable.add(index)
                log.warning("worker %d did not take a forwarded request: %s", index, e)
            return None
        self._unreachable.discard(index)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _NOT_RELAYED:
                    response.headers.add(name, value)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            try:
                await response.prepare(request)
                async for piece in upstream.content.iter_chunked(FORWARD_PIECE_BYTES):
                    await response.write(piece)
                await response.write_eof()
            except ConnectionError:
                # The player left while its answer was on the way (hls.js drops a blocking
                # reload it no longer needs): nothing to tell it, nothing went wrong here.
                pass
        return response

    def _session(self, index: int) -> aiohttp.ClientSession:
        session = self._sessions.get(index)
        if session is None:
            # No pool limit of its own: every forwarded request holds one of this worker's
            # request slots (max_http_requests) while it waits, which bounds the connections;
            # a pool limit would queue blocking reloads behind each other.
            connector = aiohttp.UnixConnector(path=str(socket_path(self.directory, index)), limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=SIBLING_CONNECT_TIMEOUT_S)
            # The sibling bounds the wait itself (a blocking reload ends within three target
            # durations); the bytes go through as they are, compressed or not.
            session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )  # fmt: skip
            self._sessions[index] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
