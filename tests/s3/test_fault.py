"""The S3 endpoint fails for 20 s in the middle of a push (a loopback proxy between
us and moto first swallows every byte, then refuses connections). Afterwards every segment is
stored, in order, the playlist and the segment index agree, nothing is lost, the publisher was
slowed rather than the queue grown, and the outage was visible while it lasted."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest

from livechannel.config import Limits
from tests.support import publishers
from tests.support.hls import probe_segment
from tests.support.hls_validator import validate_media_playlist
from tests.support.moto import MotoServer
from tests.support.service import BUCKET, ServiceThread, create_channel
from tests.support.tcp_proxy import Mode, TcpProxy

PUSH_S = 34  # media pushed in all
OUTAGE_BLACKHOLE_S = 10  # requests time out...
OUTAGE_REFUSE_S = 10  # ...then connections are refused: 20 s down in all
QUEUE_SEGMENTS = 3  # the stated bound: segments held while storage is down
FRAG_S = 1
DURATION_TOLERANCE_MS = 1500  # the last partial segment, and where ffmpeg's first GOP starts
RSS_GROWTH_LIMIT_KIB = 150 * 1024  # whole test process; a leak of 20 s of media would still fit,
# so the queue figures below are the real check: this only catches a gross runaway


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[TcpProxy]:
    p = TcpProxy(moto.port).start()
    try:
        yield p
    finally:
        p.stop()


def live_health(svc: ServiceThread, channel: str) -> dict[str, object] | None:
    push = svc.call(svc.store.live_push(BUCKET, channel))
    if push is None or push.stats_json in ("", "{}"):
        return None
    return json.loads(push.stats_json)["health"]  # type: ignore[no-any-return]


def test_storage_outage_mid_push_loses_nothing(
    tmp_path: Path, moto: MotoServer, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livechannel.pipeline")
    endpoint = f"http://127.0.0.1:{proxy.port}"
    table = moto.storage_table(
        moto.new_bucket(),
        endpoint=endpoint,
        connect_timeout_s=1,
        read_timeout_s=2,
        request_timeout_s=10,
        max_retries=1,
        retry_timeout_s=3,
    )
    svc = ServiceThread(
        tmp_path / "data", storage=table, limits=Limits(upload_queue_segments=QUEUE_SEGMENTS)
    ).start()
    pub = None
    try:
        create_channel(svc.bucket(), "cam", frag_duration=FRAG_S, frag_count=3)
        pub = publishers.start(publishers.ffmpeg_live(
            svc.signed_publish_url("cam", rtmp_port=True), duration_s=PUSH_S, gop_s=FRAG_S,
            bframes=2))  # fmt: skip
        deadline = time.monotonic() + 20
        while len(svc.call(svc.store.last_segments(BUCKET, "cam", 3))) < 3:
            assert time.monotonic() < deadline, "no segments before the outage"
            time.sleep(0.1)

        rss_before = rss_kib()
        samples: list[dict[str, object]] = []
        rss_peak = [rss_before]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                health = live_health(svc, "cam")
                if health is not None:
                    samples.append(health)
                rss_peak[0] = max(rss_peak[0], rss_kib())
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        indexed_before = len(svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62)))
        proxy.set_mode(Mode.BLACKHOLE)
        time.sleep(OUTAGE_BLACKHOLE_S)
        proxy.set_mode(Mode.REFUSE)
        refused_at = time.monotonic()
        # Players reading through our API get a retryable 503 meanwhile, not a hang or a 404.
        with pytest.raises(oss2.exceptions.ServerError) as unavailable:
            svc.bucket().get_object("cam/playlist.m3u8")
        assert (unavailable.value.status, unavailable.value.code) == (503, "ServiceUnavailable")
        time.sleep(max(0.0, OUTAGE_REFUSE_S - (time.monotonic() - refused_at)))
        during = len(svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62)))
        proxy.set_mode(Mode.FORWARD)

        r = pub.communicate(timeout=PUSH_S + publishers.PUBLISH_TIMEOUT_MARGIN_S)
        assert pub.returncode == 0, r
        svc.wait_idle("cam", timeout_s=60)
        stop.set()
        watcher.join(5)

        # Nothing was written while the store was down (at most one put in flight as it
        # went), and the publisher kept its connection: one push, not kicked as idle.
        assert during <= indexed_before + 1
        history = svc.call(svc.store.history(BUCKET, "cam", 10))
        assert len(history) == 1, history

        # The outage was visible while it lasted, and cleared once storage came back.
        logged = [r.getMessage() for r in caplog.records if r.name == "livechannel.pipeline"]
        assert any(m.startswith("storage failed for cam/") for m in logged), logged[:5]
        assert any(m.startswith("storage recovered for cam/") for m in logged), logged[-5:]
        errors = [h["storage_error"] for h in samples if h["storage_error"]]
        assert errors, "health.storage_error never reported the outage"
        assert any("S3 cannot write" in str(e) for e in errors), errors[:3]
        # Memory stayed under the bound: the queue filled up to it (so the publisher was
        # slowed: its socket was not read) and never past it.
        peak = max(int(h["upload_queue_peak"]) for h in samples)  # type: ignore[call-overload]
        assert peak == QUEUE_SEGMENTS, peak
        largest = max(int(h["upload_queue_peak_bytes"]) for h in samples)  # type: ignore[call-overload]
        assert largest <= QUEUE_SEGMENTS * 2 * 1024 * 1024  # 1 s segments at ~1 Mbit/s
        assert rss_peak[0] - rss_before < RSS_GROWTH_LIMIT_KIB

        # Every segment is there, in order, and the media is all accounted for.
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
        assert [s.seq for s in segments] == list(range(len(segments)))
        assert [s.key for s in segments] == sorted(s.key for s in segments)
        assert not any(s.discontinuity for s in segments)  # one unbroken timeline
        total_ms = sum(s.duration_ms for s in segments)
        assert abs(total_ms - PUSH_S * 1000) <= DURATION_TOLERANCE_MS, total_ms
        listed = svc.bucket().list_objects("cam/", max_keys=1000)
        stored = {o.key: o.size for o in listed.object_list}
        for s in segments:
            assert stored.get(s.key) == s.size, s
        assert len(stored) == len(segments) + 1  # + the playlist: no stray objects

        # The playlist names the index's last segments, with their sequence number.
        text = svc.object_path("cam/playlist.m3u8").read_text()
        playlist = validate_media_playlist(text)
        assert [seg.uri for seg in playlist.segments] == [
            s.key.rsplit("/", 1)[1] for s in segments[-3:]]  # fmt: skip
        assert playlist.media_sequence == segments[-3].seq
        # A segment cut while the store was down decodes like any other.
        middle = segments[len(segments) // 2]
        probe = probe_segment(svc.object_path(middle.key))
        assert probe.decode_errors == [] and probe.starts_with_keyframe
    finally:
        if pub is not None:
            publishers.stop(pub)
        svc.stop()
