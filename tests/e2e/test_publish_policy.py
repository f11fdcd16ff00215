"""Refusals. Each is refused with its reason, writes nothing, and leaves a running
publisher untouched."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from livechannel import server as server_module
from livechannel.config import Limits
from livechannel.fleet import liveness
from tests.support import publishers
from tests.support.service import BUCKET, ServiceThread, create_channel

REFUSAL_TIMEOUT_S = 20  # a refused publisher must give up quickly, never hang
LATE_PUSH_S = 30  # longer than the stall below
SLOW_STORE_S = 0.5  # each kick poll / heartbeat of the "overloaded" worker is this late


def with_param(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def refused(service: ServiceThread, url: str, sample: Path) -> str:
    r = publishers.run(publishers.ffmpeg_copy(sample, url), timeout_s=REFUSAL_TIMEOUT_S)
    assert r.returncode != 0, "publisher was not refused"
    return r.stderr


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad-signature", "signature does not match"),
        ("expired", "signature expired"),
        ("unknown-channel", "no such channel"),
        ("disabled", "channel disabled"),
        ("unsigned", "missing"),
        ("bad-playlist-name", "must end with .m3u8"),
    ],
)
def test_refusals(service: ServiceThread, sample_flv: Path, case: str, reason: str) -> None:
    bucket = service.bucket()
    create_channel(bucket, "ok", frag_duration=1, frag_count=3)
    url = service.signed_publish_url("ok")
    if case == "bad-signature":
        url = with_param(url, "Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    elif case == "expired":
        url = service.bucket().sign_rtmp_url("ok", "playlist.m3u8", -60)
    elif case == "unknown-channel":
        url = service.signed_publish_url("nope")
    elif case == "disabled":
        bucket.put_live_channel_status("ok", "disabled")
    elif case == "bad-playlist-name":
        url = service.signed_publish_url("ok", playlist="list.txt")
    elif case == "unsigned":
        url = url.split("?", 1)[0]
    stderr = refused(service, url, sample_flv)
    assert reason in stderr, stderr
    assert not service.object_path("ok").exists()
    assert not service.object_path("nope").exists()
    assert service.call(service.store.live_push(BUCKET, "ok")) is None


def test_second_publisher_refused_first_untouched(service: ServiceThread, sample_flv: Path) -> None:
    create_channel(service.bucket(), "one", frag_duration=2, frag_count=3)
    url = service.signed_publish_url("one")
    first = publishers.start(publishers.ffmpeg_copy(sample_flv, url))
    try:
        deadline = time.monotonic() + 10
        while service.call(service.store.live_push(BUCKET, "one")) is None:
            assert time.monotonic() < deadline, "first publisher never went live"
            time.sleep(0.1)
        stderr = refused(service, url, sample_flv)
        assert "channel is already live" in stderr, stderr
        _, err = first.communicate(timeout=14 + 30)
        assert first.returncode == 0, err
    finally:
        publishers.stop(first)
    service.wait_idle("one")
    segments = service.call(service.store.segments_between(BUCKET, "one", 0, 2**62))
    assert len(segments) >= 5  # the whole 14 s arrived
    history = service.call(service.store.history(BUCKET, "one", 10))
    assert len(history) == 1  # the refused one never became a push


def test_public_read_write_bucket_needs_no_signature(tmp_path: Path, sample_flv: Path) -> None:
    from livechannel.store.base import Acl

    svc = ServiceThread(tmp_path / "data", acl=Acl.PUBLIC_READ_WRITE).start()
    try:
        create_channel(svc.bucket(), "open", frag_duration=2, frag_count=3)
        url = f"rtmp://127.0.0.1:{svc.rtmp_port}/live/open"  # plain form, default bucket
        r = publishers.run(publishers.ffmpeg_copy(sample_flv, url, realtime=False), timeout_s=60)
        assert r.returncode == 0, r.stderr
        svc.wait_idle("open")
        assert svc.object_path("open/playlist.m3u8").exists()
    finally:
        svc.stop()


def test_an_overloaded_worker_refuses_new_publishers_and_recovers(
    tmp_path: Path, sample_flv: Path
) -> None:
    """While heartbeat rounds finish later than limits.max_heartbeat_lag_s (here a metadata
    store slowed by 0.5 s per call), a publish is refused as "server busy"; once the rounds
    are on time again, the same publish is taken."""
    limits = Limits(max_heartbeat_lag_s=0.2)
    with ServiceThread(tmp_path / "data", limits=limits).start() as svc:
        create_channel(svc.bucket(), "busy", frag_duration=1, frag_count=3)
        store = svc.store
        fast = {name: getattr(store, name) for name in ("running_pushes", "heartbeat_many")}

        def slowed(call):  # type: ignore[no-untyped-def]
            async def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
                await asyncio.sleep(SLOW_STORE_S)
                return await call(*args, **kwargs)

            return slow

        for name, call in fast.items():
            setattr(store, name, slowed(call))
        time.sleep(3 * SLOW_STORE_S)  # a few late rounds
        stderr = refused(svc, svc.signed_publish_url("busy"), sample_flv)
        assert "server busy" in stderr, stderr
        assert svc.bucket().get_live_channel_stat("busy").status == "Idle"

        for name in fast:
            delattr(store, name)  # the class's own methods again
        time.sleep(3 * SLOW_STORE_S)
        r = publishers.run(
            publishers.ffmpeg_copy(sample_flv, svc.signed_publish_url("busy")),
            timeout_s=REFUSAL_TIMEOUT_S,
        )
        assert r.returncode == 0, r.stderr


def test_a_late_worker_keeps_its_own_publishers(tmp_path: Path) -> None:
    """A worker whose heartbeats come later than the stale-push limit (here its metadata
    store stalls them) is alive: its own sweeper must not end its pushes and disconnect its
    publishers, as it did when an overloaded worker swept itself."""
    stall_s = liveness.STALE_PUSH_MS / 1000 + 2 * server_module.STALE_SWEEP_INTERVAL_S
    with ServiceThread(tmp_path / "data").start() as svc:
        create_channel(svc.bucket(), "late", frag_duration=1, frag_count=3)
        url = svc.signed_publish_url("late")
        publisher = publishers.start(
            publishers.ffmpeg_live(url, duration_s=LATE_PUSH_S, size="320x180", fps=15)
        )
        store = svc.store

        async def stall(*args, **kwargs):  # type: ignore[no-untyped-def]
            await asyncio.sleep(stall_s + 5)  # cancelled when the service stops

        try:
            deadline = time.monotonic() + REFUSAL_TIMEOUT_S
            while svc.bucket().get_live_channel_stat("late").status != "Live":
                assert time.monotonic() < deadline and publisher.poll() is None
                time.sleep(0.2)
            for name in ("running_pushes", "heartbeat_many"):
                setattr(store, name, stall)
            time.sleep(stall_s)
            assert publisher.poll() is None, "the late worker disconnected its own publisher"
            assert svc.bucket().get_live_channel_stat("late").status == "Live"
        finally:
            for name in ("running_pushes", "heartbeat_many"):
                store.__dict__.pop(name, None)
            _, err = publishers.stop(publisher)
        assert "heartbeat was late" not in err, err
