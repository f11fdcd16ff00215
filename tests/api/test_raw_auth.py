"""What `oss2` cannot send about authentication: bad dates and signatures, malformed
Authorization headers, URL signatures, sub-resources in the string to sign, anonymous
callers per ACL."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from yarl import URL

from livechannel.api.dates import http_date
from livechannel.store.base import Acl
from tests.api.raw import CONFIG, code, now, put_channel, sign, url
from tests.support.api_service import AK, PRIVATE, PUBLIC_READ, PUBLIC_RW, SK, Service

# --- signatures and dates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset_s, status, error",
    [
        (-14 * 60, 200, ""),
        (14 * 60, 200, ""),
        (-16 * 60, 403, "RequestTimeTooSkewed"),
        (16 * 60, 403, "RequestTimeTooSkewed"),
    ],
)
async def test_date_skew(
    service: Service, http: aiohttp.ClientSession, offset_s: int, status: int, error: str
) -> None:
    date = http_date(service.clock() + offset_s * 1000)
    headers = sign("GET", PRIVATE, "", [("live", None)], date=date)
    async with http.get(url(service, f"/{PRIVATE}/?live"), headers=headers) as r:
        assert r.status == status
        if error:
            assert code(await r.read()) == error


@pytest.mark.parametrize(
    "headers, status, error",
    [
        ({"Authorization": "OSS nocolon"}, 400, "InvalidArgument"),
        ({"Authorization": "Bearer abc"}, 400, "InvalidArgument"),
        ({"Authorization": f"OSS {AK}:c2lnbmF0dXJl"}, 403, "AccessDenied"),  # no Date
        ({"Authorization": f"OSS {AK}:c2ln", "Date": "2 Jun 1982 00:00:00 GMT"}, 403,
         "AccessDenied"),
        ({"Authorization": f"OSS {AK}:c2ln", "Date": "Thu, 2 Jun 1982 00:00:00 GMT"}, 403,
         "AccessDenied"),
    ],
)  # fmt: skip
async def test_malformed_authorization(
    service: Service,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    async with http.get(url(service, f"/{PRIVATE}/?live"), headers=headers) as r:
        assert r.status == status
        assert code(await r.read()) == error


async def test_unknown_key_and_wrong_signature(
    service: Service, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    date = now(service)
    unknown = sign("GET", PRIVATE, "", [("live", None)], date=date, access_key_id="nobody")
    async with http.get(url(service, f"/{PRIVATE}/?live"), headers=unknown) as r:
        assert r.status == 403 and code(await r.read()) == "InvalidAccessKeyId"
    wrong = sign("GET", PRIVATE, "", [("live", None)], date=date, secret="not-the-secret")
    async with http.get(url(service, f"/{PRIVATE}/?live"), headers=wrong) as r:
        assert r.status == 403
        root = ET.fromstring(await r.read())
    assert root.findtext("Code") == "SignatureDoesNotMatch"
    assert root.findtext("StringToSign") == f"GET\n\n\n{date}\n/{PRIVATE}/?live"
    assert root.findtext("SignatureProvided") == wrong["Authorization"].split(":")[1]
    provided = wrong["Authorization"].split(":")[1]
    logged = caplog.text
    assert SK not in logged and provided not in logged and "Signature=" not in logged


async def test_signed_headers_and_content_type_are_part_of_the_signature(
    service: Service, http: aiohttp.ClientSession
) -> None:
    date = now(service)
    headers = sign("PUT", PRIVATE, "", [("acl", None)], date=date,
                   extra={"x-oss-acl": "public-read"})  # fmt: skip
    tampered = {**headers, "x-oss-acl": "public-read-write"}
    async with http.put(url(service, f"/{PRIVATE}/?acl"), headers=tampered) as r:
        assert r.status == 403 and code(await r.read()) == "SignatureDoesNotMatch"
    async with http.put(url(service, f"/{PRIVATE}/?acl"), headers=headers) as r:
        assert r.status == 200
    bucket = await service.store.get_bucket(PRIVATE)
    assert bucket is not None and bucket.acl == Acl.PUBLIC_READ


async def test_signature_in_header_and_url_is_invalid(
    service: Service, http: aiohttp.ClientSession
) -> None:
    headers = sign("GET", PRIVATE, "", [("live", None)], date=now(service))
    target = f"/{PRIVATE}/?live&OSSAccessKeyId={AK}&Expires=9999999999&Signature=abc"
    async with http.get(url(service, target), headers=headers) as r:
        assert r.status == 400 and code(await r.read()) == "InvalidArgument"


@pytest.mark.parametrize(
    "query",
    [
        f"OSSAccessKeyId={AK}&Signature=abc",
        "Expires=9999999999&Signature=abc",
        f"OSSAccessKeyId={AK}&Expires=9999999999",
        f"OSSAccessKeyId={AK}&Expires=soon&Signature=abc",
        f"OSSAccessKeyId={AK}&Expires=1000&Signature=abc",  # long expired: checked first
    ],
)
async def test_url_signature_refusals(
    service: Service, http: aiohttp.ClientSession, query: str
) -> None:
    async with http.get(url(service, f"/{PRIVATE}/x.ts?{query}")) as r:
        assert r.status == 403 and code(await r.read()) == "AccessDenied"


async def test_bare_and_blank_sub_resources_both_work(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await put_channel(service, http, CONFIG)
    # A signed URL carries bare `live`; an ordinary request `live=`.
    signed = service.bucket().sign_url("GET", "c", 60, params={"live": ""})
    assert "?live&" in signed or "&live&" in signed or signed.endswith("&live")
    async with http.get(URL(signed, encoded=True)) as r:
        assert r.status == 200
        assert ET.fromstring(await r.read()).findtext("Target/PlaylistName") == "playlist.m3u8"
    headers = sign("GET", PRIVATE, "c", [("live", "")], date=now(service))
    async with http.get(url(service, f"/{PRIVATE}/c?live="), headers=headers) as r:
        assert r.status == 200


# --- anonymous callers and ACLs -------------------------------------------------------------


@pytest.mark.parametrize(
    "bucket, method, target, status",
    [
        (PRIVATE, "GET", "/cam/1.ts", 403),
        (PRIVATE, "HEAD", "/cam/1.ts", 403),
        (PRIVATE, "GET", "/", 403),
        (PUBLIC_READ, "GET", "/cam/1.ts", 200),
        (PUBLIC_READ, "HEAD", "/cam/1.ts", 200),
        (PUBLIC_READ, "GET", "/", 200),  # listing is a read (real OSS does the same)
        (PUBLIC_READ, "DELETE", "/cam/1.ts", 403),
        (PUBLIC_READ, "GET", "/?live", 403),
        (PUBLIC_READ, "GET", "/?acl", 403),
        (PUBLIC_RW, "GET", "/cam/1.ts", 200),
        (PUBLIC_RW, "GET", "/?live", 200),
        (PUBLIC_RW, "GET", "/?acl", 403),  # the ACL itself is the owner's only
        (PUBLIC_RW, "DELETE", "/cam/1.ts", 204),
    ],
)
async def test_anonymous_access_per_acl(
    service: Service,
    http: aiohttp.ClientSession,
    bucket: str,
    method: str,
    target: str,
    status: int,
) -> None:
    await service.storages[bucket].put("cam/1.ts", b"ts", "video/MP2T")
    async with http.request(method, url(service, f"/{bucket}{target}")) as r:
        assert r.status == status
        if status == 403 and method != "HEAD":
            assert code(await r.read()) == "AccessDenied"


async def test_get_service_needs_a_signature(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(url(service, "/")) as r:
        assert r.status == 403 and code(await r.read()) == "AccessDenied"
    headers = sign("GET", None, "", [], date=now(service))
    async with http.get(url(service, "/"), headers=headers) as r:
        assert r.status == 200
        names = [n.text for n in ET.fromstring(await r.read()).iter("Name")]
    assert sorted(names) == sorted([PRIVATE, PUBLIC_READ, PUBLIC_RW])
