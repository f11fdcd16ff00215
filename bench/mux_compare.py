"""Our MPEG-TS muxer against libavformat's (through PyAV), muxing the same access units.

    python bench/mux_compare.py [seconds_of_media] [ts|fmp4]

The access units are those of `mpegts_bench.py` (1080p30-shaped 6 Mbit/s H.264 in Annex B
with a 2 s GOP, 128 kbit/s AAC at 48 kHz) except that each audio frame carries a real ADTS
header, as ours do in the service and as libavformat needs without extradata. Both sides cut
a new, self-contained segment at every keyframe, as the segmenter does:

* ours: `TsMuxer.start_segment()` then `video()`/`audio()`, returning bytes;
* PyAV, in memory: a new `mpegts` output container per segment writing to a BytesIO (what the
  service would need: segment bytes to upload), streams from templates so no codec is opened,
  one `av.Packet` per access unit;
* PyAV, to /dev/null: the same, but libavformat writes through its own file I/O, which shows
  what it costs without the Python file callbacks.

With `fmp4` the same comparison for fragmented MP4: ours is `Fmp4Muxer` (one fragment per
segment, the init section built once per configuration), PyAV's is libavformat's `mp4` muxer
with `frag_keyframe+empty_moov+default_base_moof`, a new container (init + fragment) per
segment as above.

One run each, one core, printed side by side as MB/s of output.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mpegts_bench import synthetic_frames

from livechannel.media.fmp4 import Fmp4Muxer
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.mpegts import TsMuxer

MS = Fraction(1, 1000)  # our access units carry integer milliseconds
AAC_LC_OBJECT_TYPE = 2
SAMPLING_INDEX_48K = 3  # ISO 14496-3 Table 1.18
CHANNELS = 2
TEMPLATE_FRAMES = 5  # enough for PyAV's encoders to emit packets for a template file


def adts_header(payload_bytes: int) -> bytes:
    """7-byte ADTS header (ISO 14496-3 1.A.2), no CRC."""
    frame_length = payload_bytes + 7
    profile = AAC_LC_OBJECT_TYPE - 1
    return bytes(
        (
            0xFF,
            0xF1,  # sync, MPEG-4, layer 0, no CRC
            (profile << 6) | (SAMPLING_INDEX_48K << 2) | (CHANNELS >> 2),
            ((CHANNELS & 3) << 6) | (frame_length >> 11),
            (frame_length >> 3) & 0xFF,
            ((frame_length & 7) << 5) | 0x1F,
            0xFC,  # buffer fullness 0x7FF, one raw data block
        )
    )


def access_units(seconds: int) -> list[VideoFrame | AudioFrame]:
    """Video and ADTS audio interleaved by time, as the segmenter hands them over."""
    video, raw_audio = synthetic_frames(seconds)
    audio = [AudioFrame(f.pts_ms, adts_header(len(f.data)) + f.data) for f in raw_audio]
    out: list[VideoFrame | AudioFrame] = []
    ai = 0
    for frame in video:
        while ai < len(audio) and audio[ai].pts_ms <= frame.dts_ms:
            out.append(audio[ai])
            ai += 1
        out.append(frame)
    return out


def mux_ours(units: list[VideoFrame | AudioFrame]) -> Iterator[bytes]:
    muxer = TsMuxer(has_video=True, has_audio=True)
    for unit in units:
        if isinstance(unit, VideoFrame):
            if unit.keyframe:
                yield muxer.start_segment()
            yield muxer.video(unit)
        else:
            yield muxer.audio(unit)


def mux_ours_fmp4(units: list[VideoFrame | AudioFrame], config: VideoConfig) -> Iterator[bytes]:
    audio = AudioConfig("AAC", AAC_LC_OBJECT_TYPE, 48_000, CHANNELS, SAMPLING_INDEX_48K)
    muxer = Fmp4Muxer(True, True, audio, video_config=config)
    yield muxer.init_section
    started = False
    for unit in units:
        if isinstance(unit, VideoFrame):
            if unit.keyframe and started:
                yield from muxer.end_fragment(unit.dts_ms)
            started = started or unit.keyframe
            if started:
                yield muxer.video(unit)
        elif started:
            yield muxer.audio(unit)
    yield from muxer.end_fragment(None)


# The synthetic stream has no parameter sets; the init section only needs plausible ones
# (High profile, level 4.0), nothing decodes the output here.
BENCH_VIDEO_CONFIG = VideoConfig(
    "H264", 1920, 1080, 4, (b"\x67\x64\x00\x28\xac",), (b"\x68\xee\x3c\x80",)
)


def template_container(fmt: str = "mpegts") -> Any:
    """A tiny real H.264 + AAC file, opened as input: its streams are templates whose codec
    parameters let output streams be muxed without opening any codec (from an MP4 they carry
    the avcC/AudioSpecificConfig extradata that libavformat's mp4 muxer wants)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = out.add_stream("aac", rate=48_000)
        a.layout = "stereo"
        for i in range(TEMPLATE_FRAMES):
            frame = av.VideoFrame(64, 64, "yuv420p")
            frame.pts = i
            out.mux(v.encode(frame))
            samples = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in samples.planes:
                plane.update(bytes(plane.buffer_size))
            samples.sample_rate, samples.pts = 48_000, i * 1024
            out.mux(a.encode(samples))
        out.mux(v.encode(None))
        out.mux(a.encode(None))
    buf.seek(0)
    return av.open(buf, "r", format=fmt)


def mux_pyav(
    units: list[VideoFrame | AudioFrame], template: Any, open_output: Callable[[], Any]
) -> int:
    """Mux with libavformat's mpegts muxer, a new container per segment; returns bytes out."""
    v_template, a_template = template.streams.video[0], template.streams.audio[0]
    total = 0
    out = v_out = a_out = None
    sink: Any = None

    def close() -> int:
        if out is None:
            return 0
        out.close()
        return sink.tell() if isinstance(sink, io.BytesIO) else 0

    for unit in units:
        if isinstance(unit, VideoFrame) and unit.keyframe:
            total += close()
            sink, out = open_output()
            v_out = out.add_stream_from_template(v_template)
            a_out = out.add_stream_from_template(a_template)
        if out is None:
            continue  # audio before the first keyframe: dropped, as the segmenter does
        packet = av.Packet(unit.data)
        packet.time_base = MS
        packet.pts = unit.pts_ms
        if isinstance(unit, VideoFrame):
            packet.dts, packet.stream = unit.dts_ms, v_out
            packet.is_keyframe = unit.keyframe
        else:
            packet.dts, packet.stream = unit.pts_ms, a_out
        out.mux(packet)
    total += close()
    return total


def to_memory() -> tuple[io.BytesIO, Any]:
    buf = io.BytesIO()
    return buf, av.open(buf, "w", format="mpegts")


FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


def to_memory_mp4() -> tuple[io.BytesIO, Any]:
    buf = io.BytesIO()
    return buf, av.open(buf, "w", format="mp4", options=FRAGMENTED)


def to_dev_null_mp4() -> tuple[None, Any]:
    return None, av.open("/dev/null", "w", format="mp4", options=FRAGMENTED)


def to_dev_null() -> tuple[None, Any]:
    return None, av.open("/dev/null", "w", format="mpegts")


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    out_bytes = fn()
    return out_bytes, time.perf_counter() - start


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    fmp4 = len(sys.argv) > 2 and sys.argv[2] == "fmp4"
    units = access_units(seconds)
    in_bytes = sum(len(u.data) for u in units)
    template = template_container("mp4" if fmp4 else "mpegts")  # set-up: not timed
    if fmp4:
        config = BENCH_VIDEO_CONFIG
        # libavformat's mp4 muxer takes raw AAC (an ADTS header is "malformed" to it).
        raw = [u if isinstance(u, VideoFrame) else AudioFrame(u.pts_ms, u.data[7:]) for u in units]
        ours_name = "ours (Fmp4Muxer)"
        ours_bytes, ours_s = timed(lambda: sum(len(b) for b in mux_ours_fmp4(units, config)))
        mem_bytes, mem_s = timed(lambda: mux_pyav(raw, template, to_memory_mp4))
        _, null_s = timed(lambda: mux_pyav(raw, template, to_dev_null_mp4))
    else:
        ours_name = "ours (TsMuxer)"
        ours_bytes, ours_s = timed(lambda: sum(len(b) for b in mux_ours(units)))
        mem_bytes, mem_s = timed(lambda: mux_pyav(units, template, to_memory))
        _, null_s = timed(lambda: mux_pyav(units, template, to_dev_null))
    null_bytes = mem_bytes  # same muxer, same input: /dev/null just does not count them
    template.close()
    print(f"{seconds} s of media, {len(units)} access units, {in_bytes / 1e6:.1f} MB in; "
          f"PyAV {av.__version__} (libavformat {av.library_versions['libavformat']})")  # fmt: skip
    print(f"{'muxer':34} {'MB/s':>8} {'MB out':>8} {'x real time':>12}")
    for name, out_bytes, elapsed_s in (
        (ours_name, ours_bytes, ours_s),
        ("libavformat via PyAV, to BytesIO", mem_bytes, mem_s),
        ("libavformat via PyAV, to /dev/null", null_bytes, null_s),
    ):
        print(f"{name:34} {out_bytes / elapsed_s / 1e6:8.1f} {out_bytes / 1e6:8.1f} "
              f"{seconds / elapsed_s:12.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
