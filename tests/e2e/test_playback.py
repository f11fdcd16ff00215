"""Players read the live stream through our HTTP API: unsigned from a public-read
bucket, and through a signed `x-oss-process=hls/sign` playlist URL from a private one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from livechannel.store.base import Acl
from tests.support import publishers
from tests.support.service import BUCKET, ServiceThread, create_channel

PLAY_SECONDS = 4  # how much the player must decode
PLAYER_TIMEOUT_S = 40


def wait_for_segments(service: ServiceThread, channel: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(service.call(service.store.last_segments(BUCKET, channel, count))) < count:
        assert time.monotonic() < deadline, f"{channel}: fewer than {count} segments"
        time.sleep(0.2)


def play(url: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-v",
        "error",
        "-nostdin",
        "-i",
        url,
        "-t",
        str(PLAY_SECONDS),
        "-f",
        "null",
        "-",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PLAYER_TIMEOUT_S)


@pytest.mark.parametrize(
    ("acl", "backend"),
    [
        (Acl.PUBLIC_READ, "local"),
        (Acl.PRIVATE, "local"),
        (Acl.PRIVATE, "s3"),
    ],  # s3: docs/storage.md
)
def test_ffmpeg_plays_live_stream_over_http(
    tmp_path: Path, acl: Acl, backend: str, request: pytest.FixtureRequest
) -> None:
    storage = None
    if backend == "s3":
        moto = request.getfixturevalue("moto")
        storage = moto.storage_table(moto.new_bucket())
    svc = ServiceThread(tmp_path / "data", acl=acl, storage=storage).start()
    pub = None
    try:
        bucket = svc.bucket()
        create_channel(bucket, "show", frag_duration=2, frag_count=3)
        pub = publishers.start(
            publishers.ffmpeg_live(
                svc.signed_publish_url("show"), duration_s=30, gop_s=1, bframes=2
            )
        )
        wait_for_segments(svc, "show", 3, timeout_s=20)
        if acl == Acl.PUBLIC_READ:
            url = f"{svc.endpoint}/{BUCKET}/show/playlist.m3u8"
        else:
            unsigned = f"{svc.endpoint}/{BUCKET}/show/playlist.m3u8"
            denied = play(unsigned)
            assert denied.returncode != 0  # a private bucket needs a signature
            url = bucket.sign_url(
                "GET", "show/playlist.m3u8", 300, params={"x-oss-process": "hls/sign"}
            )
        r = play(url)
        assert r.returncode == 0, r.stderr
        assert r.stderr.strip() == "", r.stderr
    finally:
        if pub is not None:
            publishers.stop(pub)
        svc.stop()
