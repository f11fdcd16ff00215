"""Raw HTTP helpers for the API tests that go around `oss2`: V1 signing by hand, URLs sent
exactly as written, error codes out of XML bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import aiohttp
from yarl import URL

from livechannel.api.dates import http_date
from livechannel.auth import signing
from tests.support.api_service import AK, PRIVATE, SK, Service

CONFIG = (
    b"<LiveChannelConfiguration><Description/><Status>enabled</Status><Target><Type>HLS</Type>"
    b"<FragDuration>5</FragDuration><FragCount>3</FragCount><PlaylistName/></Target>"
    b"</LiveChannelConfiguration>"
)


def sign(
    method: str,
    bucket: str | None,
    key: str,
    query: list[tuple[str, str | None]],
    *,
    date: str,
    content_type: str = "",
    content_md5: str = "",
    extra: Mapping[str, str] | None = None,
    access_key_id: str = AK,
    secret: str = SK,
) -> dict[str, str]:
    headers = {"Date": date, **(extra or {})}
    if not content_type and method in ("PUT", "POST", "PATCH"):
        content_type = "application/octet-stream"  # what aiohttp's client adds; it is signed
    if content_type:
        headers["Content-Type"] = content_type
    if content_md5:
        headers["Content-MD5"] = content_md5
    resource = signing.canonical_resource(bucket, key, query)
    string = signing.header_string_to_sign(
        method, content_md5, content_type, date, extra or {}, resource
    )
    headers["Authorization"] = f"OSS {access_key_id}:{signing.hmac_sha1_b64(secret, string)}"
    return headers


def url(service: Service, raw_path_and_query: str) -> URL:
    return URL(service.endpoint + raw_path_and_query, encoded=True)


def code(body: bytes) -> str:
    root = ET.fromstring(body)
    assert root.tag == "Error"
    return root.findtext("Code") or ""


def now(service: Service) -> str:
    return http_date(service.clock())


async def put_channel(
    service: Service, http: aiohttp.ClientSession, body: bytes, name: str = "c"
) -> aiohttp.ClientResponse:
    headers = sign("PUT", PRIVATE, name, [("live", None)], date=now(service),
                   content_type="application/xml")  # fmt: skip
    async with http.put(url(service, f"/{PRIVATE}/{name}?live"), data=body, headers=headers) as r:
        await r.read()
        return r
