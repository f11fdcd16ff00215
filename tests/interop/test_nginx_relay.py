"""nginx-rtmp's `push` relay as a publisher: ffmpeg → nginx → us → HLS checked by decoders.

nginx's relay client is the odd one (rtmp-clients.md): digest handshake with a real digest C2,
no releaseStream/FCPublish, no `@setDataFrame`, media before `Publish.Start`, no
FCUnpublish/deleteStream (it just closes), and it retries every `push_reconnect` after a
refusal. It splits a push URL's path at its first `/` (app `<bucket>`, stream name
`live/<channel>?..` for oss2's path-style URL), unlike ffmpeg (app `<bucket>/live`): the
service resolves the publish from the whole path, so every URL form is pushed here verbatim,
the way a user pastes it into nginx.conf.

nginx-rtmp forwards a codec's sequence header only just before that codec's first frame, and
with no `@setDataFrame` nothing announces the audio track, so the first keyframe comes before
the AAC config. The segmenter folds audio that arrives within TRACK_PROBE_MS of a push's first
segment into that segment, so the output starts with both tracks (hls.js cannot add an audio
track once playback started).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import oss2

from livechannel.config import BucketConfig
from livechannel.store.base import Acl
from tests.interop.browser import PlayerServer, play_in_chromium
from tests.interop.nginx_relay import NginxRelay, PushTarget
from tests.support import publishers
from tests.support.hls import probe_segment
from tests.support.output import AV_SYNC_TOLERANCE_S, Cuts, check_output
from tests.support.service import BUCKET, ServiceThread, create_channel

PUSH_S = 12  # six 2 s GOPs: five full segments and a flushed tail
VHOST_PUSH_S = 6  # three 2 s GOPs: enough to see segments land in the right bucket
REFUSED_FOR_S = 5  # the channel stays disabled this long: nginx is refused, retries, then joins
FIRST_SEGMENT_PUSH_S = 8  # four segments: the video-only one and three with audio
FIRST_SEGMENT_PLAY_S = 4.0  # past the track change at 2 s
PLAY_BUDGET_S = 20.0


class PlaybackFailed(AssertionError):
    """hls.js did not play: raised only for the player's own verdict, so a broken set-up
    cannot pass for the expected failure."""


def plain_form(signed_url: str) -> str:
    """oss2's `rtmp://h:p/<bucket>/live/<chan>?q` → `rtmp://h:p/live/<chan>?q` (default bucket);
    the signature covers `/<bucket>/<chan>`, not the URL's shape, so it stays valid."""
    parts = urlsplit(signed_url)
    bucket, rest = parts.path.lstrip("/").split("/", 1)
    assert bucket == BUCKET
    return urlunsplit(parts._replace(path="/" + rest))


def check_relay_output(service: ServiceThread, channel: str, *, min_segments: int) -> None:
    """check_output's checks, with audio required from the segment where it joined on."""
    check_output(
        service,
        channel,
        window=3,
        cuts=Cuts(2, 2),
        min_segments=min_segments,
        require_audio=False,
        ffmpeg_decode=True,
    )
    segments = service.call(service.store.segments_between(BUCKET, channel, 0, 2**62))
    probes = [probe_segment(service.object_path(s.key)) for s in segments]
    with_audio = [p.audio_frames > 0 for p in probes]
    joined = with_audio.index(True)
    assert joined == 0 and all(with_audio), with_audio  # audio from the first segment on
    for seg, probe in zip(segments[joined:], probes[joined:], strict=True):
        assert probe.sample_rate == 44_100, seg.key
        assert probe.video_start_s is not None and probe.audio_start_s is not None
        assert abs(probe.video_start_s - probe.audio_start_s) <= AV_SYNC_TOLERANCE_S, seg.key


def push_through(relay: NginxRelay, duration_s: int) -> publishers.subprocess.Popen[str]:
    return publishers.start(
        publishers.ffmpeg_live(relay.publish_url, duration_s=duration_s, gop_s=2, bframes=2)
    )


def finish(proc: publishers.subprocess.Popen[str], duration_s: int) -> None:
    _, err = proc.communicate(timeout=duration_s + publishers.PUBLISH_TIMEOUT_MARGIN_S)
    assert proc.returncode == 0, err


def test_nginx_push_with_plain_signed_url(service: ServiceThread, tmp_path: Path) -> None:
    create_channel(service.bucket(), "relayed", frag_duration=2, frag_count=3)
    url = plain_form(service.signed_publish_url("relayed", rtmp_port=True))
    relay = NginxRelay(tmp_path / "nginx", PushTarget(url)).start()
    try:
        finish(push_through(relay, PUSH_S), PUSH_S)
        check_relay_output(service, "relayed", min_segments=5)
    finally:
        relay.stop()
    history = service.call(service.store.history(BUCKET, "relayed", 10))
    assert len(history) == 1, (history, relay.log()[-3000:])


def test_nginx_push_path_style_joins_mid_stream_after_refusals(
    service: ServiceThread, tmp_path: Path
) -> None:
    bucket = service.bucket()
    create_channel(bucket, "late", frag_duration=2, frag_count=3)
    bucket.put_live_channel_status("late", "disabled")
    # oss2.Bucket.sign_rtmp_url's path-style URL as is: nginx sends app `live` (the bucket),
    # stream name `live/late?...`.
    target = PushTarget(service.signed_publish_url("late", rtmp_port=True))
    relay = NginxRelay(tmp_path / "nginx", target).start()
    duration_s = PUSH_S + REFUSED_FOR_S
    try:
        proc = push_through(relay, duration_s)
        time.sleep(REFUSED_FOR_S)
        assert service.call(service.store.live_push(BUCKET, "late")) is None
        bucket.put_live_channel_status("late", "enabled")
        finish(proc, duration_s)
        check_relay_output(service, "late", min_segments=4)
    finally:
        relay.stop()
    history = service.call(service.store.history(BUCKET, "late", 10))
    assert len(history) == 1, (history, relay.log()[-3000:])


def test_nginx_push_virtual_host_url(tmp_path: Path) -> None:
    """`rtmp://<bucket>.<domain>/live/<channel>?..`: the bucket comes from the host in tcUrl
    (nginx connects to 127.0.0.1 and sends the URL's host name through `tcUrl=`)."""
    domain, bucket_name = "vh.test", "cams"
    extra = (BucketConfig(bucket_name, Acl.PRIVATE),)
    with ServiceThread(tmp_path / "data", domain=domain, extra_buckets=extra).start() as service:
        cams = oss2.Bucket(service.bucket().auth, service.endpoint, bucket_name)
        create_channel(cams, "vh", frag_duration=2, frag_count=3)
        signed = cams.sign_rtmp_url("vh", "playlist.m3u8", 3600)
        query = urlsplit(signed).query
        port = service.rtmp_port
        target = PushTarget(f"rtmp://127.0.0.1:{port}/live/vh?{query}",
                            tc_url=f"rtmp://{bucket_name}.{domain}:{port}/live")  # fmt: skip
        relay = NginxRelay(tmp_path / "nginx", target).start()
        try:
            finish(push_through(relay, VHOST_PUSH_S), VHOST_PUSH_S)
            service.wait_idle("vh", bucket=bucket_name)
        finally:
            relay.stop()
        assert service.call(service.store.history(BUCKET, "vh", 10)) == []
        assert len(service.call(service.store.history(bucket_name, "vh", 10))) == 1, relay.log()
        segments = service.call(service.store.segments_between(bucket_name, "vh", 0, 2**62))
        assert len(segments) >= 2
        probe = probe_segment(service.object_path(segments[-1].key, bucket=bucket_name))
        assert probe.video_frames > 0 and probe.audio_frames > 0


def test_hlsjs_plays_nginx_relayed_push_from_its_first_segment(tmp_path: Path) -> None:
    service = ServiceThread(tmp_path / "data", acl=Acl.PUBLIC_READ).start()
    try:
        create_channel(service.bucket(), "relayed", frag_duration=2, frag_count=10)
        url = plain_form(service.signed_publish_url("relayed", rtmp_port=True))
        relay = NginxRelay(tmp_path / "nginx", PushTarget(url)).start()
        try:
            finish(push_through(relay, FIRST_SEGMENT_PUSH_S), FIRST_SEGMENT_PUSH_S)
            service.wait_idle("relayed")
        finally:
            relay.stop()
        src = f"{service.endpoint}/{BUCKET}/relayed/playlist.m3u8"
        with PlayerServer() as page:
            report: dict[str, Any] = play_in_chromium(
                page,
                src,
                seconds=FIRST_SEGMENT_PLAY_S,
                budget_s=PLAY_BUDGET_S,
                workdir=tmp_path / "chromium",
                start_s=0,
            )
    finally:
        service.stop()
    if report["outcome"] != "played" or not report["audio_bytes"]:
        raise PlaybackFailed(report)
