"""The first run and the operator's commands, as a user meets them through the CLI:

- signed URLs (credentials) reach stdout only on a terminal or with --show-urls, so a journal
  never keeps them; the demo channel can be turned off;
- the admin commands create a channel, mint a URL ffmpeg publishes to, and list it live;
- a configured bucket ACL is in force after a restart even if PutBucketAcl changed it, an
  unconfigured one leaves the stored ACL standing, and the banner prints the ACL in force.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import oss2
import pytest

from tests.support import publishers
from tests.support.serve_cli import SHUTDOWN_BOUND_S, banner_ended, start_service, stop_service

ADMIN_TIMEOUT_S = 20
LIVE_WAIT_S = 15
KEYS = {"LIVECHANNEL_ACCESS_KEY_ID": "FIRSTRUNKEY", "LIVECHANNEL_ACCESS_KEY_SECRET": "s3cr3t-x"}


def admin_hint(banner: str) -> list[str]:
    """The options the banner says `livechannel url` needs to find this service."""
    line = next(ln for ln in banner.splitlines() if ln.strip().startswith("livechannel url "))
    return shlex.split(line)[3:]


def admin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livechannel", *args],
        capture_output=True,
        text=True,
        timeout=ADMIN_TIMEOUT_S,
        env={**os.environ, **(env or {})},
    )


def test_signed_urls_stay_out_of_logs_and_admin_commands_work(tmp_path: Path) -> None:
    proc, banner = start_service(tmp_path / "data", {}, show_urls=False)
    try:
        assert "Signature" not in banner and "OSSAccessKeyId" not in banner
        assert f"secret in {(tmp_path / 'data' / 'credentials.json').resolve()}" in banner
        assert "127.0.0.1 works from this machine only" in banner
        hint = admin_hint(banner)
        r = admin("channel", "create", "cam", "--frag-duration", "1", *hint)
        assert r.returncode == 0, r.stderr
        r = admin("url", "cam", "--expires", "2h", *hint)
        assert r.returncode == 0, r.stderr
        minted = dict(re.findall(r"^(publish|play)\s+(\S+)$", r.stdout, re.M))
        obs = dict(re.findall(r"OBS (Server|Stream Key)\s+(\S+)", r.stdout))
        assert f"{obs['Server']}/{obs['Stream Key']}" == minted["publish"]
        expires = int(re.search(r"Expires=(\d+)", minted["publish"]).group(1))  # type: ignore[union-attr]
        assert abs(expires - (time.time() + 7200)) < 60
        publisher = publishers.start(
            publishers.ffmpeg_live(minted["publish"], duration_s=5, size="320x180", gop_s=1)
        )
        try:
            deadline = time.monotonic() + LIVE_WAIT_S
            listed = ""
            while time.monotonic() < deadline and "\tLive\t" not in listed:
                listed = admin("channel", "list", *hint).stdout
                time.sleep(0.3)
            assert re.search(r"^cam\tenabled\tLive\t", listed, re.M), listed
            assert re.search(r"^demo\tenabled\tIdle\t", listed, re.M), listed
            shown = admin("channel", "show", "cam", *hint).stdout
            assert re.search(r"^live\s+Live$", shown, re.M) and "video      H264 320x180" in shown
            _, err = publisher.communicate(timeout=30)  # it ends after its 5 s
        finally:
            publishers.stop(publisher)
        assert publisher.returncode == 0, err
        time.sleep(0.5)  # the last segment is flushed just after the publisher leaves
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
             minted["play"]], capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert probe.returncode == 0 and set(probe.stdout.split()) == {"aac", "h264"}, probe
        assert admin("channel", "disable", "cam", *hint).returncode == 0
        assert re.search(
            r"^status\s+disabled$", admin("channel", "show", "cam", *hint).stdout, re.M
        )
        assert admin("channel", "delete", "cam", *hint).returncode == 0
        gone = admin("channel", "show", "cam", *hint)
        assert gone.returncode == 1 and "NoSuchLiveChannel" in gone.stderr
        too_long = admin("url", "demo", "--expires", "400d", *hint)
        assert too_long.returncode == 2 and "at most 365d" in too_long.stderr
    finally:
        stop_service(proc)


def readme_form(row: str) -> re.Pattern[str]:
    """The publish URL form of the README's table row that mentions `row`, as a pattern."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("| ") and row in ln)
    pattern = re.escape(line.split("`")[-2])
    pattern = pattern.replace(re.escape("127.0.0.1:1935"), r"127\.0\.0\.1(:\d+)?")
    for placeholder in ("<bucket>", "<channel>", "<signature>"):
        pattern = pattern.replace(re.escape(placeholder), r"[^/?\s']+")
    return re.compile(pattern)


def test_a_terminal_gets_the_signed_urls(tmp_path: Path) -> None:
    """Run by hand in a terminal, the banner is the ready-to-paste commands."""
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "livechannel", "serve", "--data-dir", str(tmp_path / "d"),
           "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.DEVNULL, text=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            banner_ended(ln) for ln in out.decode(errors="replace").splitlines()
        ):
            if select.select([master], [], [], 0.5)[0]:
                out += os.read(master, 65536)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(SHUTDOWN_BOUND_S)
        os.close(master)
    text = out.decode(errors="replace")
    url = re.search(r"ffmpeg .*-f flv '(rtmp://\S+)'", text).group(1)  # type: ignore[union-attr]
    assert readme_form("the banner").fullmatch(url), url
    assert re.match(r"rtmp://127\.0\.0\.1:\d+/live/live/demo\?OSS", url)
    assert re.search(r"ffplay 'http://127\.0\.0\.1:\d+/live/demo/playlist\.m3u8\?", text), text


def test_the_demo_channel_can_be_turned_off(tmp_path: Path) -> None:
    proc, banner = start_service(tmp_path / "data", KEYS, "--demo-channel", "")
    try:
        assert "'demo'" not in banner and "livechannel channel create NAME" in banner
        port = int(re.search(r"API\s+http://127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        bucket = oss2.Bucket(oss2.Auth(*KEYS.values()), f"http://127.0.0.1:{port}", "live")
        assert [c.name for c in bucket.list_live_channel().channels] == []
    finally:
        stop_service(proc)


def bucket_of(banner: str) -> oss2.Bucket:
    port = int(re.search(r"API\s+http://127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
    return oss2.Bucket(oss2.Auth(*KEYS.values()), f"http://127.0.0.1:{port}", "live")


def anonymous(bucket: oss2.Bucket) -> oss2.Bucket:
    return oss2.Bucket(oss2.AnonymousAuth(), bucket.endpoint, bucket.bucket_name)


def test_a_configured_acl_is_in_force_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = oss2.models.LiveChannelInfo(target=oss2.models.LiveChannelInfoTarget())
    # Opened once, by configuration...
    proc, banner = start_service(data, KEYS, "--bucket-acl", "public-read-write")
    try:
        assert "(ACL public-read-write)" in banner
        anonymous(bucket_of(banner)).create_live_channel("open", info)
    finally:
        stop_service(proc)
    # ...then restarted closed: anonymous writes are refused again.
    proc, banner = start_service(data, KEYS, "--bucket-acl", "private")
    try:
        assert "(ACL private)" in banner and "replacing public-read-write" in banner
        with pytest.raises(oss2.exceptions.AccessDenied):
            anonymous(bucket_of(banner)).create_live_channel("sneaky", info)
        assert bucket_of(banner).get_bucket_acl().acl == "private"
        # PutBucketAcl opens it for reading...
        bucket_of(banner).put_bucket_acl("public-read")
    finally:
        stop_service(proc)
    # ...and with no ACL configured, that stands across a restart, said at start.
    proc, banner = start_service(data, KEYS)
    try:
        assert "(ACL public-read)" in banner
        assert "ACL public-read, as last set through PutBucketAcl" in banner
        assert bucket_of(banner).get_bucket_acl().acl == "public-read"
    finally:
        stop_service(proc)
