"""Micro-benchmark: MPEG-TS muxing throughput (and FLV demux + mux) on one core.

    python bench/mpegts_bench.py [seconds_of_media]

Input is synthetic but shaped like a real 1080p30 push: 6 Mbit/s H.264 with a 2 s GOP
(big IDR frames, smaller P frames), 128 kbit/s AAC at 48 kHz. Prints MB/s of TS output.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livechannel.media.demux import Demuxer
from livechannel.media.frames import AudioFrame, VideoFrame
from livechannel.media.mpegts import TsMuxer

FPS = 30
GOP_FRAMES = 60
VIDEO_BITS_PER_S = 6_000_000
AUDIO_FRAME_MS = 1024 * 1000 / 48000
AUDIO_FRAME_BYTES = 128_000 // 8 * 1024 // 48000
AVCC = bytes.fromhex(
    "0164001effe100196764001eacd940a02ff9610000030001000003003c0f162d9601000468ef8fcbfdf8f800"
)


def synthetic_frames(seconds: int) -> tuple[list[VideoFrame], list[AudioFrame]]:
    rng = random.Random(1)
    mean = VIDEO_BITS_PER_S // 8 // FPS
    pool = os.urandom(mean * 8)
    video = []
    for i in range(seconds * FPS):
        key = i % GOP_FRAMES == 0
        size = int(mean * (5 if key else rng.uniform(0.6, 1.1)))
        data = b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01" + (b"\x65" if key else b"\x41")
        data += pool[:size]
        video.append(VideoFrame(dts_ms=i * 1000 // FPS, pts_ms=i * 1000 // FPS + 66,
                                keyframe=key, data=data))  # fmt: skip
    audio = [
        AudioFrame(pts_ms=int(n * AUDIO_FRAME_MS), data=pool[:AUDIO_FRAME_BYTES])
        for n in range(int(seconds * 1000 / AUDIO_FRAME_MS))
    ]
    return video, audio


def bench_mux(video: list[VideoFrame], audio: list[AudioFrame]) -> tuple[int, float]:
    muxer = TsMuxer(has_video=True, has_audio=True)
    total = 0
    ai = 0
    start = time.perf_counter()
    for frame in video:
        if frame.keyframe:
            total += len(muxer.start_segment())
        while ai < len(audio) and audio[ai].pts_ms <= frame.dts_ms:
            total += len(muxer.audio(audio[ai]))
            ai += 1
        total += len(muxer.video(frame))
    return total, time.perf_counter() - start


def flv_messages(video: list[VideoFrame]) -> list[tuple[int, bytes]]:
    """The same video as RTMP message payloads (AVCC, 4-byte lengths)."""
    messages = [(0, b"\x17\x00\x00\x00\x00" + AVCC)]
    for frame in video:
        nal = frame.data[10:]
        head = b"\x17\x01" if frame.keyframe else b"\x27\x01"
        cts = (frame.pts_ms - frame.dts_ms).to_bytes(3, "big", signed=True)
        messages.append((frame.dts_ms, head + cts + len(nal).to_bytes(4, "big") + nal))
    return messages


def bench_demux_mux(messages: list[tuple[int, bytes]]) -> tuple[int, float]:
    demuxer, muxer = Demuxer(), TsMuxer(has_video=True, has_audio=False)
    total = 0
    start = time.perf_counter()
    for timestamp_ms, payload in messages:
        for event in demuxer.video(timestamp_ms, payload):
            if isinstance(event, VideoFrame):
                if event.keyframe:
                    total += len(muxer.start_segment())
                total += len(muxer.video(event))
    return total, time.perf_counter() - start


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    video, audio = synthetic_frames(seconds)
    out_bytes, elapsed_s = bench_mux(video, audio)
    print(f"TsMuxer:          {out_bytes / elapsed_s / 1e6:8.1f} MB/s "
          f"({out_bytes / 1e6:.1f} MB of TS for {seconds} s of media in {elapsed_s:.3f} s, "
          f"{seconds / elapsed_s:.0f}x real time)")  # fmt: skip
    out_bytes, elapsed_s = bench_demux_mux(flv_messages(video))
    print(f"Demuxer+TsMuxer:  {out_bytes / elapsed_s / 1e6:8.1f} MB/s (video only)")


if __name__ == "__main__":
    main()
