"""Real media: PyAV-encoded H.264/AAC in FLV → Demuxer → Segmenter → TS that PyAV and ffmpeg
decode on their own, segment by segment, with no errors."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from livechannel.hls.playlist import MediaPlaylist, PlaylistEntry, render, target_duration_s
from livechannel.hls.segmenter import TRACK_PROBE_MS, Segmenter
from livechannel.hls.segments import CutReason, SegmentReady
from livechannel.media.demux import Demuxer
from samples.make_sample import SampleSpec, make_sample
from tests.support.hls import probe_segment
from tests.support.hls_validator import assert_segments_exist, validate_media_playlist

FLV_AUDIO, FLV_VIDEO = 8, 9
FPS = 30
DURATION_S = 9


def flv_tags(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(tag type, timestamp ms, body) of an FLV file (FLV spec E.4.1)."""
    data = path.read_bytes()
    assert data[:3] == b"FLV"
    offset = struct.unpack(">I", data[5:9])[0] + 4  # header, then PreviousTagSize0
    while offset + 11 <= len(data):
        kind = data[offset]
        size = int.from_bytes(data[offset + 1 : offset + 4], "big")
        ts = int.from_bytes(data[offset + 4 : offset + 7], "big") | data[offset + 7] << 24
        yield kind, ts, data[offset + 11 : offset + 11 + size]
        offset += 11 + size + 4


def segment_flv(tags: list[tuple[int, int, bytes]], frag_ms: int) -> list[SegmentReady]:
    demuxer, seg = Demuxer(), Segmenter(frag_ms)
    out: list[SegmentReady] = []
    for kind, ts, body in tags:
        if kind == FLV_VIDEO:
            events = demuxer.video(ts, body)
        elif kind == FLV_AUDIO:
            events = demuxer.audio(ts, body)
        else:
            continue
        for event in events:
            out += seg.push(event, 1_000_000 + ts)
    return out + seg.flush(0)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SampleSpec(duration_s=DURATION_S, width=320, height=180, fps=FPS, gop_s=1.0, bframes=2)
    return make_sample(tmp_path_factory.mktemp("flv") / "gop1.flv", spec)


def ffmpeg_decode_errors(path: Path) -> str:
    """ffmpeg's own decode of one segment; empty means clean. Output timestamps stay at
    90 kHz: at the default 1/fps, 30 fps ms-rounded PTS collide in the null muxer and
    ffmpeg warns about its own output, not about our stream."""
    r = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i", str(path),
         "-enc_time_base", "1/90000", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return r.stderr.strip() + ("" if r.returncode == 0 else f" (exit {r.returncode})")


def decoded_video_frames(path: Path) -> int:
    """Decode the segment's video alone, flushing the decoder at the end (B-frame delay)."""
    with av.open(str(path)) as container:
        return sum(len(packet.decode()) for packet in container.demux(video=0))


def write_and_probe(out: list[SegmentReady], tmp_path: Path) -> list[Path]:
    paths = []
    for i, ready in enumerate(out):
        path = tmp_path / f"{ready.arrival_ms}-{i}.ts"
        path.write_bytes(ready.data)
        paths.append(path)
    return paths


def test_pyav_h264_aac_segments_decode_cleanly(sample: Path, tmp_path: Path) -> None:
    out = segment_flv(list(flv_tags(sample)), frag_ms=2_000)
    assert [r.reason for r in out] == [CutReason.KEYFRAME] * 4 + [CutReason.END]
    assert [r.duration_ms for r in out[:-1]] == [2_000] * 4
    assert not any(r.discontinuity for r in out)
    video_frames = 0
    for path in write_and_probe(out, tmp_path):
        probe = probe_segment(path)
        assert probe.decode_errors == [], path.name
        assert probe.starts_with_keyframe, f"{path.name} does not start with an IDR"
        assert (probe.width, probe.height) == (320, 180)
        assert probe.audio_frames > 0 and probe.sample_rate == 44_100
        assert ffmpeg_decode_errors(path) == ""
        video_frames += decoded_video_frames(path)
    assert video_frames == DURATION_S * FPS  # every frame decodes, exactly once

    target = target_duration_s(2, Segmenter(2_000).max_segment_ms)
    names = [p.name for p in write_and_probe(out, tmp_path)]
    playlist = MediaPlaylist(
        target,
        0,
        0,
        tuple(
            PlaylistEntry(name, r.duration_ms, r.discontinuity)
            for name, r in zip(names, out, strict=True)
        ),
        ended=True,
    )
    parsed = validate_media_playlist(render(playlist))
    assert_segments_exist(parsed, lambda uri: (tmp_path / uri).is_file())


def test_late_audio_header_joins_with_a_discontinuity_and_decodes(
    sample: Path, tmp_path: Path
) -> None:
    """A publisher whose AAC header comes 2.5 s in: the segment then open (from 2 s) is cut
    at the next keyframe (3 s) short of FragDuration, so audio joins as early as it can."""
    tags = list(flv_tags(sample))
    header = next(t for t in tags if t[0] == FLV_AUDIO and t[2][1] == 0)
    late = [t for t in tags if t is not header and not (t[0] == FLV_AUDIO and t[1] < 2_500)]
    first_late_audio = next(i for i, t in enumerate(late) if t[0] == FLV_AUDIO)
    late.insert(first_late_audio, header)
    out = segment_flv(late, frag_ms=2_000)
    assert [(r.reason, r.discontinuity) for r in out[:3]] == [
        (CutReason.KEYFRAME, False),
        (CutReason.TRACKS, False),
        (CutReason.KEYFRAME, True),
    ]
    assert [r.first_dts_ms for r in out[:4]] == [0, 2_000, 3_000, 5_000]
    for i, path in enumerate(write_and_probe(out, tmp_path)):
        probe = probe_segment(path)
        assert probe.decode_errors == [] and probe.starts_with_keyframe
        assert ffmpeg_decode_errors(path) == ""
        assert (probe.audio_frames > 0) == (i >= 2)


@pytest.mark.parametrize("take_every", [1, 7])
def test_bytes_taken_while_open_are_the_segment_exactly(sample: Path, take_every: int) -> None:
    """`take_open` (storage writes the open segment as it grows) hands out exactly the
    segment's bytes, in order, the rest coming with its SegmentReady; nothing during the
    first segment's late-audio window, and the same cuts as without taking."""
    tags = list(flv_tags(sample))
    whole = [s.data for s in segment_flv(tags, 2000)]
    demuxer, seg = Demuxer(), Segmenter(2000)
    taken: list[bytes] = []
    streamed: list[bytes] = []
    opened: list[int] = []
    for n, (kind, ts, body) in enumerate(tags):
        if kind not in (FLV_VIDEO, FLV_AUDIO):
            continue
        events = demuxer.video(ts, body) if kind == FLV_VIDEO else demuxer.audio(ts, body)
        for event in events:
            for ready in seg.push(event, 1_000_000 + ts):
                streamed.append(b"".join(taken) + ready.data)
                assert len(streamed[-1]) == ready.size
                taken = []
        if n % take_every == 0 and seg.open_untaken_bytes:
            opened.append(ts)  # when bytes were first handed out
            taken += seg.take_open()
            assert seg.open_untaken_bytes == 0
    for ready in seg.flush(0):
        streamed.append(b"".join(taken) + ready.data)
    assert streamed == whole
    assert opened and min(opened) > TRACK_PROBE_MS  # not while the first segment may be re-muxed
