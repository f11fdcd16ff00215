"""Real encoders for the media oracle tests: an FLV from libx264 + aac (PyAV) in memory, and
what libavformat and ffprobe read back from our output."""

from __future__ import annotations

import io
import json
import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

FPS = 30


AAC_FRAME_SAMPLES = 1024


@dataclass(frozen=True)
class Case:
    name: str
    width: int
    height: int
    x264_params: str
    preset: str
    sample_rate: int
    layout: str
    seconds: int


CASES = [
    Case("640x360 High, 3 B-frames, AAC 48 kHz mono", 640, 360,
         "keyint=30:min-keyint=30:scenecut=0:bframes=3", "veryfast", 48000, "mono", 3),
    Case("1920x1080 (cropped) no B-frames, AAC 44.1 kHz stereo", 1920, 1080,
         "keyint=25:min-keyint=25:scenecut=0:bframes=0", "ultrafast", 44100, "stereo", 2),
]  # fmt: skip


def encode_flv(case: Case) -> bytes:
    buf = io.BytesIO()
    out = av.open(buf, "w", format="flv")
    video = out.add_stream(
        "libx264", rate=FPS, options={"preset": case.preset, "x264-params": case.x264_params}
    )
    video.width, video.height, video.pix_fmt = case.width, case.height, "yuv420p"
    audio = out.add_stream("aac", rate=case.sample_rate, layout=case.layout)
    channels = 1 if case.layout == "mono" else 2
    luma = bytes(range(256)) * (case.width * case.height // 256 + 1)
    audio_pts = 0
    for i in range(case.seconds * FPS):
        shift = (i * 7) % 256  # a moving picture, so P and B frames carry real content
        frame = av.VideoFrame(case.width, case.height, "yuv420p")
        y, u, v = frame.planes
        y.update(luma[shift : shift + y.buffer_size])
        u.update(bytes([128]) * u.buffer_size)
        v.update(bytes([128]) * v.buffer_size)
        frame.pts = i
        frame.time_base = Fraction(1, FPS)
        for packet in video.encode(frame):
            out.mux(packet)
        while audio_pts * FPS < (i + 1) * case.sample_rate:
            samples = bytearray()
            for n in range(AAC_FRAME_SAMPLES):
                value = int(8000 * math.sin(2 * math.pi * 440 * (audio_pts + n) / case.sample_rate))
                samples += value.to_bytes(2, "little", signed=True) * channels
            af = av.AudioFrame(format="s16", layout=case.layout, samples=AAC_FRAME_SAMPLES)
            af.planes[0].update(bytes(samples))
            af.sample_rate, af.pts = case.sample_rate, audio_pts
            af.time_base = Fraction(1, case.sample_rate)
            for packet in audio.encode(af):
                out.mux(packet)
            audio_pts += AAC_FRAME_SAMPLES
    for stream in (video, audio):
        for packet in stream.encode(None):
            out.mux(packet)
    out.close()
    return buf.getvalue()


def demux_times(data: bytes, fmt: str) -> tuple[list[tuple[int, int]], list[int], Fraction]:
    """(video (pts, dts) list, audio pts list, time base) as libavformat reads them."""
    video, audio = [], []
    with av.open(io.BytesIO(data), format=fmt) as container:
        time_base = container.streams.video[0].time_base
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None:
                continue
            if packet.stream.type == "video":
                video.append((packet.pts, packet.dts))
            else:
                audio.append(packet.pts)
    assert time_base is not None
    return video, audio, time_base


def ffprobe(path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert proc.stderr == "", proc.stderr  # -v error: any output at all is a decode error
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def decode_all(data: bytes) -> tuple[int, int, list[tuple[int, str, str]], bool]:
    """(video frames, audio frames, libav complaints, first frame is a keyframe)."""
    video = audio = 0
    first_key = False
    av.logging.set_level(av.logging.WARNING)
    try:
        with (
            av.logging.Capture(local=False) as logs,
            av.open(io.BytesIO(data), format="mp4") as c,
        ):
            for frame in c.decode(*c.streams):
                if isinstance(frame, av.VideoFrame):
                    first_key = first_key or (video == 0 and frame.key_frame)
                    video += 1
                else:
                    audio += 1
    finally:
        av.logging.set_level(None)
    return video, audio, list(logs), first_key
