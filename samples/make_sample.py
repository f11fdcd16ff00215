#!/usr/bin/env python3
"""Make a short H.264/AAC FLV sample with PyAV (its wheel ships libx264 and aac; no ffmpeg CLI).

    python samples/make_sample.py                    # samples/sample.flv: 10 s 720p30, 2 s GOP
    python samples/make_sample.py -o x.flv --duration 30 --size 1920x1080 --fps 60 --gop 1 \
        --bframes 0 --sample-rate 48000 --channels 1 --audio-delay 3

Tests and benchmarks call `make_sample()` with the same options to build their encoder matrix.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


@dataclass(frozen=True)
class SampleSpec:
    duration_s: float = 10.0
    width: int = 1280
    height: int = 720
    fps: int = 30
    gop_s: float = 2.0  # keyframe interval
    bframes: int = 2
    video_bitrate: int = 2_500_000
    audio: bool = True
    sample_rate: int = 44_100
    channels: int = 2
    audio_delay_s: float = 0.0  # audio starts this long after video (its header too)
    only_first_keyframe: bool = False  # one IDR at the start, never again
    # "libx264"; "libx265" or "libsvtav1" make an Enhanced RTMP FLV (hvc1 / av01 FourCC).
    video_codec: str = "libx264"
    audio_codec: str = "aac"  # or "libopus" (Enhanced RTMP audio, `Opus` FourCC; 48 kHz)


def make_sample(path: str | Path, spec: SampleSpec = SampleSpec()) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="flv") as out:
        v = out.add_stream(spec.video_codec, rate=spec.fps)
        v.width, v.height, v.pix_fmt = spec.width, spec.height, "yuv420p"
        v.bit_rate = spec.video_bitrate
        gop = 100_000 if spec.only_first_keyframe else max(1, round(spec.gop_s * spec.fps))
        v.codec_context.gop_size = gop
        v.codec_context.max_b_frames = spec.bframes
        keyint = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={spec.bframes}"
        if spec.video_codec == "libx265":  # closed GOPs: every keyframe an IDR
            v.options = {"preset": "ultrafast", "x265-params": f"{keyint}:open-gop=0:log-level=0"}
        elif spec.video_codec == "libsvtav1":
            v.options = {"preset": "12", "svtav1-params": f"keyint={gop}:scd=0"}
        else:
            v.options = {
                "preset": "ultrafast" if spec.bframes == 0 else "veryfast",
                "tune": "zerolatency" if spec.bframes == 0 else "film",
                "x264-params": keyint,
            }
        a = None
        if spec.audio:
            a = out.add_stream(spec.audio_codec, rate=spec.sample_rate)
            a.codec_context.layout = "stereo" if spec.channels == 2 else "mono"
            a.bit_rate = 128_000
        src = av.open(
            f"testsrc2=size={spec.width}x{spec.height}:rate={spec.fps}:duration={spec.duration_s}",
            format="lavfi",
        )
        packets: list[av.Packet] = []
        for frame in src.decode(video=0):
            frame = frame.reformat(format="yuv420p")
            # lavfi marks every frame as I; passing that on would force an IDR per frame.
            frame.pict_type = av.video.frame.PictureType.NONE
            packets.extend(v.encode(frame))
        packets.extend(v.encode(None))
        src.close()
        if a is not None:
            layout = "stereo" if spec.channels == 2 else "mono"
            asrc = av.open(
                f"sine=frequency=440:sample_rate={spec.sample_rate}:duration="
                f"{spec.duration_s - spec.audio_delay_s},aformat=channel_layouts={layout}",
                format="lavfi",
            )
            offset = round(spec.audio_delay_s * spec.sample_rate)
            for frame in asrc.decode(audio=0):
                frame.pts = (frame.pts or 0) + offset
                frame.time_base = Fraction(1, spec.sample_rate)
                packets.extend(a.encode(frame))
            packets.extend(a.encode(None))
            asrc.close()
        # Interleave by decode time, as a live encoder sends them.
        packets.sort(key=lambda p: float((p.dts or 0) * p.time_base))
        for packet in packets:
            out.mux(packet)
    return path


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-o", "--output", default=str(Path(__file__).with_name("sample.flv")))
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--gop", type=float, default=2.0, help="keyframe interval, seconds")
    p.add_argument("--bframes", type=int, default=2)
    p.add_argument("--no-audio", action="store_true")
    p.add_argument("--sample-rate", type=int, default=44_100)
    p.add_argument("--channels", type=int, choices=(1, 2), default=2)
    p.add_argument("--audio-delay", type=float, default=0.0)
    args = p.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    spec = SampleSpec(
        duration_s=args.duration,
        width=w,
        height=h,
        fps=args.fps,
        gop_s=args.gop,
        bframes=args.bframes,
        audio=not args.no_audio,
        sample_rate=args.sample_rate,
        channels=args.channels,
        audio_delay_s=args.audio_delay,
    )
    print(make_sample(args.output, spec))


if __name__ == "__main__":
    main()
