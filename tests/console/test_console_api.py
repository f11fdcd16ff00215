"""The console's JSON API without a browser: paging and filtering thousands of channels, the
create form checked by the API's own rules, sessions across a restart, and the health
warnings a channel's figures give."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from livechannel.auth.signing import check_rtmp_publish
from livechannel.config import Listen
from livechannel.console import figures
from livechannel.console.routes import COOKIE, CSRF_HEADER
from livechannel.store.base import Channel, ChannelConfig, ChannelStatus, Push
from tests.support.service import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, ServiceThread

TIMEOUT_S = 10.0
CHANNELS = 2_500  # "thousands": paged, never listed whole


class Browser:
    """A signed-in console client: the cookie and the CSRF header, as the page sends them."""

    def __init__(self, service: ServiceThread) -> None:
        self.base = f"{service.endpoint}/-/console/api"
        self.http = requests.Session()
        r = self.http.post(
            f"{self.base}/session",
            timeout=TIMEOUT_S,
            json={"access_key_id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET},
        )
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf"]

    def get(self, path: str, **params: object) -> requests.Response:
        return self.http.get(self.base + path, params=params, timeout=TIMEOUT_S)

    def post(self, path: str, body: dict[str, object]) -> requests.Response:
        return self.http.post(
            self.base + path, json=body, headers={CSRF_HEADER: self.csrf}, timeout=TIMEOUT_S
        )


def test_thousands_of_channels_paged_and_filtered(tmp_path: Path) -> None:
    with ServiceThread(tmp_path / "data").start() as service:

        async def fill() -> None:
            for i in range(CHANNELS):
                name = f"{'cam' if i % 2 else 'mic'}-{i:05d}"
                await service.store.put_channel(BUCKET, name, ChannelConfig(), 0)

        service.call(fill(), timeout_s=120)
        browser = Browser(service)
        seen: list[str] = []
        marker = ""
        pages = 0
        while True:
            r = browser.get("/channels", bucket=BUCKET, marker=marker, limit=200)
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [c["name"] for c in page["channels"]]
            pages += 1
            if page["next_marker"] is None:
                break
            marker = page["next_marker"]
        assert pages == CHANNELS // 200 + 1
        assert seen == sorted(seen) and len(seen) == len(set(seen)) == CHANNELS
        r = browser.get("/channels", bucket=BUCKET, prefix="cam-012", limit=50)
        names = [c["name"] for c in r.json()["channels"]]
        assert names == [f"cam-{i:05d}" for i in range(1200, 1300) if i % 2][:50]
        assert browser.get("/channels", bucket=BUCKET, limit=201).status_code == 400
        assert browser.get("/channels", bucket="nope").json()["error"]["code"] == "NoSuchBucket"


def test_create_uses_the_api_rules(tmp_path: Path) -> None:
    with ServiceThread(tmp_path / "data").start() as service:
        browser = Browser(service)
        good = {
            "bucket": BUCKET,
            "name": "show",
            "frag_duration": "2",
            "frag_count": 4,
            "playlist_name": "main.m3u8",
            "snapshot_interval": "5",
        }
        r = browser.post("/channels", good)
        assert r.status_code == 200, r.text
        channel = service.call(service.store.get_channel(BUCKET, "show"))
        assert channel is not None
        config = channel.config
        assert (config.frag_duration_s, config.frag_count, config.playlist_name) == (
            2,
            4,
            "main.m3u8",
        )
        assert config.snapshot is not None and config.snapshot.interval_s == 5
        # The same channel through the OSS API reads back the same (one source of truth).
        info = service.bucket().get_live_channel("show")
        assert (int(info.target.frag_duration), info.target.playlist_name) == (2, "main.m3u8")
        assert browser.post("/channels", good).json()["error"]["code"] == (
            "LiveChannelAlreadyExists"
        )
        for bad, code in (
            ({"frag_duration": "101", "frag_count": "3"}, "InvalidArgument"),
            ({"frag_duration": "2"}, "InvalidArgument"),  # both or neither, as PutLiveChannel
            ({"playlist_name": "x.txt"}, "InvalidArgument"),
            ({"snapshot_interval": "0"}, "InvalidArgument"),
            ({"name": "a/b"}, "InvalidObjectName"),
            ({"name": ""}, "InvalidArgument"),
            ({"description": "x" * 200}, "InvalidArgument"),
            ({"frag_count": {"nested": 1}}, "InvalidArgument"),
        ):
            body = {"bucket": BUCKET, "name": "other", **bad}
            r = browser.post("/channels", body)
            assert r.status_code == 400 and r.json()["error"]["code"] == code, (bad, r.text)
        assert service.call(service.store.get_channel(BUCKET, "other")) is None
        # Disable, enable, delete (idle: allowed), through the API's own functions.
        for status in ("disabled", "enabled"):
            r = browser.post(
                "/channel/status", {"bucket": BUCKET, "name": "show", "status": status}
            )
            assert r.status_code == 200, r.text
            stat = service.bucket().get_live_channel("show")
            assert stat.status == status
        bad = browser.post("/channel/status", {"bucket": BUCKET, "name": "show", "status": "x"})
        assert bad.status_code == 400
        assert browser.post("/channel/delete", {"bucket": BUCKET, "name": "show"}).ok
        gone = browser.post("/channel/delete", {"bucket": BUCKET, "name": "show"})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "NoSuchLiveChannel"
        r = browser.http.post(
            browser.base + "/channels",
            data=json.dumps(good) + " " * 9000,
            headers={CSRF_HEADER: browser.csrf, "Content-Type": "application/json"},
        )
        assert r.status_code == 400


def test_sessions_survive_a_restart(tmp_path: Path) -> None:
    """Tokens are signed with a key derived from the access key's secret, not kept in memory:
    a restarted service (or another worker) accepts them until they expire."""
    with ServiceThread(tmp_path / "data").start() as service:
        browser = Browser(service)
    with ServiceThread(tmp_path / "data").start() as again:
        r = browser.http.get(f"{again.endpoint}/-/console/api/session", timeout=TIMEOUT_S)
        assert r.status_code == 200 and r.json()["csrf"] == browser.csrf
        assert COOKIE in browser.http.cookies


def _push(stats: dict[str, object], *, start_ms: int = 0, heartbeat_ms: int = 10_000) -> Push:
    return Push(
        1,
        BUCKET,
        "c",
        "127.0.0.1:5000",
        start_ms,
        None,
        "w",
        heartbeat_ms,
        False,
        json.dumps(stats),
    )


def test_health_warnings() -> None:
    channel = Channel(BUCKET, "c", ChannelConfig(frag_duration_s=2), 0)
    healthy = {
        "video": {"width": 640, "height": 360, "frame_rate": 30, "codec": "H264"},
        "audio": {"sample_rate": 44100, "codec": "AAC"},
        "health": {
            "frame_rate": 30.0,
            "keyframe_interval_ms": 2000,
            "upload_queue": 0,
            "storage_error": "",
            "snapshots_skipped": 0,
        },
    }
    assert figures.warnings(channel, _push(healthy), 10_500) == []
    assert figures.warnings(channel, None, 10_500) == []
    sick = {
        "video": None,
        "audio": None,
        "health": {
            "keyframe_interval_ms": 8000,
            "upload_queue": 5,
            "storage_error": "disk full",
            "snapshots_skipped": 2,
        },
    }
    text = " | ".join(figures.warnings(channel, _push(sick), 20_000))
    for part in (
        "10 s old",
        "disk full",
        "5 segments waiting",
        "keyframe interval 8.0 s",
        "no video",
        "no audio",
        "2 snapshots skipped",
    ):
        assert part in text, text
    # A push that has just started gets no "no video" before its first stats window.
    young = figures.warnings(channel, _push(sick, start_ms=9_000), 10_000)
    assert not any(w.startswith("no ") for w in young)
    row = figures.row(channel, _push(healthy), 10_500)
    assert (row["width"], row["frame_rate"], row["live"]) == (640, 30.0, True)
    assert figures.row(channel, None, 0)["status"] == ChannelStatus.ENABLED.value


def test_urls_sign_rtmp_and_rtmps(tmp_path: Path) -> None:
    """The publish URLs the page shows pass the ingest edge's own signature check; with an
    RTMPS listener the rtmps:// URL is offered too, with the same stream key."""
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    service = ServiceThread(tmp_path / "data")
    service.config = replace(
        service.config, rtmps_listen=Listen("127.0.0.1", 0), tls_cert=str(cert), tls_key=str(key)
    )
    with service.start():
        service.call(service.store.put_channel(BUCKET, "cam", ChannelConfig(), 0))
        urls = Browser(service).get("/urls", bucket=BUCKET, name="cam", expires_s=600).json()
        rtmps = urls["rtmps"]
        assert rtmps["publish_url"].startswith("rtmps://127.0.0.1:")
        assert rtmps["obs_stream_key"] == urls["obs_stream_key"]
        for url in (urls["publish_url"], rtmps["publish_url"]):
            parts = urlsplit(url)
            assert parts.path == f"/{BUCKET}/live/cam"
            params = dict(parse_qsl(parts.query))
            check_rtmp_publish(
                params, BUCKET, "cam", {ACCESS_KEY_ID: ACCESS_KEY_SECRET}, int(time.time())
            )
            assert int(params["Expires"]) - time.time() == pytest.approx(600, abs=5)
    with ServiceThread(tmp_path / "plain").start() as plain:
        plain.call(plain.store.put_channel(BUCKET, "cam", ChannelConfig(), 0))
        assert Browser(plain).get("/urls", bucket=BUCKET, name="cam").json()["rtmps"] is None
