"""Enhanced RTMP end to end: a PyAV publisher (libavformat's FLV muxer and RTMP client, which
write the ExVideoTagHeader with the `hvc1` / `av01` FourCC) sends HEVC or AV1 + AAC over real
RTMP into an fMP4 bucket; PyAV and ffprobe then decode every frame behind the init section,
each segment alone too. Into an MPEG-TS channel the same publish is refused, readably."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from dataclasses import replace
from pathlib import Path

import av
import pytest

from livechannel.config import BucketConfig, HlsConfig
from livechannel.media.flv import iter_flv_tags
from livechannel.store.base import SegmentFormat
from samples.make_sample import SampleSpec, make_sample
from tests.support import publishers
from tests.support.hls_validator import validate_media_playlist
from tests.support.media_oracle import decode_all
from tests.support.service import BUCKET, ServiceThread, create_channel

SECONDS, FPS = 6, 30
PUBLISH_TIMEOUT_S = 60
CODECS = {"libx265": ("hevc", "HEVC", "hvc1.1."), "libsvtav1": ("av1", "AV1", "av01.0.")}


@pytest.fixture(scope="module", params=sorted(CODECS))
def enhanced_flv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    codec: str = request.param
    spec = SampleSpec(duration_s=SECONDS, width=320, height=240, fps=FPS, gop_s=1.0,
                      video_bitrate=300_000, video_codec=codec)  # fmt: skip
    return codec, make_sample(tmp_path_factory.mktemp("erTMP") / f"{codec}.flv", spec)


def fmp4_service(data_dir: Path) -> ServiceThread:
    service = ServiceThread(data_dir)
    fmp4 = replace(service.config.buckets[0], hls=HlsConfig(SegmentFormat.FMP4))
    service.config = replace(service.config, buckets=(fmp4,))
    return service


def test_pyav_publishes_over_enhanced_rtmp_into_fmp4(
    enhanced_flv: tuple[str, Path], tmp_path: Path
) -> None:
    codec, flv = enhanced_flv
    ffprobe_name, our_name, codec_prefix = CODECS[codec]
    with fmp4_service(tmp_path / "data").start() as svc:
        create_channel(svc.bucket(), "cam", frag_duration=1)
        r = publishers.run(publishers.pyav(flv, svc.signed_publish_url("cam"), realtime=False),
                           timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
        assert r.returncode == 0, r.stderr
        svc.wait_idle("cam")
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
        assert len(segments) >= 3 and all(s.key.endswith(".m4s") for s in segments)
        init = svc.object_path(segments[0].init_key).read_bytes()
        data = [svc.object_path(s.key).read_bytes() for s in segments]
        validate_media_playlist(svc.object_path("cam/playlist.m3u8").read_text())
        # The push's last figures (history) name the codec with its RFC 6381 string.
        last = svc.call(svc.store.history(BUCKET, "cam", 1))[0]
        video = json.loads(last.stats_json)["video"]
        assert video["codec"] == our_name and video["codecs"].startswith(codec_prefix)
        assert (video["width"], video["height"]) == (320, 240)
    total = 0
    for segment in data:
        video, audio, logs, first_key = decode_all(init + segment)
        assert logs == [] and first_key and video > 0 and audio > 0
        total += video
    assert total == SECONDS * FPS
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(init + b"".join(data))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-count_frames", "-show_streams", str(whole)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert probe.stderr == ""
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["video"]["codec_name"] == ffprobe_name
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert int(streams["video"]["nb_read_frames"]) == SECONDS * FPS
    assert streams["audio"]["codec_name"] == "aac"


def test_enhanced_codecs_into_a_ts_channel_are_refused(
    service: ServiceThread, enhanced_flv: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    codec, flv = enhanced_flv
    create_channel(service.bucket(), "cam", frag_duration=1)
    with caplog.at_level(logging.INFO, logger="livechannel"):
        # libavformat may or may not notice the close before it has written everything.
        publishers.run(publishers.pyav(flv, service.signed_publish_url("cam"), realtime=False),
                       timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
        service.wait_idle("cam")
    assert service.call(service.store.last_segments(BUCKET, "cam", 1)) == []
    assert f"{CODECS[codec][1]} video needs fMP4 segments" in caplog.text


def test_opus_over_enhanced_rtmp_into_fmp4_and_dropped_from_ts(tmp_path: Path) -> None:
    """H.264 + Opus (the v2 audio FourCC) from PyAV: fMP4 carries the Opus track (every packet,
    decodable); an MPEG-TS channel keeps the video and drops the audio it cannot carry."""
    spec = SampleSpec(duration_s=SECONDS, width=320, height=240, fps=FPS, gop_s=1.0,
                      sample_rate=48_000, audio_codec="libopus")  # fmt: skip
    flv = make_sample(tmp_path / "opus.flv", spec)
    sent = sum(1 for t, _, b in iter_flv_tags(flv.read_bytes()) if t == 8 and b[0] & 0x0F == 1)
    service = fmp4_service(tmp_path / "data")
    ts_bucket = BucketConfig("tsb", service.config.buckets[0].acl)
    service.config = replace(service.config, buckets=(*service.config.buckets, ts_bucket))
    with service.start() as svc:
        for bucket in (BUCKET, "tsb"):
            create_channel(svc.bucket(bucket), "cam", frag_duration=1)
            url = svc.bucket(bucket).sign_rtmp_url("cam", "playlist.m3u8", 3600)
            r = publishers.run(publishers.pyav(flv, url, realtime=False),
                               timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
            assert r.returncode == 0, r.stderr
            svc.wait_idle("cam", bucket)
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
        init = svc.object_path(segments[0].init_key).read_bytes()
        whole = init + b"".join(svc.object_path(s.key).read_bytes() for s in segments)
        ts_segments = svc.call(svc.store.segments_between("tsb", "cam", 0, 2**62))
        ts_data = b"".join(svc.object_path(s.key, "tsb").read_bytes() for s in ts_segments)
    video, audio, logs, first_key = decode_all(whole)
    assert logs == [] and first_key and video == SECONDS * FPS
    assert audio == sent  # every Opus packet the publisher sent
    (tmp_path / "whole.mp4").write_bytes(whole)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(tmp_path / "whole.mp4")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["audio"]["codec_name"] == "opus" and streams["audio"]["sample_rate"] == "48000"
    with av.open(io.BytesIO(ts_data), format="mpegts") as ts:
        assert [s.type for s in ts.streams] == ["video"]
