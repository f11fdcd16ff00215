"""Push, disconnect, republish, restart the service, republish again — one playlist
whose MEDIA-SEQUENCE only grows, with DISCONTINUITY tags, ENDLIST after the grace period, and
no segment name reused."""

from __future__ import annotations

import time
from pathlib import Path

from samples.make_sample import SampleSpec, make_sample
from tests.support import publishers
from tests.support.hls_validator import (
    PlaylistHistory,
    assert_segments_exist,
    validate_media_playlist,
)
from tests.support.service import BUCKET, ServiceThread, create_channel

GRACE_S = 2.0


def push(svc: ServiceThread, flv: Path) -> None:
    r = publishers.run(publishers.ffmpeg_copy(flv, svc.signed_publish_url("re")), timeout_s=40)
    assert r.returncode == 0, r.stderr
    svc.wait_idle("re")


def test_republish_and_restart_continue_one_playlist(tmp_path: Path, sample_dir: Path) -> None:
    flv = make_sample(
        sample_dir / "short.flv", SampleSpec(duration_s=7, width=320, height=180, gop_s=1)
    )
    data = tmp_path / "data"
    history = PlaylistHistory()
    playlist = lambda svc: svc.object_path("re/playlist.m3u8").read_text()  # noqa: E731

    svc = ServiceThread(data, end_grace_s=GRACE_S).start()
    try:
        create_channel(svc.bucket(), "re", frag_duration=1, frag_count=4)
        push(svc, flv)
        first = history.add(playlist(svc))
        assert "#EXT-X-ENDLIST" not in playlist(svc)
        push(svc, flv)  # republish within the grace period
        second = history.add(playlist(svc))
        assert second.media_sequence > first.media_sequence
        # The second push's first segment is a discontinuity (it may have scrolled out of the
        # 4-segment window already, then DISCONTINUITY-SEQUENCE counts it).
        assert (
            any(seg.discontinuity for seg in second.segments) or second.discontinuity_sequence == 1
        )
    finally:
        svc.stop()

    svc = ServiceThread(data, end_grace_s=GRACE_S).start()  # a restart: state from the store
    try:
        push(svc, flv)
        third = history.add(playlist(svc))
        assert third.media_sequence > second.media_sequence
        assert any(seg.discontinuity for seg in third.segments) or third.discontinuity_sequence == 2
        time.sleep(GRACE_S + 1.5)
        text = playlist(svc)
        final = history.add(text)
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        assert_segments_exist(final, lambda uri: svc.object_path(f"re/{uri}").exists())
        segments = svc.call(svc.store.segments_between(BUCKET, "re", 0, 2**62))
        keys = [s.key for s in segments]
        assert len(keys) == len(set(keys))
        assert [s.seq for s in segments] == list(range(len(segments)))
        assert sum(s.discontinuity for s in segments) == 2  # second and third push
        # A new push removes ENDLIST and continues with a discontinuity.
        push(svc, flv)
        again = validate_media_playlist(playlist(svc))
        history.add(playlist(svc))
        assert "#EXT-X-ENDLIST" not in playlist(svc)
        assert again.media_sequence > final.media_sequence
    finally:
        svc.stop()
