"""Storage faults (docs/robustness.md): disk full, permission denied, read-only storage.

While storage fails: no crash, the reason is logged and shown in the push's stats
(`health.storage_error`), uploads are retried and the publisher is slowed (we stop reading its
socket once the bounded upload queue is full) rather than its data dropped. Once the fault is
gone, everything queued is stored without a restart: contiguous segments, all the media.

Faults are injected two ways: at the storage interface (every errno, any machine), and for
real on a small tmpfs the test mounts over the bucket's directory (ENOSPC, then EROFS).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from livechannel import server as server_module
from livechannel.config import Limits
from livechannel.errors import StorageError
from livechannel.storage.base import ObjectInfo
from tests.robustness.rtmp_session import flv_tags, session_for
from tests.support.hls_validator import assert_segments_exist, validate_media_playlist
from tests.support.service import BUCKET, ServiceThread, create_channel

LIMITS = Limits(upload_queue_segments=2)  # the publisher is held back after two segments
FAULT_HOLD_S = 1.5  # how long the fault lasts once it has shown up in the stats
SNDBUF_BYTES = 16 * 1024  # the publisher's socket buffer: blocks soon after we stop reading
TMPFS_BYTES = 16 * 1024 * 1024


class FaultyStorage:
    """Delegates to a real storage; `put` and a segment writer's `close` fail like the local
    store does for `errno_`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.errno_: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def check(self, key: str) -> None:
        if self.errno_ is not None:
            name = errno.errorcode[self.errno_]
            raise StorageError(
                f"local storage cannot write {key!r}: {os.strerror(self.errno_)} ({name})",
                permanent=self.errno_ in (errno.EACCES, errno.EROFS),
            )

    async def put(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        self.check(key)
        result: ObjectInfo = await self._inner.put(key, data, content_type)
        return result

    def open_writer(self, key: str) -> FaultyWriter:
        return FaultyWriter(self, key, self._inner.open_writer(key))


class FaultyWriter:
    def __init__(self, storage: FaultyStorage, key: str, inner: Any) -> None:
        self._storage, self._key, self._inner = storage, key, inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def close(self) -> ObjectInfo:
        self._storage.check(self._key)
        result: ObjectInfo = await self._inner.close()
        return result


def faulty_storages(monkeypatch: pytest.MonkeyPatch) -> list[FaultyStorage]:
    """Every storage the service makes from now on, wrapped so that a test can fail its puts."""
    made: list[FaultyStorage] = []
    real_make = server_module.make_storage

    def make(*args: Any, **kwargs: Any) -> FaultyStorage:
        made.append(FaultyStorage(real_make(*args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(server_module, "make_storage", make)
    return made


def _health(svc: ServiceThread, channel: str) -> dict[str, Any]:
    push = svc.call(svc.store.live_push(BUCKET, channel))
    assert push is not None, "the push ended during the fault"
    return json.loads(push.stats_json or "{}").get("health") or {}


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def ride_out_a_fault(
    svc: ServiceThread, channel: str, flv: Path, *, heal: Callable[[], None], reason: str
) -> None:
    """Publish `flv` unpaced into a failing storage, heal it, and check nothing was lost."""
    tags = flv_tags(flv)
    media_ms = tags[-1][1] - tags[0][1]
    before = svc.call(svc.store.segments_between(BUCKET, channel, 0, 2**62))
    with session_for(svc, channel, sndbuf=SNDBUF_BYTES) as s:
        assert s.publish().code == "NetStream.Publish.Start"
        sender = threading.Thread(target=s.send, args=(tags,), daemon=True)
        sender.start()  # unpaced: as fast as we read
        _wait(lambda: reason in _health(svc, channel).get("storage_error", ""), 10.0,
              f"no {reason!r} in the push's health")  # fmt: skip
        (conn,) = [c for c in svc.ingest_server().connections if c.channel == channel]
        time.sleep(0.5)  # what was already read is segmented; then reading stops
        read_at_fault = conn.conn.bytes_received
        time.sleep(FAULT_HOLD_S)
        # Backpressure: we stopped reading (the rest waits in TCP buffers and the encoder).
        assert conn.conn.bytes_received == read_at_fault
        assert svc.call(svc.store.live_push(BUCKET, channel)) is not None, "push dropped"
        heal()
        sender.join(30)
        assert not sender.is_alive() and not s.closed_by_server
        assert read_at_fault < s.bytes_sent * 0.8, (read_at_fault, s.bytes_sent)
        _wait(lambda: _health(svc, channel).get("storage_error") == "", 15.0, "no recovery")
        s.client.unpublish()
        s.send([])
    svc.wait_idle(channel, timeout_s=30)
    segments = svc.call(svc.store.segments_between(BUCKET, channel, 0, 2**62))[len(before) :]
    assert [seg.seq for seg in segments] == list(range(len(before), len(before) + len(segments)))
    stored_ms = sum(seg.duration_ms for seg in segments)
    assert stored_ms >= media_ms - 100, (stored_ms, media_ms)  # all the media, none dropped
    for seg in segments:
        assert svc.object_path(seg.key).stat().st_size == seg.size
    playlist = validate_media_playlist(svc.object_path(f"{channel}/playlist.m3u8").read_text())
    assert_segments_exist(playlist, lambda uri: svc.object_path(f"{channel}/{uri}").exists())


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied"),
     (errno.EROFS, "Read-only file system")],
    ids=["disk-full", "permission-denied", "read-only"],
)  # fmt: skip
def test_injected_fault_slows_the_publisher_and_recovers(
    tmp_path: Path,
    short_flv: Path,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
    fault: int,
    reason: str,
) -> None:
    made = faulty_storages(monkeypatch)
    svc = ServiceThread(tmp_path / "data", limits=LIMITS).start()
    try:
        create_channel(svc.bucket(), "disk", frag_duration=1, frag_count=3)
        (storage,) = made
        storage.errno_ = fault

        def heal() -> None:
            storage.errno_ = None

        ride_out_a_fault(svc, "disk", short_flv, heal=heal, reason=reason)
        assert svc.bucket().get_live_channel_stat("disk").status == "Idle"  # API unaffected
    finally:
        svc.stop()
    assert "storage failed for disk/" in logs.text and reason in logs.text
    assert "storage recovered" in logs.text


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs",
                              str(path)], capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
                    "the injected-fault tests cover the same paths")  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def test_real_full_and_read_only_filesystem(
    tmp_path: Path, short_flv: Path, logs: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    bucket_dir = data / "buckets" / BUCKET
    with tmpfs(bucket_dir, TMPFS_BYTES):
        svc = ServiceThread(data, limits=LIMITS).start()
        try:
            create_channel(svc.bucket(), "fs", frag_duration=1, frag_count=3)
            filler = bucket_dir / "filler.bin"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:  # until ENOSPC: the disk is full
                    f.write(bytes(256 * 1024))
            ride_out_a_fault(svc, "fs", short_flv, heal=filler.unlink,
                             reason="No space left on device")  # fmt: skip
            _remount(bucket_dir, "ro")
            ride_out_a_fault(svc, "fs", short_flv, heal=lambda: _remount(bucket_dir, "rw"),
                             reason="Read-only file system")  # fmt: skip
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                _remount(bucket_dir, "rw")
            svc.stop()
    assert "(ENOSPC)" in logs.text and "(EROFS)" in logs.text


def test_a_stall_of_every_push_is_bounded_by_the_process_budget(
    tmp_path: Path, short_flv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Limits.max_upload_queue_bytes: when storage stalls for every push at once, the queued
    bytes of all pushes together stay within the budget plus one segment per push. Here the
    per-push bound (8) would let each push queue all 5 of its cut segments; the budget (half a
    second of media) pauses each push after its first."""
    tags = flv_tags(short_flv)
    media_ms = tags[-1][1] - tags[0][1]
    budget = short_flv.stat().st_size * 1000 // media_ms // 2
    limits = Limits(upload_queue_segments=8, max_upload_queue_bytes=budget)
    made = faulty_storages(monkeypatch)
    channels = ("stall-a", "stall-b")
    with ServiceThread(tmp_path / "data", limits=limits).start() as svc:
        for channel in channels:
            create_channel(svc.bucket(), channel, frag_duration=1, frag_count=3)
        (storage,) = made
        storage.errno_ = errno.ENOSPC
        with contextlib.ExitStack() as stack:
            sessions = [stack.enter_context(session_for(svc, c, sndbuf=SNDBUF_BYTES))
                        for c in channels]  # fmt: skip
            senders = []
            for s in sessions:
                assert s.publish().code == "NetStream.Publish.Start"
                senders.append(threading.Thread(target=s.send, args=(tags,), daemon=True))
                senders[-1].start()
            for channel in channels:
                _wait(lambda c=channel: "No space" in _health(svc, c).get("storage_error", ""),
                      10.0, f"no storage error in {channel}'s health")  # fmt: skip
            time.sleep(0.5)  # what was already read is segmented; then reading stops
            conns = [c for c in svc.ingest_server().connections if c.channel in channels]
            read_at_fault = [c.conn.bytes_received for c in conns]
            time.sleep(FAULT_HOLD_S)
            assert [c.conn.bytes_received for c in conns] == read_at_fault  # both paused
            health = [_health(svc, c) for c in channels]
            assert [h["upload_queue_peak"] for h in health] == [1, 1], health
            storage.errno_ = None
            for s, sender in zip(sessions, senders, strict=True):
                sender.join(30)
                assert not sender.is_alive() and not s.closed_by_server
                s.client.unpublish()
                s.send([])
        for channel in channels:
            svc.wait_idle(channel, timeout_s=30)
            segments = svc.call(svc.store.segments_between(BUCKET, channel, 0, 2**62))
            assert sum(seg.duration_ms for seg in segments) >= media_ms - 100  # nothing lost
