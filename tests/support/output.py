"""What a push left behind, checked the one way every end-to-end test checks it: the playlist
against RFC 8216 and the segment index, every segment decoded on its own by PyAV (and, when
asked, by the ffmpeg CLI), and the cuts where FragDuration and the GOP put them."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import m3u8

from livechannel.store.base import Segment
from tests.support.hls import SegmentProbe, ffmpeg_decode_errors, probe_segment
from tests.support.hls_validator import assert_segments_exist, validate_media_playlist
from tests.support.rtmp_publisher import read_flv
from tests.support.service import BUCKET, ServiceThread

AV_SYNC_TOLERANCE_S = 0.1  # A/V start PTS within 100 ms in every segment
CUT_TOLERANCE_MS = 150  # one frame at 30 fps plus AAC frame granularity
EXTINF_TOLERANCE_MS = 1  # EXTINF is rendered with millisecond precision
ENDLIST_TIMEOUT_S = 10.0
# FragCount's maximum (OSS API reference, PutLiveChannel): the playlist lists every segment.
LIST_ALL = 100
END_GRACE_S = 0.3  # a service started with this writes ENDLIST soon after a push (default 10 s)


@dataclass(frozen=True)
class Cuts:
    """Where segments must end: at the first keyframe once FragDuration is reached, so each
    (but the last, which ends with the push) lasts between FragDuration and FragDuration plus
    one GOP."""

    frag_duration_s: int
    gop_s: float


@dataclass(frozen=True)
class Output:
    """What a push left behind, checked against RFC 8216 and decoded."""

    playlist: m3u8.M3U8
    segments: list[Segment]  # every indexed segment of the channel, oldest first
    probes: list[SegmentProbe]  # one per segment

    @property
    def video_frames(self) -> int:
        return sum(p.video_frames for p in self.probes)

    @property
    def audio_frames(self) -> int:
        return sum(p.audio_frames for p in self.probes)


def indexed_segments(svc: ServiceThread, channel: str) -> list[Segment]:
    return svc.call(svc.store.segments_between(BUCKET, channel, 0, 2**62))


def check_output(
    svc: ServiceThread,
    channel: str,
    *,
    playlist: str = "playlist.m3u8",
    window: int | None = None,
    ended: bool = False,
    min_segments: int = 1,
    cuts: Cuts | None = None,
    require_audio: bool = False,
    ffmpeg_decode: bool = False,
) -> Output:
    """Check a channel once its push is over and return what was found.

    The playlist is valid (RFC 8216) and names only stored segments: the last `window` of the
    index (None: every indexed segment, for a channel created with `LIST_ALL`), with the
    index's MEDIA-SEQUENCE, durations and discontinuities. `ended`: wait for the ENDLIST the
    end-of-stream grace writes first. Every indexed segment has its stored size, decodes on
    its own without an error, starts with a keyframe and holds video; where it holds audio
    (`require_audio`: it must), the audio starts within 100 ms of the video. `cuts`: segment
    durations follow FragDuration and the GOP. `ffmpeg_decode`: the ffmpeg CLI also decodes
    every segment without an error."""
    svc.wait_idle(channel)
    key = f"{channel}/{playlist}"
    text = wait_endlist(svc, key) if ended else svc.object_path(key).read_text()
    parsed = validate_media_playlist(text)
    assert_segments_exist(parsed, lambda uri: svc.object_path(f"{channel}/{uri}").exists())
    segments = indexed_segments(svc, channel)
    assert len(segments) >= min_segments, [s.key for s in segments]
    listed = segments if window is None else segments[-window:]
    if window is not None:
        assert len(parsed.segments) == window, text
    assert [s.uri for s in parsed.segments] == [s.key.rsplit("/", 1)[1] for s in listed], text
    assert parsed.media_sequence == listed[0].seq, text
    for entry, seg in zip(parsed.segments, listed, strict=True):
        assert abs(entry.duration * 1000 - seg.duration_ms) <= EXTINF_TOLERANCE_MS, seg
        assert entry.discontinuity == seg.discontinuity, seg
    if cuts is not None:
        for seg in segments[:-1]:  # the last one was flushed at the end of the push
            assert cuts.frag_duration_s * 1000 - CUT_TOLERANCE_MS <= seg.duration_ms, seg
            longest_ms = (cuts.frag_duration_s + cuts.gop_s) * 1000 + CUT_TOLERANCE_MS
            assert seg.duration_ms <= longest_ms, seg
    probes = []
    for seg in segments:
        path = svc.object_path(seg.key)
        assert path.stat().st_size == seg.size, seg
        probe = probe_segment(path)
        assert probe.decode_errors == [], (seg.key, probe.decode_errors)
        assert probe.video_frames > 0 and probe.starts_with_keyframe, (seg.key, probe)
        if require_audio:
            assert probe.audio_frames > 0, seg.key
        if probe.audio_frames:
            assert probe.video_start_s is not None and probe.audio_start_s is not None
            assert abs(probe.video_start_s - probe.audio_start_s) <= AV_SYNC_TOLERANCE_S, (
                seg.key,
                probe.video_start_s,
                probe.audio_start_s,
            )
        if ffmpeg_decode:
            assert ffmpeg_decode_errors(path) == "", seg.key
        probes.append(probe)
    return Output(parsed, segments, probes)


def wait_endlist(svc: ServiceThread, key: str) -> str:
    """The playlist once the end-of-stream grace has passed. Players are pointed at it only
    then: at the live edge ffmpeg waits TARGETDURATION/2 for an unchanged playlist (RFC 8216
    6.3.4), which would make each case take 30 s."""
    deadline = time.monotonic() + ENDLIST_TIMEOUT_S
    while not (text := svc.object_path(key).read_text()).rstrip().endswith("#EXT-X-ENDLIST"):
        assert time.monotonic() < deadline, f"{key}: no ENDLIST after the grace period\n{text}"
        time.sleep(0.05)
    return text


def assert_plays(svc: ServiceThread, channel: str, playlist: str = "playlist.m3u8") -> None:
    """ffmpeg's HLS demuxer plays the playlist through, as a player would: no error output.

    ffmpeg ignores EXT-X-DISCONTINUITY (it guesses clock jumps from the timestamps, roughly
    enough that its own muxer then complains), so a playlist with discontinuities is played
    as the runs between them, each from a playlist of its own: what a player that resets at
    the tag (RFC 8216 6.3.3) sees."""
    path = svc.object_path(f"{channel}/{playlist}")
    parsed = m3u8.loads(path.read_text())
    runs: list[list[m3u8.Segment]] = []
    for segment in parsed.segments:
        if not runs or segment.discontinuity:
            runs.append([])
        runs[-1].append(segment)
    if len(runs) == 1:
        errors = ffmpeg_decode_errors(path)
        assert errors == "", errors
        return
    with tempfile.TemporaryDirectory() as tmp:
        for number, run in enumerate(runs):
            lines = [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                f"#EXT-X-TARGETDURATION:{parsed.target_duration}",
            ]
            for segment in run:
                lines += [f"#EXTINF:{segment.duration:.3f},", str(path.parent / segment.uri)]
            part = Path(tmp) / f"run{number}.m3u8"
            part.write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
            errors = ffmpeg_decode_errors(part)
            assert errors == "", (number, errors)


def flv_counts(flv: Path) -> tuple[int, int]:
    """(video frames, audio frames) of an FLV that a push must keep: AVC NALU and AAC raw tags
    (packet type 1), not sequence headers or the end-of-sequence tag; audio only from the
    first video frame on (segments start with a keyframe; audio before it has no segment)."""
    tags = [t for t in read_flv(flv) if t.type_id in (8, 9) and t.body[1] == 1]
    first_video = next(i for i, t in enumerate(tags) if t.type_id == 9)
    audio = sum(t.type_id == 8 for t in tags[first_video:])
    return sum(t.type_id == 9 for t in tags), audio
