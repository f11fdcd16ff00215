"""Oracles for what we wrote: PyAV and the ffmpeg CLI decode our segments independently."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True)
class SegmentProbe:
    video_frames: int
    audio_frames: int
    starts_with_keyframe: bool
    video_start_s: float | None
    audio_start_s: float | None
    video_end_s: float | None
    width: int
    height: int
    sample_rate: int
    decode_errors: list[str]


def probe_segment(path: Path) -> SegmentProbe:
    """Decode one .ts on its own, as a player joining at that segment would."""
    errors: list[str] = []
    vframes = aframes = 0
    first_key: bool | None = None
    v_start = a_start = v_end = None
    width = height = rate = 0
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("video", "audio")]

        def decoded():  # type: ignore[no-untyped-def]
            nonlocal first_key
            for packet in c.demux(streams):
                kind = packet.stream.type
                if packet.size == 0:
                    continue
                if kind == "video" and first_key is None:
                    first_key = bool(packet.is_keyframe)
                try:
                    yield kind, packet.decode()
                except av.error.FFmpegError as e:
                    errors.append(f"{kind} packet at {packet.pts}: {e}")
            for stream in streams:  # drain the decoders: B-frames leave frames inside
                try:
                    frames = stream.codec_context.decode(None)
                    for f in frames:
                        f.time_base = f.time_base or stream.time_base
                    yield stream.type, frames
                except av.error.FFmpegError as e:
                    errors.append(f"{stream.type} flush: {e}")

        for kind, frames in decoded():
            for frame in frames:
                t = float(frame.pts * frame.time_base) if frame.pts is not None else None
                if kind == "video":
                    vframes += 1
                    width, height = frame.width, frame.height
                    if t is not None:
                        v_start = t if v_start is None else min(v_start, t)
                        v_end = t if v_end is None else max(v_end, t)
                else:
                    aframes += 1
                    rate = frame.sample_rate
                    if t is not None:
                        a_start = t if a_start is None else min(a_start, t)
    return SegmentProbe(
        vframes, aframes, bool(first_key), v_start, a_start, v_end, width, height, rate, errors
    )


def ffmpeg_decode_errors(path: Path) -> str:
    """`ffmpeg -v error` decoding the whole file: empty output means a clean decode."""
    # -enc_time_base: the null muxer would otherwise round our timestamps into its own time
    # base and complain about DTS order that our stream does not have.
    r = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(path),
            "-enc_time_base",
            "1/90000",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (r.stderr + ("" if r.returncode == 0 else f"\nexit {r.returncode}")).strip()
