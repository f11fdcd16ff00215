"""The console in headless Chromium (and, shorter, Firefox) against a service with two real
ffmpeg publishers: a wrong secret is refused; signed in, the table shows both channels live
with plausible figures; a channel's page plays its preview (hls.js, private bucket through
hls/sign) for 10 s, shows its snapshot, refuses a delete while live and cuts a VOD clip that
plays; disabling it from the page kicks the publisher within 1 s and the page says so; a
channel created from the page takes a publisher on the URL the page shows; an expired
session is refused. Takes the screenshots docs/console-channels.png and docs/console-channel.png
(written there with LIVECHANNEL_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from livechannel.console.routes import COOKIE
from livechannel.console.session import Session, Sessions
from livechannel.store.base import ChannelConfig, Snapshot
from tests.interop.hlsjs import HLSJS_VERSION
from tests.support import publishers
from tests.support.browsers import Chromium, Firefox
from tests.support.service import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, ServiceThread

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The screenshots go to docs/ only when asked (a test run must not change tracked files):
#   LIVECHANNEL_UPDATE_SCREENSHOTS=1 python3 -m pytest -m browser tests/console
UPDATE_SCREENSHOTS = os.environ.get("LIVECHANNEL_UPDATE_SCREENSHOTS") == "1"
PUSH_S = 120  # longer than the test: publishers are stopped at its end
# (channel, size, fps): two different encoders, so the figures can be told apart.
CAMERAS = (("studio-a", "640x360", 30), ("studio-b", "426x240", 25))
LIVE_TIMEOUT_S = 20.0  # publishers connect and a full stats window (5 s) passes
PLAY_S = 10.0  # the preview's currentTime must advance for this long
PREVIEW_START_TIMEOUT_S = 20.0
KICK_LIMIT_S = 1.0
PHONE_WIDTH = 390
NONE, TIMES = (
    "\u2013",
    "\u00d7",
)  # the page's "no figure" dash and the x of 640x360  # an iPhone 12-15's CSS width


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceThread]:
    with ServiceThread(tmp_path / "data").start() as svc:
        yield svc


def rows(browser: Chromium | Firefox) -> dict[str, list[str]]:
    return dict(
        browser.evaluate(
            """[...document.querySelectorAll('#channels tbody tr')].map(
                 tr => [tr.dataset.name, [...tr.cells].map(td => td.textContent)])"""
        )
        or []
    )


def kbits(text: str) -> float:
    number, unit = text.split()[0], text.split()[1]
    return float(number) * (1000 if unit.startswith("Mbit") else 1)


def set_form(browser: Chromium | Firefox, form: str, values: dict[str, str]) -> None:
    browser.evaluate(
        f"""(() => {{ const f = document.querySelector({json.dumps(form)});
            for (const [k, v] of Object.entries({json.dumps(values)})) f.elements[k].value = v;
            f.requestSubmit(); }})()"""
    )


def test_console_in_chromium(service: ServiceThread, tmp_path: Path) -> None:
    # One-second segments: the preview starts quickly. studio-a takes a snapshot every 2 s.
    configs = {
        "studio-a": ChannelConfig(frag_duration_s=1, snapshot=Snapshot("", "", "", 2)),
        "studio-b": ChannelConfig(frag_duration_s=1, description="second camera"),
        "lobby": ChannelConfig(description="no publisher"),
    }
    for name, config in configs.items():
        service.call(service.store.put_channel(BUCKET, name, config, int(time.time() * 1000)))
    procs: list[subprocess.Popen[str]] = []
    try:
        for name, size, fps in CAMERAS:
            url = service.signed_publish_url(name)
            cmd = publishers.ffmpeg_live(url, duration_s=PUSH_S, size=size, fps=fps, gop_s=1)
            procs.append(publishers.start(cmd))
        shots = DOCS if UPDATE_SCREENSHOTS else tmp_path
        with Chromium(tmp_path / "chromium") as browser:
            run_console(service, browser, procs, shots)
        for name in ("console-channels.png", "console-channel.png"):
            assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    finally:
        for proc in procs:
            publishers.stop(proc)


def run_console(
    service: ServiceThread, browser: Chromium, procs: list[subprocess.Popen[str]], shots: Path
) -> None:
    console = f"{service.endpoint}/-/console/"
    browser.navigate(console)
    browser.wait_for("!document.querySelector('#view-signin').hidden", 10, "the sign-in form")

    # A wrong secret: refused, with a reason, and no cookie.
    set_form(browser, "#signin-form", {"access_key_id": ACCESS_KEY_ID, "secret": "wrong"})
    error = browser.wait_for("document.querySelector('#signin-error').textContent", 10)
    assert "wrong" in error
    assert not [c for c in browser.cookies() if c["name"] == COOKIE]
    assert browser.evaluate("document.querySelector('#view-list').hidden")

    set_form(browser, "#signin-form", {"access_key_id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET})
    browser.wait_for("!document.querySelector('#view-list').hidden", 10, "the channels table")
    [cookie] = [c for c in browser.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert ACCESS_KEY_SECRET not in json.dumps(browser.cookies())

    # Both channels live, with the figures their encoders were given.
    deadline = time.monotonic() + LIVE_TIMEOUT_S
    while True:
        table = rows(browser)
        if all(
            name in table and table[name][2] == "live" and NONE not in table[name][3:8]
            for name, _size, _fps in CAMERAS
        ):
            break
        assert time.monotonic() < deadline, f"channels not live in the table: {table}"
        time.sleep(0.5)
    time.sleep(2.5)  # a full stats window past the first figures
    table = rows(browser)
    for name, size, fps in CAMERAS:
        cells = table[name]
        assert cells[1] == "enabled" and cells[2] == "live", cells
        assert cells[3] == size.replace("x", TIMES), cells
        assert abs(float(cells[4]) - fps) <= 2, cells
        assert 200 <= kbits(cells[5]) <= 3000, cells  # -b:v 1M of a test pattern
        assert 50 <= kbits(cells[6]) <= 200, cells  # -b:a 96k
        assert cells[7] == "1.0 s", cells  # -g: one keyframe a second
        assert re.fullmatch(r"127\.0\.0\.1:\d+", cells[8]), cells
        assert cells[10] == "", cells  # healthy: no warnings
    assert table["lobby"][2] == "idle"
    browser.screenshot(shots / "console-channels.png")

    # The table at a phone's width: the page itself never scrolls sideways.
    browser.call("Emulation.setDeviceMetricsOverride", width=PHONE_WIDTH, height=800,
                 deviceScaleFactor=1, mobile=True)  # fmt: skip
    time.sleep(0.3)
    assert browser.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    browser.call("Emulation.setDeviceMetricsOverride", width=browser.size[0],
                 height=browser.size[1], deviceScaleFactor=1, mobile=False)  # fmt: skip

    # The channel's page: the preview plays (hls.js shipped with the package).
    browser.evaluate("document.querySelector('#channels tr[data-name=\"studio-a\"] a').click()")
    browser.wait_for("!document.querySelector('#view-channel').hidden", 10, "the channel page")
    assert browser.evaluate("Hls.version") == HLSJS_VERSION
    play_url = browser.wait_for("document.querySelector('#play-url').value", 10, "URLs")
    assert "/studio-a/playlist.m3u8?x-oss-process=hls%2Fsign&" in play_url, play_url
    video = "document.querySelector('#preview')"
    browser.wait_for(f"{video}.currentTime > 0.5", PREVIEW_START_TIMEOUT_S, "the preview")
    start = browser.evaluate(f"{video}.currentTime")
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < PLAY_S:
        time.sleep(1.0)
        samples.append(browser.evaluate(f"{video}.currentTime"))
    assert all(b > a for a, b in zip([start, *samples], samples, strict=False)), samples
    assert samples[-1] - start >= PLAY_S - 1.5, (start, samples)
    assert browser.evaluate(f"{video}.videoWidth") == 640
    # The latest snapshot (studio-a takes one every 2 s).
    browser.wait_for(
        "!document.querySelector('#snapshot-box').hidden &&"
        "document.querySelector('#snapshot').naturalWidth === 640",
        10,
        "the snapshot",
    )
    # Delete is refused while live, with the reason shown.
    browser.evaluate("window.confirm = () => true; document.querySelector('#delete').click()")
    refused = browser.wait_for("document.querySelector('#action-msg').textContent", 10)
    assert refused.startswith("ChannelStillLive"), refused
    assert service.call(service.store.get_channel(BUCKET, "studio-a")) is not None
    # A VOD clip of the last minute: a finished playlist whose segments play.
    browser.evaluate("document.querySelector('#vod-form').requestSubmit()")
    clip_url = browser.wait_for("document.querySelector('#vod-url').value", 10, "the clip")
    clip = requests.get(clip_url, timeout=10)
    assert clip.status_code == 200 and "#EXT-X-ENDLIST" in clip.text, clip.text
    first = next(line for line in clip.text.splitlines() if ".ts?" in line)
    segment = requests.get(urljoin(clip_url, first), timeout=10)
    assert segment.status_code == 200 and segment.content[:1] == b"\x47", segment.status_code
    # The dark theme, which a system set to dark gets.
    browser.call("Emulation.setEmulatedMedia",
                 features=[{"name": "prefers-color-scheme", "value": "dark"}])  # fmt: skip
    time.sleep(0.5)
    browser.screenshot(shots / "console-channel.png")
    browser.call("Emulation.setEmulatedMedia", features=[])

    # Disable from the page: the publisher is kicked within a second, and the page says so.
    a_proc = procs[0]
    assert a_proc.poll() is None
    clicked = time.monotonic()
    browser.evaluate("document.querySelector('#toggle-status').click()")
    while service.call(service.store.live_push(BUCKET, "studio-a")) is not None:
        assert time.monotonic() - clicked < KICK_LIMIT_S, "the push still runs"
        time.sleep(0.02)
    kicked_s = time.monotonic() - clicked
    a_proc.wait(5)  # ffmpeg sees its connection closed
    print(f"push ended {kicked_s:.3f} s after the click; ffmpeg exited with {a_proc.returncode}")
    note = browser.wait_for(
        "document.querySelector('#ch-note').textContent.includes('disconnected') &&"
        "document.querySelector('#ch-state').textContent === 'idle' &&"
        "document.querySelector('#ch-note').textContent",
        5,
        "the page to show the kick",
    )
    assert "Disabled" in note
    assert browser.evaluate("document.querySelector('#ch-status').textContent") == "disabled"

    # Create a channel from the page and publish to the URL it shows.
    browser.evaluate("location.hash = '#/'")
    browser.wait_for("!document.querySelector('#view-list').hidden", 10)
    browser.evaluate("document.querySelector('#new-channel').click()")
    form = {"name": "studio-c", "frag_duration": "2", "frag_count": "4",
            "playlist_name": "main.m3u8"}  # fmt: skip
    set_form(browser, "#create-form", form)
    browser.wait_for("location.hash.endsWith('/studio-c')", 10, "the new channel's page")
    publish_url = browser.wait_for(
        "document.querySelector('#publish-url').value.includes('/studio-c?') &&"
        "document.querySelector('#obs-key').value.startsWith('studio-c?') &&"
        "document.querySelector('#publish-url').value",
        10,
        "the publish URL",
    )
    assert publish_url.startswith("rtmp://") and "Signature=" in publish_url
    obs = browser.evaluate(
        "[document.querySelector('#obs-server').value, document.querySelector('#obs-key').value]"
    )
    assert f"{obs[0]}/{obs[1]}" == publish_url
    channel = service.call(service.store.get_channel(BUCKET, "studio-c"))
    assert channel is not None
    assert (channel.config.frag_duration_s, channel.config.frag_count) == (2, 4)
    assert channel.config.playlist_name == "main.m3u8"
    procs.append(publishers.start(publishers.ffmpeg_live(publish_url, duration_s=PUSH_S, gop_s=1)))
    browser.wait_for(
        "document.querySelector('#ch-state').textContent === 'live'", LIVE_TIMEOUT_S,
        "the new channel to be live",
    )  # fmt: skip

    # An expired session (as the server itself issued it, an hour ago) is refused.
    now_ms = int(time.time() * 1000)
    old = Session(ACCESS_KEY_ID, now_ms - 3_600_000, now_ms - 1_000, "0" * 32)
    token = Sessions({ACCESS_KEY_ID: ACCESS_KEY_SECRET}, 1800).token(old)
    browser.call("Network.setCookie", name=COOKIE, value=token, url=console,
                 path="/-/console/", httpOnly=True, sameSite="Strict")  # fmt: skip
    browser.navigate(console)
    browser.wait_for("!document.querySelector('#view-signin').hidden", 10, "sign-in again")
    status = browser.evaluate("fetch('api/channels?bucket=live').then(r => r.status)")
    assert status == 401


FIREFOX_PLAY_S = 3.0  # Firefox shows the page works; the long checks run in Chromium


def test_console_in_firefox(service: ServiceThread, tmp_path: Path) -> None:
    """The same page in Firefox: sign in, the live table, the preview (hls.js on Firefox's
    MediaSource), and a disable that kicks the publisher."""
    config = ChannelConfig(frag_duration_s=1)
    service.call(service.store.put_channel(BUCKET, "studio-f", config, int(time.time() * 1000)))
    url = service.signed_publish_url("studio-f")
    proc = publishers.start(publishers.ffmpeg_live(url, duration_s=PUSH_S, gop_s=1))
    try:
        with Firefox(tmp_path / "firefox") as browser:
            browser.navigate(f"{service.endpoint}/-/console/")
            browser.wait_for("!document.querySelector('#view-signin').hidden", 10, "sign-in")
            set_form(browser, "#signin-form",
                     {"access_key_id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET})  # fmt: skip
            browser.wait_for("!document.querySelector('#view-list').hidden", 10, "the table")
            [cookie] = [c for c in browser.cookies() if c["name"] == COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "strict", cookie
            deadline = time.monotonic() + LIVE_TIMEOUT_S
            while not (
                (row := rows(browser).get("studio-f")) and row[2] == "live" and row[4] != NONE
            ):
                assert time.monotonic() < deadline, rows(browser)
                time.sleep(0.5)
            assert row[3] == f"640{TIMES}360", row
            browser.evaluate(
                "document.querySelector('#channels tr[data-name=\"studio-f\"] a').click()"
            )
            video = "document.querySelector('#preview')"
            browser.wait_for(f"{video}.currentTime > 0.5", PREVIEW_START_TIMEOUT_S, "the preview")
            start = browser.evaluate(f"{video}.currentTime")
            time.sleep(FIREFOX_PLAY_S)
            assert browser.evaluate(f"{video}.currentTime") - start >= FIREFOX_PLAY_S - 1
            assert browser.evaluate(f"{video}.videoWidth") == 640
            clicked = time.monotonic()
            browser.evaluate("document.querySelector('#toggle-status').click()")
            while service.call(service.store.live_push(BUCKET, "studio-f")) is not None:
                assert time.monotonic() - clicked < KICK_LIMIT_S, "the push still runs"
                time.sleep(0.02)
            browser.wait_for(
                "document.querySelector('#ch-note').textContent.includes('disconnected')", 5
            )
    finally:
        publishers.stop(proc)
