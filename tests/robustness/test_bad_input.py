"""Bad input never hurts anyone else (docs/robustness.md).

A real ffmpeg publisher streams while hundreds of random, mutated and malformed sessions (RTMP
and HTTP, both ports) and half-open handshakes hit the same service. Its segments continue
without a gap, every bad connection is closed with a logged reason, and no descriptor leaks.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from livechannel.config import Limits
from tests.robustness import garbage
from tests.robustness.rtmp_session import flv_tags, session_for, url_parts
from tests.support import publishers
from tests.support.hls_validator import assert_segments_exist, validate_media_playlist
from tests.support.service import BUCKET, ServiceThread, create_channel

PUBLISH_S = 12
GOP_S = 1
FRAG_S = 1
ATTACK_WORKERS = 12
HALF_OPEN = 60
LIMITS = Limits(handshake_timeout_s=2.0, publish_timeout_s=3.0, idle_timeout_s=5.0)
# Segment arrival may wobble by scheduling, never by a stall: at most one segment late.
MAX_ARRIVAL_GAP_MS = (FRAG_S + GOP_S) * 1000 + FRAG_S * 1000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_garbage_sessions_do_not_disturb_a_real_publisher(
    tmp_path: Path, short_flv: Path, logs: pytest.LogCaptureFixture
) -> None:
    svc = ServiceThread(tmp_path / "data", limits=LIMITS).start()
    try:
        bucket = svc.bucket()
        create_channel(bucket, "real", frag_duration=FRAG_S, frag_count=5)
        create_channel(bucket, "fuzz", frag_duration=FRAG_S, frag_count=3)
        _, app, stream, tc_url = url_parts(svc.signed_publish_url("fuzz", rtmp_port=True))
        recording = garbage.record_publish(app, stream, tc_url, flv_tags(short_flv)[:90])
        ports = {"rtmp": svc.rtmp_port, "http": svc.http_port}
        fds_before = open_fds()

        real = publishers.start(publishers.ffmpeg_live(
            svc.signed_publish_url("real"), duration_s=PUBLISH_S, gop_s=GOP_S, bframes=0,
            size="320x180"))  # fmt: skip
        rng = random.Random(6)
        factory = garbage.AttackFactory(recording, rng)
        attacks = [factory.half_open() for _ in range(HALF_OPEN)]
        attacks += [factory.draw() for _ in range(400)]
        rng.shuffle(attacks)
        with ThreadPoolExecutor(ATTACK_WORKERS + HALF_OPEN) as pool:
            sources = [f"127.0.1.{1 + i % 50}" for i in range(len(attacks))]
            outcomes = list(pool.map(garbage.run, attacks, [ports] * len(attacks), sources))
        _, err = real.communicate(timeout=PUBLISH_S + publishers.PUBLISH_TIMEOUT_MARGIN_S)
        assert real.returncode == 0, err
        svc.wait_idle("real")
        svc.wait_idle("fuzz")

        ended = Counter(o.ended for o in outcomes)
        assert ended["connect failed"] == 0, ended
        half_open = [o for o in outcomes if o.kind == "half-open handshake"]
        assert all(o.ended == "closed by server" for o in half_open)
        assert max(o.seconds for o in half_open) < LIMITS.handshake_timeout_s + 2.0

        # The real publisher: one uninterrupted push, contiguous segments, no stall.
        (push,) = svc.call(svc.store.history(BUCKET, "real", 10))
        segments = svc.call(svc.store.segments_between(BUCKET, "real", 0, 2**62))
        assert [s.seq for s in segments] == list(range(len(segments)))
        assert not any(s.discontinuity for s in segments)
        assert all(s.push_id == push.push_id for s in segments)
        media_s = sum(s.duration_ms for s in segments) / 1000
        assert PUBLISH_S - 1.5 <= media_s <= PUBLISH_S + 0.5, media_s
        gaps = [b.start_ms - a.start_ms for a, b in itertools.pairwise(segments)]
        assert max(gaps) <= MAX_ARRIVAL_GAP_MS, gaps
        playlist = validate_media_playlist(svc.object_path("real/playlist.m3u8").read_text())
        assert_segments_exist(playlist, lambda uri: svc.object_path(f"real/{uri}").exists())

        # Every bad connection was closed with a reason in the log.
        text = logs.text
        for reason in ("protocol error", "no handshake within the time limit",
                       "nothing received within", "connection closed: BadStatusLine"):  # fmt: skip
            assert reason in text, reason
        deadline = time.monotonic() + 5
        while open_fds() > fds_before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds() <= fds_before + 2, "descriptors leaked"
        assert "Traceback" not in text and "Unhandled exception" not in text
    finally:
        svc.stop()


def test_unstorable_channel_name_refuses_the_publisher(tmp_path: Path, short_flv: Path) -> None:
    """A name the API accepts but the local storage cannot hold (a 300-byte path segment):
    the publisher is refused with the reason, instead of queueing segments without bound."""
    svc = ServiceThread(tmp_path / "data").start()
    try:
        name = "n" * 300
        create_channel(svc.bucket(), name, frag_duration=1, frag_count=3)
        with session_for(svc, name) as s:
            assert s.publish().code == "NetStream.Publish.Start"
            s.send(flv_tags(short_flv), pace=3.0)
            s.wait_closed(5.0)
            refusal = s.error_status()
            assert refusal is not None and "storage refused the stream" in refusal.description
        svc.wait_idle(name)
        # The segments it had queued gave their bytes back to the worker's upload budget.
        assert svc.ingest_server().upload_budget.queued_bytes == 0
    finally:
        svc.stop()
