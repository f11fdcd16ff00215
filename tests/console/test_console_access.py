"""The console gives a browser without a valid session nothing: every route of it, tried with
no cookie, a forged one, an expired one and a signed-out one, reads no data and changes
nothing; changes need the CSRF header and a same-site Origin too; a wrong secret gets no
session. Real service on loopback, plain HTTP (requests), no browser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import requests

from livechannel.config import Limits
from livechannel.console import DATA_ROUTES
from livechannel.console.routes import COOKIE, CSRF_HEADER, STATIC_FILES
from livechannel.console.session import (
    MAX_SIGN_IN_FAILURES,
    SIGN_IN_WINDOW_S,
    Session,
    Sessions,
    SignInThrottle,
)
from livechannel.store.base import ChannelStatus
from tests.support.service import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    BUCKET,
    ServiceThread,
    create_channel,
)

SESSION_IDLE_S = 1.0  # short, so that expiry is tested for real
SECRET_CHANNEL = "private-show-7f3a"  # must appear in no answer to a signed-out browser
TIMEOUT_S = 10.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceThread]:
    limits = Limits(console_session_idle_s=SESSION_IDLE_S)
    with ServiceThread(tmp_path / "data", limits=limits).start() as svc:
        create_channel(svc.bucket(), SECRET_CHANNEL)
        yield svc


def console(service: ServiceThread) -> str:
    return f"{service.endpoint}/-/console"


def sign_in(service: ServiceThread, secret: str = ACCESS_KEY_SECRET) -> requests.Response:
    return requests.post(
        f"{console(service)}/api/session",
        json={"access_key_id": ACCESS_KEY_ID, "secret": secret},
        timeout=TIMEOUT_S,
    )


def body_for(path: str) -> dict[str, str]:
    """A well-formed request body for each change, aimed at the existing channel."""
    return {
        "/channels": {
            "bucket": BUCKET,
            "name": "created-by-nobody",
            "frag_duration": "2",
            "frag_count": "3",
        },
        "/channel/status": {"bucket": BUCKET, "name": SECRET_CHANNEL, "status": "disabled"},
        "/channel/delete": {"bucket": BUCKET, "name": SECRET_CHANNEL},
        "/vod": {
            "bucket": BUCKET,
            "name": SECRET_CHANNEL,
            "playlist_name": "x.m3u8",
            "start_s": "1",
            "end_s": "100",
        },
        "/session": {},
    }[path]


def try_every_route(
    service: ServiceThread, cookies: dict[str, str], headers: dict[str, str]
) -> None:
    query = f"?bucket={BUCKET}&name={SECRET_CHANNEL}&expires_s=3600"
    for method, path, _handler, change in DATA_ROUTES:
        url = f"{console(service)}/api{path}{query}"
        kwargs = {"json": body_for(path)} if change else {}
        r = requests.request(
            method, url, cookies=cookies, headers=headers, timeout=TIMEOUT_S, **kwargs
        )
        assert r.status_code in (401, 403), (method, path, r.status_code, r.text)
        assert SECRET_CHANNEL not in r.text and "Signature" not in r.text, (method, path, r.text)
        assert r.json()["error"]["code"] in ("NotSignedIn", "AccessDenied"), r.text
        assert "Set-Cookie" not in r.headers
    unchanged(service)


def unchanged(service: ServiceThread) -> None:
    store = service.store
    channel = service.call(store.get_channel(BUCKET, SECRET_CHANNEL))
    assert channel is not None and channel.config.status == ChannelStatus.ENABLED
    assert service.call(store.get_channel(BUCKET, "created-by-nobody")) is None
    assert not service.object_path(f"{SECRET_CHANNEL}/x.m3u8").exists()


def test_signed_out_browser_reads_and_changes_nothing(service: ServiceThread) -> None:
    try_every_route(service, {}, {})
    forged = {COOKIE: "TFRBSXRlc3Q.AAAA"}
    try_every_route(service, forged, {})
    # A well-formed token signed with another secret (someone who guessed the format).
    other = Sessions({ACCESS_KEY_ID: "not-the-secret"}, 3600)
    _, token = other.sign_in(ACCESS_KEY_ID, int(time.time() * 1000))
    try_every_route(service, {COOKIE: token}, {})
    # Everything else under /-/console/ is a fixed file of the package, or 404.
    for name in STATIC_FILES:
        r = requests.get(f"{console(service)}/static/{name}", timeout=TIMEOUT_S)
        packaged = resources.files("livechannel.console").joinpath("static", name).read_bytes()
        assert r.status_code == 200 and r.content == packaged, name
    page = requests.get(f"{console(service)}/", timeout=TIMEOUT_S)
    assert (
        page.content
        == resources.files("livechannel.console").joinpath("static", "index.html").read_bytes()
    )
    for path in ("/static/../session.py", "/static/session.py", "/api/", "/api/status", "/x"):
        r = requests.get(console(service) + path, timeout=TIMEOUT_S)
        assert r.status_code == 404, (path, r.status_code)
    # The console's answers never carry the API's permissive CORS header.
    r = requests.get(
        f"{console(service)}/api/buckets", headers={"Origin": "http://evil.test"}, timeout=TIMEOUT_S
    )
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    # They are counted under one operation label, not per path.
    metrics = requests.get(f"{service.endpoint}/-/metrics", timeout=TIMEOUT_S).text
    assert 'operation="Console",status="401"' in metrics


def test_wrong_secret_gets_no_session(service: ServiceThread) -> None:
    for secret in ("wrong", ACCESS_KEY_SECRET + "x", ""):
        r = sign_in(service, secret)
        assert r.status_code in (400, 403), r.text
        assert COOKIE not in r.cookies
    r = requests.post(
        f"{console(service)}/api/session",
        timeout=TIMEOUT_S,
        json={"access_key_id": "LTAIunknown", "secret": ACCESS_KEY_SECRET},
    )
    assert r.status_code == 403 and COOKIE not in r.cookies
    # A sign-in form posted from another site (login CSRF) is refused before the secret counts.
    r = requests.post(
        f"{console(service)}/api/session",
        headers={"Origin": "http://evil.test"},
        json={"access_key_id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET},
        timeout=TIMEOUT_S,
    )
    assert r.status_code == 403 and COOKIE not in r.cookies
    # Four wrong so far; the right secret still works. Ten wrong in the window, and this
    # address must wait, right secret or not.
    assert sign_in(service).status_code == 200
    for _ in range(MAX_SIGN_IN_FAILURES - 4):
        assert sign_in(service, "guess").status_code == 403
    r = sign_in(service)
    assert r.status_code == 429 and r.json()["error"]["code"] == "TooManySignInAttempts"
    assert COOKIE not in r.cookies


def test_sign_in_throttle_window() -> None:
    throttle = SignInThrottle()
    for i in range(MAX_SIGN_IN_FAILURES):
        assert throttle.allowed("10.0.0.1", i)
        throttle.failed("10.0.0.1", i)
    assert not throttle.allowed("10.0.0.1", 100)
    assert throttle.allowed("10.0.0.2", 100)  # per address
    assert throttle.allowed("10.0.0.1", SIGN_IN_WINDOW_S * 1000 + 1)  # the window moved on


def test_session_cookie_and_csrf(service: ServiceThread) -> None:
    r = sign_in(service)
    assert r.status_code == 200, r.text
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/-/console/" in cookie
    assert ACCESS_KEY_SECRET not in cookie and ACCESS_KEY_SECRET not in r.text
    token, csrf = r.cookies[COOKIE], r.json()["csrf"]
    cookies = {COOKIE: token}
    # Signed in, a change without the CSRF header, or from another site, is still refused.
    for headers in ({}, {CSRF_HEADER: "wrong"}, {CSRF_HEADER: csrf, "Origin": "http://evil.test"}):
        for method, path, _handler, change in DATA_ROUTES:
            if not change:
                continue
            r = requests.request(
                method,
                f"{console(service)}/api{path}",
                json=body_for(path),
                cookies=cookies,
                headers=headers,
                timeout=TIMEOUT_S,
            )
            assert r.status_code == 403, (path, headers, r.text)
    unchanged(service)
    # With both, it works; then sign-out ends the session for good.
    r = requests.get(
        f"{console(service)}/api/channels?bucket={BUCKET}", cookies=cookies, timeout=TIMEOUT_S
    )
    assert r.status_code == 200 and SECRET_CHANNEL in r.text
    r = requests.delete(
        f"{console(service)}/api/session",
        cookies=cookies,
        headers={CSRF_HEADER: csrf},
        timeout=TIMEOUT_S,
    )
    assert r.status_code == 200
    try_every_route(service, cookies, {CSRF_HEADER: csrf})


def test_session_expires_when_idle(service: ServiceThread) -> None:
    r = sign_in(service)
    cookies = {COOKIE: r.cookies[COOKIE]}
    ok = requests.get(f"{console(service)}/api/session", cookies=cookies, timeout=TIMEOUT_S)
    assert ok.status_code == 200
    time.sleep(SESSION_IDLE_S + 0.3)
    try_every_route(service, cookies, {CSRF_HEADER: r.json()["csrf"]})


def test_token_checks() -> None:
    """Sans-IO: expiry, renewal, the 12 h cap, tampering, a removed key, sign-out."""
    keys = {"id1": "secret1"}
    sessions = Sessions(keys, 600)
    session, token = sessions.sign_in("id1", 1_000_000)
    assert sessions.check(token, 1_000_000 + 599_999) == session
    assert sessions.check(token, 1_000_000 + 600_000) is None
    assert sessions.renewed(session, 1_000_000 + 100_000) is None  # not yet half-way
    later = sessions.renewed(session, 1_000_000 + 400_000)
    assert later is not None and later.expires_ms == 1_000_000 + 1_000_000
    assert sessions.csrf_token(later) == sessions.csrf_token(session)
    payload, mac = token.split(".")
    assert sessions.check(payload + "." + mac[:-2] + "AA", 1_000_001) is None
    old = Session("id1", 0, 13 * 3600 * 1000, "n")
    assert sessions.check(sessions.token(old), 12 * 3600 * 1000) is None  # past the 12 h cap
    sessions.sign_out(session, 1_000_001)
    assert sessions.check(token, 1_000_002) is None
    assert sessions.check(sessions.token(later), 1_000_002) is None  # renewed copies too
    _, other = sessions.sign_in("id1", 1_000_000)
    keys.clear()
    assert sessions.check(other, 1_000_001) is None
