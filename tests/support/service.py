"""A real livechannel service on loopback, in a background thread with its own event loop.

Tests stay synchronous: the official `oss2` SDK (blocking, requests-based) and subprocess
publishers talk to the service over real sockets, exactly as users' tools do.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import oss2

from livechannel.config import BucketConfig, Config, Limits, Listen
from livechannel.ingest.edge import IngestServer
from livechannel.server import Running, serve
from livechannel.store.base import Acl

T = TypeVar("T")

ACCESS_KEY_ID = "LTAItestkeyid0001"
ACCESS_KEY_SECRET = "test-secret-0123456789abcdef"
BUCKET = "live"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 30.0


class ServiceThread:
    def __init__(
        self,
        data_dir: Path,
        *,
        acl: Acl = Acl.PRIVATE,
        storage: Mapping[str, Any] | None = None,
        extra_buckets: tuple[BucketConfig, ...] = (),
        **overrides: Any,
    ) -> None:
        """`storage`: the bucket's `[buckets.storage]` table (None = local under data_dir);
        `extra_buckets` are served beside it. `acl` is in force at start, as a configured
        ACL is; `acl_configured=False` lets a stored one stand."""
        limits = overrides.pop("limits", Limits())
        acl_configured = overrides.pop("acl_configured", True)
        self.config = replace(
            Config(),
            data_dir=data_dir,
            rtmp_listen=Listen("127.0.0.1", 0),
            http_listen=Listen("127.0.0.1", 0),
            domain=overrides.pop("domain", "127.0.0.1"),
            buckets=(
                BucketConfig(BUCKET, acl, dict(storage or {}), acl_configured=acl_configured),
                *extra_buckets,
            ),
            access_keys={ACCESS_KEY_ID: ACCESS_KEY_SECRET},
            end_grace_s=overrides.pop("end_grace_s", 3.0),
            demo_channel="",
            limits=limits,
            **overrides,
        )
        self.loop = asyncio.new_event_loop()
        self.running: Running | None = None
        self._ready = threading.Event()
        self._shutdown: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="livechannel-service", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._shutdown = asyncio.Event()

            def ready(running: Running) -> None:
                self.running = running
                self._ready.set()

            await serve(self.config, self._shutdown, ready)

        try:
            self.loop.run_until_complete(main())
        except BaseException as e:  # surfaced to the test by start()/stop()
            self._error = e
            self._ready.set()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self) -> ServiceThread:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self.running is None:
            raise RuntimeError(f"service did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._shutdown is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError("service did not stop in time")
        if self._error is not None:
            raise self._error

    def __enter__(self) -> ServiceThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- conveniences ------------------------------------------------------------------------

    def ingest_server(self) -> IngestServer:
        """This service's RTMP side (it runs in this process). Found through the collector:
        `serve` keeps it to itself; earlier tests' servers may still be there, so by store."""
        assert self.running is not None
        store = self.running.store
        [server] = [
            o for o in gc.get_objects() if isinstance(o, IngestServer) and o.deps.store is store
        ]
        return server

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        """Run a coroutine (e.g. a store query) on the service's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        assert self.running is not None
        return self.running.store

    @property
    def http_port(self) -> int:
        assert self.running is not None
        return self.running.http_port

    @property
    def rtmp_port(self) -> int:
        assert self.running is not None
        return self.running.rtmp_port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def probe(self, path: str, timeout_s: float = 10.0) -> tuple[int, dict[str, Any]]:
        """An unsigned GET of a probe route (`/-/healthz`, `/-/readyz`): status, JSON body."""
        try:
            with urllib.request.urlopen(self.endpoint + path, timeout=timeout_s) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        return status, json.loads(body)

    def bucket(self, name: str = BUCKET, *, anonymous: bool = False) -> oss2.Bucket:
        auth = oss2.AnonymousAuth() if anonymous else oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
        return oss2.Bucket(auth, self.endpoint, name)

    def object_path(self, key: str, bucket: str = BUCKET) -> Path:
        """Where the object's bytes can be read as a file. For a bucket that is not local,
        a fresh copy fetched through our API (GetObject); a missing object gives a path that
        does not exist."""
        config = next(b for b in self.config.buckets if b.name == bucket)
        if config.storage.get("type", "local") == "local":
            return self.config.data_dir / "buckets" / bucket / key
        copy = self.config.data_dir / "fetched" / bucket / key
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.unlink(missing_ok=True)
        try:
            self.bucket(bucket).get_object_to_file(key, str(copy))
        except oss2.exceptions.NoSuchKey:
            copy.unlink(missing_ok=True)
        return copy

    def wait_idle(self, channel: str, bucket: str = BUCKET, timeout_s: float = 15.0) -> None:
        """Wait until the channel's push has ended (its last segment flushed and indexed):
        a publisher's exit does not mean we have finished writing."""
        deadline = time.monotonic() + timeout_s
        while self.call(self.store.live_push(bucket, channel)) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{channel}: push still running after {timeout_s}s")
            time.sleep(0.05)

    def signed_publish_url(
        self,
        channel: str,
        *,
        playlist: str = "playlist.m3u8",
        expires_s: int = 3600,
        rtmp_port: bool = False,
    ) -> str:
        """The URL exactly as `oss2.Bucket.sign_rtmp_url` builds it (HTTP port: we serve
        RTMP there too); `rtmp_port=True` swaps in the dedicated RTMP port."""
        url = self.bucket().sign_rtmp_url(channel, playlist, expires_s)
        if rtmp_port:
            url = url.replace(f":{self.http_port}/", f":{self.rtmp_port}/", 1)
        return url


def create_channel(
    bucket: oss2.Bucket,
    name: str,
    *,
    frag_duration: int = 5,
    frag_count: int = 3,
    playlist: str = "playlist.m3u8",
) -> None:
    target = oss2.models.LiveChannelInfoTarget(
        playlist_name=playlist, frag_count=frag_count, frag_duration=frag_duration
    )
    bucket.create_live_channel(name, oss2.models.LiveChannelInfo(target=target))
