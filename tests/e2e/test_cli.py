"""The README's first command, as a newcomer runs it: `livechannel serve` prints a key id, an
ffmpeg command with a signed publish URL, the OBS split and a play URL — and they all work."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.support import publishers
from tests.support.serve_cli import SHUTDOWN_BOUND_S, start_service


def test_serve_banner_commands_work(tmp_path: Path, sample_flv: Path) -> None:
    proc, banner = start_service(tmp_path / "data", {})
    try:
        key_id = re.search(r"access key\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        creds = (tmp_path / "data" / "credentials.json").read_text()
        assert key_id in creds
        assert oct((tmp_path / "data" / "credentials.json").stat().st_mode & 0o777) == "0o600"
        ffmpeg_line = next(
            ln for ln in banner.splitlines() if ln.strip().startswith("ffmpeg -re -f lavfi")
        )
        url = shlex.split(ffmpeg_line)[-1]
        assert url.startswith("rtmp://127.0.0.1:") and "Signature=" in url
        server = re.search(r"Server\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        key = re.search(r"Stream Key\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        assert f"{server}/{key}" == url  # the OBS split joins back to the same URL
        r = publishers.run(publishers.ffmpeg_copy(sample_flv, url, realtime=False), timeout_s=60)
        assert r.returncode == 0, r.stderr
        play = shlex.split(
            next(ln for ln in banner.splitlines() if ln.strip().startswith("ffplay"))
        )[1]
        time.sleep(0.5)  # the last segment is flushed just after the publisher leaves
        p = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
                play,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p.returncode == 0, p.stderr
        assert set(p.stdout.split()) == {"aac", "h264"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=SHUTDOWN_BOUND_S)
    assert proc.returncode == 0, out


def test_environment_sets_keys_bucket_and_acl(tmp_path: Path) -> None:
    env = {
        "LIVECHANNEL_ACCESS_KEY_ID": "MYKEY",
        "LIVECHANNEL_ACCESS_KEY_SECRET": "my-secret",
        "LIVECHANNEL_BUCKET": "tv",
        "LIVECHANNEL_BUCKET_ACL": "public-read",
    }
    proc, banner = start_service(tmp_path / "data", env)
    try:
        assert "access key  MYKEY" in banner
        assert "bucket      tv (ACL public-read)" in banner
        assert "my-secret" not in banner
        assert not (tmp_path / "data" / "credentials.json").exists()
        play = shlex.split(
            next(ln for ln in banner.splitlines() if ln.strip().startswith("ffplay"))
        )[1]
        assert "Signature" not in play and "/tv/demo/playlist.m3u8" in play
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=SHUTDOWN_BOUND_S)
    assert proc.returncode == 0
