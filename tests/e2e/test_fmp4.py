"""fMP4 segments end to end: real publishers (ffmpeg, PyAV) over real RTMP into a bucket
whose [hls] table says fmp4, or into a channel whose SegmentFormat element says so; then the
live playlist, the init section and every segment read back by PyAV and ffprobe, the VOD
playlist and a signed (hls/sign) playlist played by ffmpeg over HTTP."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import oss2
import pytest

from livechannel.config import HlsConfig
from livechannel.store.base import SegmentFormat
from tests.support import publishers
from tests.support.hls_validator import validate_media_playlist
from tests.support.media_oracle import decode_all
from tests.support.service import BUCKET, ServiceThread, create_channel

SAMPLE_FRAMES = 14 * 30  # sample_flv: 14 s at 30 fps
PUBLISH_TIMEOUT_S = 60


def fmp4_service(data_dir: Path, storage: dict[str, object] | None = None) -> ServiceThread:
    service = ServiceThread(data_dir, storage=storage)
    first = service.config.buckets[0]
    fmp4 = replace(first, hls=HlsConfig(SegmentFormat.FMP4))
    service.config = replace(service.config, buckets=(fmp4,))
    return service


def play(url: str) -> subprocess.CompletedProcess[str]:
    """ffmpeg plays the playlist over HTTP and decodes everything it lists."""
    cmd = ["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i", url, "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PUBLISH_TIMEOUT_S)


def read(service: ServiceThread, key: str) -> bytes:
    return service.object_path(key).read_bytes()


def check_channel(service: ServiceThread, channel: str, tmp_path: Path) -> None:
    """Everything the push wrote decodes, frame for frame, behind its init section."""
    segments = service.call(service.store.segments_between(BUCKET, channel, 0, 2**62))
    assert len(segments) >= 3
    assert all(s.key.endswith(".m4s") and s.init_key.endswith(".mp4") for s in segments)
    init_keys = {s.init_key for s in segments}
    assert len(init_keys) == 1  # one push, one configuration
    init = read(service, segments[0].init_key)
    playlist = read(service, f"{channel}/playlist.m3u8").decode()
    parsed = validate_media_playlist(playlist)
    assert "#EXT-X-VERSION:7" in playlist
    assert f'#EXT-X-MAP:URI="{segments[0].init_key.split("/")[1]}"' in playlist
    assert [s.uri for s in parsed.segments] == [s.key.split("/")[1] for s in segments[-3:]]
    total = 0
    for segment in segments:  # each on its own, as a player joining there
        video, _, logs, first_key = decode_all(init + read(service, segment.key))
        assert logs == [] and first_key, segment.key
        total += video
    assert total == SAMPLE_FRAMES
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(init + b"".join(read(service, s.key) for s in segments))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-count_frames", "-show_streams", str(whole)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert probe.stderr == ""
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert int(streams["video"]["nb_read_frames"]) == SAMPLE_FRAMES
    assert streams["audio"]["codec_name"] == "aac"


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_ffmpeg_into_an_fmp4_bucket(
    tmp_path: Path, sample_flv: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    storage = None
    if backend == "s3":
        moto = request.getfixturevalue("moto")
        storage = moto.storage_table(moto.new_bucket())
    with fmp4_service(tmp_path / "data", storage).start() as svc:
        bucket = svc.bucket()
        create_channel(bucket, "cam", frag_duration=2)
        url = svc.signed_publish_url("cam")
        r = publishers.run(publishers.ffmpeg_copy(sample_flv, url, realtime=False),
                           timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
        assert r.returncode == 0, r.stderr
        svc.wait_idle("cam")
        check_channel(svc, "cam", tmp_path)
        # hls/sign: the init section's URI is signed too, and ffmpeg plays it all.
        signed = bucket.sign_url(
            "GET", "cam/playlist.m3u8", 300, params={"x-oss-process": "hls/sign"}
        )
        text = oss2.http.requests.get(signed, timeout=10).text
        map_line = next(line for line in text.splitlines() if line.startswith("#EXT-X-MAP:"))
        assert "Signature=" in map_line and "OSSAccessKeyId=" in map_line
        result = play(signed)
        assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_pyav_into_a_channel_whose_segment_format_says_fmp4(
    service: ServiceThread, tmp_path: Path, sample_flv: Path
) -> None:
    """A TS bucket; the channel's SegmentFormat extension element asks for fMP4."""
    bucket = service.bucket()
    body = (
        b"<LiveChannelConfiguration><Status>enabled</Status><Target><Type>HLS</Type>"
        b"<FragDuration>2</FragDuration><FragCount>3</FragCount>"
        b"<SegmentFormat>fmp4</SegmentFormat></Target>"
        b"<Snapshot><RoleName>r</RoleName><DestBucket></DestBucket><NotifyTopic>t</NotifyTopic>"
        b"<Interval>2</Interval></Snapshot></LiveChannelConfiguration>"
    )
    bucket._Bucket__do_object("PUT", "cam", data=body, params={"live": ""})  # type: ignore[attr-defined]
    info = bucket.get_live_channel("cam")  # the unmodified SDK still reads the answer
    assert str(info.target.frag_duration) == "2"
    raw = bucket._Bucket__do_object("GET", "cam", params={"live": ""}).read()  # type: ignore[attr-defined]
    assert b"<SegmentFormat>fmp4</SegmentFormat>" in raw
    create_channel(bucket, "plain", frag_duration=2)
    plain_raw = bucket._Bucket__do_object("GET", "plain", params={"live": ""}).read()  # type: ignore[attr-defined]
    assert b"SegmentFormat" not in plain_raw  # OSS's answer, unchanged, where unset
    r = publishers.run(publishers.pyav(sample_flv, service.signed_publish_url("cam"),
                                       realtime=False), timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
    assert r.returncode == 0, r.stderr
    service.wait_idle("cam")
    check_channel(service, "cam", tmp_path)
    # Snapshots work the same on fMP4 channels (they decode the H.264 keyframes).
    jpegs = list(service.object_path("cam").glob("*.jpg"))
    assert jpegs and all(j.read_bytes()[:2] == b"\xff\xd8" for j in jpegs)
    start_s = service.call(service.store.segments_between(BUCKET, "cam", 0, 2**62))[0].start_ms
    vod = bucket._Bucket__do_object(  # type: ignore[attr-defined]
        "GET", "cam", params={"vod": "", "startTime": str(start_s // 1000 - 1),
                              "endTime": str(start_s // 1000 + 3600)},
    ).read().decode()  # fmt: skip
    validate_media_playlist(vod)
    assert "#EXT-X-MAP:URI=" in vod and "#EXT-X-PLAYLIST-TYPE:VOD" in vod


def test_bad_segment_format_is_refused(service: ServiceThread) -> None:
    bucket = service.bucket()
    body = (
        b"<LiveChannelConfiguration><Target><Type>HLS</Type>"
        b"<SegmentFormat>mkv</SegmentFormat></Target></LiveChannelConfiguration>"
    )
    with pytest.raises(oss2.exceptions.ServerError) as e:
        bucket._Bucket__do_object("PUT", "cam", data=body, params={"live": ""})  # type: ignore[attr-defined]
    assert e.value.status == 400 and e.value.code == "InvalidArgument"
