"""Real RTMP publishers as subprocesses: the ffmpeg CLI, PyAV, GStreamer rtmp2sink/rtmpsink.

Every publisher is bounded (a duration or a frame count) and every process is stopped by PID
at the end of its test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

PUBLISH_TIMEOUT_MARGIN_S = 30.0  # a publisher may take this long beyond its media duration


def ffmpeg_live(
    url: str,
    *,
    duration_s: float,
    size: str = "640x360",
    fps: int = 30,
    gop_s: float = 2.0,
    bframes: int = 2,
    audio: bool = True,
    sample_rate: int = 44_100,
    channels: int = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    """ffmpeg encodes a test pattern live (`-re`) with libx264 (+ AAC) and pushes it."""
    gop = max(1, round(gop_s * fps))
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={fps}",
    ]
    if audio:
        layout = "stereo" if channels == 2 else "mono"
        cmd += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate={sample_rate},aformat=channel_layouts={layout}",
        ]
    cmd += [
        "-t",
        str(duration_s),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-bf",
        str(bframes),
        "-b:v",
        "1M",
    ]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k"]
    cmd += [*extra, "-f", "flv", url]
    return cmd


def ffmpeg_copy(flv: Path, url: str, *, realtime: bool = True) -> list[str]:
    """ffmpeg replays an FLV file (`-c copy`), as users test with a recorded sample."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        *(["-re"] if realtime else []),
        "-i",
        str(flv),
        "-c",
        "copy",
        "-f",
        "flv",
        url,
    ]


def pyav(flv: Path, url: str, *, realtime: bool = True) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.support.pyav_publisher",
        str(flv),
        url,
        *(["--realtime"] if realtime else []),
    ]


def gst_live(
    url: str,
    *,
    sink: str,
    duration_s: float,
    fps: int = 30,
    gop_frames: int = 60,
    audio: bool = True,
) -> list[str]:
    """GStreamer encodes live test sources and pushes with rtmp2sink (its own RTMP code) or
    rtmpsink (librtmp, the lineage OBS forked)."""
    frames = int(duration_s * fps)
    location = url if sink == "rtmp2sink" else f"{url} live=1"
    cmd = [
        "gst-launch-1.0",
        "-q",
        "-e",
        "videotestsrc",
        "is-live=true",
        "pattern=ball",
        f"num-buffers={frames}",
        "!",
        f"video/x-raw,width=640,height=360,framerate={fps}/1",
        "!",
        "x264enc",
        "tune=zerolatency",
        "speed-preset=veryfast",
        f"key-int-max={gop_frames}",
        "bitrate=800",
        "!",
        "h264parse",
        "!",
        "queue",
        "!",
        "flvmux",
        "name=m",
        "streamable=true",
        "!",
        sink,
        f"location={location}",
    ]
    if audio:
        samples_per_buffer = 1024
        buffers = int(duration_s * 44_100 / samples_per_buffer)
        cmd += [
            "audiotestsrc",
            "is-live=true",
            f"num-buffers={buffers}",
            f"samplesperbuffer={samples_per_buffer}",
            "!",
            "audio/x-raw,rate=44100,channels=2",
            "!",
            "audioconvert",
            "!",
            "avenc_aac",
            "!",
            "aacparse",
            "!",
            "queue",
            "!",
            "m.",
        ]
    return cmd


def run(cmd: list[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a publisher to completion, bounded in time; kill it by PID if it overruns."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"publisher overran {timeout_s}s: {cmd[0]}\n{err[-2000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> tuple[str, str]:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()
