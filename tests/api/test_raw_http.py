"""What `oss2` cannot send: hostile bodies, both addressing styles, CORS, HEAD errors, unknown
operations, the headers every response carries, failures mid-request (signatures, dates and
anonymous access: test_raw_auth.py)."""

from __future__ import annotations

import base64
import hashlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from livechannel.api.app import create_app
from livechannel.api.context import ApiContext
from livechannel.api.dates import http_date
from livechannel.auth.urls import ServiceUrls
from livechannel.errors import StorageError
from livechannel.storage.memory import MemoryStorage
from livechannel.store.base import Acl
from livechannel.store.memory import MemoryStore
from tests.api.raw import CONFIG, code, now, put_channel, sign, url
from tests.support.api_service import AK, PRIVATE, PUBLIC_READ, SK, Clock, Service

# --- XML bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<LiveChannelConfiguration><Target>",  # truncated
        b"not xml at all",
        b"",
        b"<Other/>",  # wrong root
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">'
        b"]><LiveChannelConfiguration><Description>&lol2;</Description></LiveChannelConfiguration>",
        b'<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        b"<LiveChannelConfiguration><Description>&ext;</Description></LiveChannelConfiguration>",
        b"<LiveChannelConfiguration><Description>&undefined;</Description>"
        b"</LiveChannelConfiguration>",
    ],
)
async def test_bad_xml_bodies_are_malformed(
    service: Service, http: aiohttp.ClientSession, body: bytes
) -> None:
    r = await put_channel(service, http, body)
    assert r.status == 400
    assert code(r._body or b"") == "MalformedXML"
    assert await service.store.get_channel(PRIVATE, "c") is None


async def test_oversized_body_is_refused(service: Service, http: aiohttp.ClientSession) -> None:
    body = CONFIG.replace(b"<Description/>", b"<Description>" + b" " * 70_000 + b"</Description>")
    r = await put_channel(service, http, body)
    assert r.status == 400 and code(r._body or b"") == "MalformedXML"


async def test_xml_declaration_and_content_type_are_accepted(
    service: Service, http: aiohttp.ClientSession
) -> None:
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + CONFIG
    r = await put_channel(service, http, body)
    assert r.status == 200
    root = ET.fromstring(r._body or b"")
    assert (
        root.findtext("PlayUrls/Url")
        == f"http://127.0.0.1:{service.port}/{PRIVATE}/c/playlist.m3u8"
    )


@pytest.mark.parametrize(
    "replace, ok",
    [
        ((b"<FragCount>3</FragCount>", b""), False),  # FragDuration without FragCount
        ((b"<FragDuration>5</FragDuration><FragCount>3</FragCount>", b""), True),  # neither
        ((b"<Target>", b"<Targe>"), False),
        ((b"<Type>HLS</Type>", b""), False),
    ],
)
async def test_frag_both_or_neither_and_required_target(
    service: Service, http: aiohttp.ClientSession, replace: tuple[bytes, bytes], ok: bool
) -> None:
    body = CONFIG.replace(*replace)
    if replace[0] == b"<Target>":
        body = body.replace(b"</Target>", b"</Targe>")
    r = await put_channel(service, http, body)
    if ok:
        assert r.status == 200
        channel = await service.store.get_channel(PRIVATE, "c")
        assert channel is not None and channel.config.frag_duration_s == 5
    else:
        assert r.status == 400 and code(r._body or b"") == "InvalidArgument"


async def test_snapshot_interval_is_validated(
    service: Service, http: aiohttp.ClientSession
) -> None:
    def config(dest: str, interval: int) -> bytes:
        snap = (
            f"<Snapshot><RoleName>r</RoleName><DestBucket>{dest}</DestBucket>"
            f"<NotifyTopic>t</NotifyTopic><Interval>{interval}</Interval></Snapshot>"
        )
        return CONFIG.replace(b"</Target>", b"</Target>" + snap.encode())

    r = await put_channel(service, http, config(PUBLIC_READ, 101))
    assert r.status == 400 and code(r._body or b"") == "InvalidArgument"
    r = await put_channel(service, http, config("no-such-bucket", 1))  # snapshots would be lost
    assert r.status == 400 and b"<ArgumentName>DestBucket</ArgumentName>" in (r._body or b"")
    assert await service.store.get_channel(PRIVATE, "c") is None
    assert (await put_channel(service, http, config(PUBLIC_READ, 1))).status == 200
    channel = await service.store.get_channel(PRIVATE, "c")
    assert channel is not None and channel.config.snapshot is not None
    snapshot = channel.config.snapshot
    assert (snapshot.interval_s, snapshot.role_name, snapshot.dest_bucket) == (1, "r", PUBLIC_READ)


# --- addressing ---------------------------------------------------------------------------------


@pytest.fixture
async def vhost(tmp_path: Path) -> AsyncIterator[tuple[str, MemoryStore, MemoryStorage]]:
    """The app under a real domain name, so `Host: <bucket>.lc.test` selects the bucket."""
    clock = Clock()
    store = await MemoryStore.open()
    await store.ensure_bucket("live", Acl.PRIVATE, clock())
    storage = MemoryStorage()
    runner = web.AppRunner(create_app(ApiContext(
        store=store, storages={"live": storage}, credentials={AK: SK},
        urls=ServiceUrls("lc.test", 1935, 80), now_ms=clock,
    )), access_log=None)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", store, storage
    finally:
        await runner.cleanup()


async def test_virtual_host_and_path_style_addressing(
    vhost: tuple[str, MemoryStore, MemoryStorage], http: aiohttp.ClientSession
) -> None:
    base, _store, storage = vhost
    await storage.put("cam/a+b.ts", b"plus", "video/MP2T")
    date = http_date(Clock()())
    # Virtual host: the bucket is in the Host; the key is the whole path.
    headers = sign("PUT", "live", "cam", [("live", None)], date=date,
                   content_type="application/xml")  # fmt: skip
    headers["Host"] = "live.lc.test"
    async with http.put(URL(base + "/cam?live", encoded=True), data=CONFIG, headers=headers) as r:
        assert r.status == 200
        root = ET.fromstring(await r.read())
    assert root.findtext("PublishUrls/Url") == "rtmp://live.lc.test/live/cam"
    assert root.findtext("PlayUrls/Url") == "http://live.lc.test/cam/playlist.m3u8"
    # Same service, path style (Host is the bare domain), `+` is a plus, %2F is a slash.
    for host, path in (("lc.test", "/live/cam%2Fa+b.ts"), ("live.lc.test:80", "/cam/a+b.ts")):
        key = "cam/a+b.ts"
        headers = sign("GET", "live", key, [], date=date)
        headers["Host"] = host
        async with http.get(URL(base + path, encoded=True), headers=headers) as r:
            assert r.status == 200, host
            assert await r.read() == b"plus"
    headers = sign("GET", "nosuch", "x", [], date=date)
    headers["Host"] = "nosuch.lc.test"
    async with http.get(URL(base + "/x", encoded=True), headers=headers) as r:
        assert r.status == 404 and code(await r.read()) == "NoSuchBucket"
    async with http.get(URL(base + "/Bad_Bucket/x", encoded=True)) as r:
        assert r.status == 400 and code(await r.read()) == "InvalidBucketName"
    async with http.get(URL(base + "/live/%FF%FE", encoded=True)) as r:
        assert r.status == 400 and code(await r.read()) == "InvalidObjectName"


# --- CORS, HEAD errors, unknown operations, common headers ------------------------------------


async def test_cors_preflight_and_headers(service: Service, http: aiohttp.ClientSession) -> None:
    await service.storages[PUBLIC_READ].put("cam/playlist.m3u8", b"#EXTM3U\n", "x")
    preflight = {
        "Origin": "https://player.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    }
    async with http.options(url(service, f"/{PRIVATE}/cam/playlist.m3u8"), headers=preflight) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "GET" in r.headers["Access-Control-Allow-Methods"]
        assert r.headers["Access-Control-Allow-Headers"] == "range"
    refused = {**preflight, "Access-Control-Request-Method": "DELETE"}
    async with http.options(url(service, f"/{PRIVATE}/cam/x"), headers=refused) as r:
        assert r.status == 403 and code(await r.read()) == "AccessForbidden"
    get_headers = {"Origin": "https://player.example"}
    async with http.get(
        url(service, f"/{PUBLIC_READ}/cam/playlist.m3u8"), headers=get_headers
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Content-Range" in r.headers["Access-Control-Expose-Headers"]


async def test_head_error_has_no_body_and_x_oss_err(
    service: Service, http: aiohttp.ClientSession
) -> None:
    headers = sign("HEAD", PRIVATE, "nope.ts", [], date=now(service))
    async with http.head(url(service, f"/{PRIVATE}/nope.ts"), headers=headers) as r:
        assert r.status == 404
        assert await r.read() == b""
        error = base64.b64decode(r.headers["x-oss-err"])
    assert code(error) == "NoSuchKey"
    assert ET.fromstring(error).findtext("RequestId") == r.headers["x-oss-request-id"]


@pytest.mark.parametrize(
    "method, target, status, error",
    [
        ("PUT", "/obj.ts", 501, "NotImplemented"),
        ("POST", "/obj.ts", 501, "NotImplemented"),
        ("GET", "/obj.ts?uploads", 501, "NotImplemented"),
        ("GET", "/?location", 501, "NotImplemented"),
        ("GET", "/c?live&comp=weird", 501, "NotImplemented"),
        ("PATCH", "/obj.ts", 405, "MethodNotAllowed"),
        ("POST", "/c?live", 405, "MethodNotAllowed"),
        ("DELETE", "/?live", 405, "MethodNotAllowed"),
        ("PUT", "/", 501, "NotImplemented"),
    ],
)
async def test_unknown_operations_are_oss_errors(
    service: Service, http: aiohttp.ClientSession, method: str, target: str, status: int, error: str
) -> None:
    path, _, raw_query = target.partition("?")
    query = [(q, None) for q in raw_query.split("&") if q and "=" not in q]
    query += [tuple(q.split("=", 1)) for q in raw_query.split("&") if "=" in q]  # type: ignore[misc]
    headers = sign(method, PRIVATE, path[1:], query, date=now(service))
    async with http.request(method, url(service, f"/{PRIVATE}{target}"), headers=headers) as r:
        assert r.status == status
        assert code(await r.read()) == error


async def test_every_response_has_the_common_headers(
    service: Service, http: aiohttp.ClientSession
) -> None:
    ids = set()
    headers = sign("GET", PRIVATE, "", [("live", None)], date=now(service))
    for target, hdrs in ((f"/{PRIVATE}/?live", headers), (f"/{PRIVATE}/x", {}), ("/", {})):
        async with http.get(url(service, target), headers=hdrs) as r:
            body = await r.read()
            assert r.headers["Server"] == "livechannel"
            assert r.headers["Date"].endswith(" GMT")
            assert int(r.headers["Content-Length"]) == len(body)
            ids.add(r.headers["x-oss-request-id"])
    assert len(ids) == 3


async def test_batch_delete_content_md5_and_quiet(
    service: Service, http: aiohttp.ClientSession
) -> None:
    for key in ("a.ts", "b.ts"):
        await service.storages[PRIVATE].put(key, b"x", "video/MP2T")
    body = b"<Delete><Quiet>true</Quiet><Object><Key>a.ts</Key></Object></Delete>"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    for content_md5, status, error in (("", 400, "InvalidArgument"),
                                       ("AAAAAAAAAAAAAAAAAAAAAA==", 400, "InvalidDigest"),
                                       (md5, 200, "")):  # fmt: skip
        headers = sign("POST", PRIVATE, "", [("delete", None)], date=now(service),
                       content_type="application/xml", content_md5=content_md5)  # fmt: skip
        async with http.post(url(service, f"/{PRIVATE}/?delete"), data=body, headers=headers) as r:
            reply = await r.read()
            assert r.status == status
            if error:
                assert code(reply) == error
            else:
                assert reply == b""  # quiet: only failures would be listed
    assert await service.storages[PRIVATE].head("a.ts") is None
    assert await service.storages[PRIVATE].head("b.ts") is not None


async def test_unexpected_failures_are_500_and_storage_failures_503(
    service: Service,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(*_args: object) -> None:
        raise RuntimeError("bug")

    async def unavailable(*_args: object) -> None:
        raise StorageError("disk went away")

    monkeypatch.setattr(service.store, "get_channel", boom)
    monkeypatch.setattr(service.storages[PRIVATE], "get", unavailable)
    date = now(service)
    headers = sign("GET", PRIVATE, "c", [("live", None)], date=date)
    with caplog.at_level(logging.ERROR, logger="livechannel.api"):
        async with http.get(url(service, f"/{PRIVATE}/c?live"), headers=headers) as r:
            assert r.status == 500 and code(await r.read()) == "InternalError"
    assert "RuntimeError: bug" in caplog.text  # logged with its traceback
    headers = sign("GET", PRIVATE, "x.ts", [], date=date)
    async with http.get(url(service, f"/{PRIVATE}/x.ts"), headers=headers) as r:
        assert r.status == 503 and code(await r.read()) == "ServiceUnavailable"


async def test_response_override_refuses_header_injection(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await service.storages[PRIVATE].put("x.ts", b"x", "video/MP2T")
    value = "text/plain\r\nSet-Cookie: a=b"
    query = [("response-content-type", value)]
    headers = sign("GET", PRIVATE, "x.ts", query, date=now(service))
    target = f"/{PRIVATE}/x.ts?response-content-type={quote(value, safe='')}"
    async with http.get(url(service, target), headers=headers) as r:
        assert r.status == 400 and code(await r.read()) == "InvalidArgument"
        assert "Set-Cookie" not in r.headers


async def test_storage_failure_mid_body_closes_the_connection(
    service: Service, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = service.storages[PRIVATE]
    info = await storage.put("big.ts", b"x" * 1000, "video/MP2T")

    async def failing_chunks() -> AsyncIterator[bytes]:
        yield b"x" * 100
        raise StorageError("disk read failed")

    async def get(key: str, start: int = 0, end: int | None = None) -> object:
        return info, failing_chunks()

    monkeypatch.setattr(storage, "get", get)
    headers = sign("GET", PRIVATE, "big.ts", [], date=now(service))
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url(service, f"/{PRIVATE}/big.ts"), headers=headers) as r:
            assert r.status == 200 and r.headers["Content-Length"] == "1000"
            await r.read()  # short body, then the server closes: never a silent truncation
    monkeypatch.undo()
    headers = sign("GET", PRIVATE, "big.ts", [], date=now(service))
    async with http.get(url(service, f"/{PRIVATE}/big.ts"), headers=headers) as r:
        assert await r.read() == b"x" * 1000


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        (f"/{PUBLIC_READ}/a%0Ab.ts", "NoSuchKey"),
        (f"/{PUBLIC_READ}/a%0D%0Ab?live", "AccessDenied"),
        ("/%0A", "InvalidBucketName"),
    ],
)
async def test_control_characters_in_the_path_get_an_oss_error(
    service: Service, http: aiohttp.ClientSession, raw_path: str, expected: str
) -> None:
    """A decoded newline once missed the catch-all route: aiohttp's plain-text 404."""
    async with http.get(url(service, raw_path)) as r:
        assert r.headers["Content-Type"].startswith("application/xml")
        assert code(await r.read()) == expected
