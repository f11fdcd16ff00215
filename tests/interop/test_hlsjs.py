"""hls.js in headless Chromium plays a live channel through our HTTP API: unsigned from a
public-read bucket, and a private bucket's `x-oss-process=hls/sign` playlist whose segment
URLs come back signed. The page is served from another loopback origin, so CORS is exercised
on every playlist and segment fetch; H.264/AAC go through Chromium's MSE decoders."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from livechannel.store.base import Acl
from tests.interop.browser import PlayerServer, play_in_chromium
from tests.interop.hlsjs import HLSJS_VERSION
from tests.support import publishers
from tests.support.service import BUCKET, ServiceThread, create_channel

PLAY_S = 3.0  # playback: currentTime must advance at least this much
PLAY_BUDGET_S = 25.0  # the page gives up (outcome "timeout") after this
SEGMENTS_BEFORE_PLAY = 3  # a full live window, as a viewer joining a running show sees
SEGMENTS_TIMEOUT_S = 25.0
PUSH_S = 60  # longer than any run of the test: the publisher is stopped at the end
WIDTH, HEIGHT = 640, 360
DENIED_BUDGET_S = 10.0  # a refused playlist is fatal at once (hls.js does not retry a 4xx)
# Non-fatal notices hls.js recovers from by design. bufferSeekOverHole: a live stream joined
# mid-way buffers from its first keyframe, a little after the playlist's start time, and
# hls.js seeks over that gap; the stall notices come when a busy 2-core machine falls behind.
BENIGN_ERRORS = {"bufferSeekOverHole", "bufferStalledError", "bufferNudgeOnStall"}


def wait_for_segments(service: ServiceThread, channel: str) -> None:
    deadline = time.monotonic() + SEGMENTS_TIMEOUT_S
    while len(service.call(service.store.last_segments(BUCKET, channel, 3))) < 3:
        assert time.monotonic() < deadline, f"{channel}: fewer than 3 segments"
        time.sleep(0.2)


@pytest.mark.parametrize("acl", [Acl.PUBLIC_READ, Acl.PRIVATE])
def test_hlsjs_plays_live_channel(tmp_path: Path, acl: Acl) -> None:
    service = ServiceThread(tmp_path / "data", acl=acl).start()
    publisher = None
    try:
        bucket = service.bucket()
        create_channel(bucket, "show", frag_duration=2, frag_count=SEGMENTS_BEFORE_PLAY)
        publisher = publishers.start(
            publishers.ffmpeg_live(
                service.signed_publish_url("show"), duration_s=PUSH_S, gop_s=1, bframes=2
            )
        )
        with PlayerServer() as page:
            wait_for_segments(service, "show")
            src = f"{service.endpoint}/{BUCKET}/show/playlist.m3u8"
            if acl == Acl.PRIVATE:
                denied = play_in_chromium(page, src, seconds=PLAY_S, budget_s=DENIED_BUDGET_S,
                                          workdir=tmp_path / "denied")  # fmt: skip
                # The page can read the 403 itself: error answers carry CORS headers too.
                assert denied["outcome"] == "fatal", denied
                assert denied["fatal"] == "manifestLoadError", denied
                assert [e["status"] for e in denied["errors"]] == [403], denied
                src = bucket.sign_url(
                    "GET", "show/playlist.m3u8", 300, params={"x-oss-process": "hls/sign"}
                )
            assert urlsplit(src).port != urlsplit(page.origin).port  # cross-origin
            report = play_in_chromium(
                page, src, seconds=PLAY_S, budget_s=PLAY_BUDGET_S, workdir=tmp_path / "chromium"
            )
    finally:
        if publisher is not None:
            publishers.stop(publisher)
        service.stop()

    assert report["hls_version"] == HLSJS_VERSION, report
    assert report["outcome"] == "played", report
    assert report["fatal"] is None and report["media_error"] is None, report
    assert report["current_time_s"] - report["start_time_s"] >= PLAY_S, report
    assert (report["width"], report["height"]) == (WIDTH, HEIGHT), report
    assert report["video_frames"] >= PLAY_S * 25, report  # 30 fps, some slack
    assert report["audio_bytes"] > 0 and report["video_bytes"] > 0, report
    assert [e for e in report["errors"] if e["details"] not in BENIGN_ERRORS] == [], report
    assert len(report["frags"]) >= 2, report
    for url in report["frags"]:
        parts = urlsplit(url)
        assert parts.port == urlsplit(service.endpoint).port, url
        assert parts.path.startswith(f"/{BUCKET}/show/") and parts.path.endswith(".ts"), url
        signed = "Signature=" in parts.query
        assert signed == (acl == Acl.PRIVATE), url
