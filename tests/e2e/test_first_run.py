"""The first run and the operator's commands, as a user meets them through the CLI:

- signed URLs (credentials) reach stdout only on a terminal or with --show-urls, so a journal
  never keeps them (tests/test_firstrun.py: per ACL, and --demo-channel '');
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

from livechannel.store.base import Acl
from tests.support import publishers
from tests.support.serve_cli import SHUTDOWN_BOUND_S, banner_ended, start_service, stop_service
from tests.support.service import ServiceThread

ADMIN_TIMEOUT_S = 20
LIVE_WAIT_S = 15


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
            publishers.ffmpeg_live(minted["publish"], duration_s=3, size="320x180", gop_s=1)
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
            _, err = publisher.communicate(timeout=30)  # it ends after its 3 s
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


def anonymous(svc: ServiceThread) -> oss2.Bucket:
    return svc.bucket(anonymous=True)


def test_a_configured_acl_is_in_force_after_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    info = oss2.models.LiveChannelInfo(target=oss2.models.LiveChannelInfoTarget())
    # Opened once, by configuration...
    with ServiceThread(data, acl=Acl.PUBLIC_READ_WRITE).start() as svc:
        # (demo_channel = "", as --demo-channel '' sets it: no channel is made at start)
        assert list(oss2.LiveChannelIterator(svc.bucket())) == []
        anonymous(svc).create_live_channel("open", info)
    # ...then restarted closed: anonymous writes are refused again, and the ACL in force (what
    # the banner prints) is the configured one.
    with ServiceThread(data, acl=Acl.PRIVATE).start() as svc:
        assert svc.running is not None and svc.running.acls == {"live": Acl.PRIVATE}
        with pytest.raises(oss2.exceptions.AccessDenied):
            anonymous(svc).create_live_channel("sneaky", info)
        assert svc.bucket().get_bucket_acl().acl == "private"
        svc.bucket().put_bucket_acl("public-read")  # PutBucketAcl opens it for reading...
    assert "ACL private as configured, replacing public-read-write" in caplog.text
    # ...and with no ACL configured, that stands across a restart, said at start.
    with ServiceThread(data, acl=Acl.PRIVATE, acl_configured=False).start() as svc:
        assert svc.running is not None and svc.running.acls == {"live": Acl.PUBLIC_READ}
        assert svc.bucket().get_bucket_acl().acl == "public-read"
        assert svc.bucket().get_live_channel("open").status == "enabled"
        with pytest.raises(oss2.exceptions.AccessDenied):  # public-read: reads only
            anonymous(svc).create_live_channel("sneaky", info)
    assert "ACL public-read, as last set through PutBucketAcl" in caplog.text
