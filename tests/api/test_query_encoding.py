"""Query values are application/x-www-form-urlencoded (`+` is a space), as `oss2` sends them
through `requests`; a channel named `sp ace+plus-中文` is found by the prefix `sp ace` and its
objects by theirs, and signatures still verify (V1 signs sub-resource values decoded)."""

from __future__ import annotations

import time
from urllib.parse import quote

import requests

from livechannel.api.dates import http_date
from livechannel.auth import signing
from tests.support.api_service import AK, PRIVATE, SK, Service, info, sync

NAME = "sp ace+plus-中文"
REQUEST_TIMEOUT_S = 10


async def test_oss2_lists_channels_and_objects_by_a_prefix_with_a_space(service: Service) -> None:
    bucket = service.bucket()
    for name in (NAME, "sp", "space"):
        await sync(bucket.create_live_channel, name, info())
    listed = await sync(bucket.list_live_channel, prefix="sp ace")
    assert [c.name for c in listed.channels] == [NAME]
    assert listed.prefix == "sp ace"
    after = await sync(bucket.list_live_channel, marker="sp ace")  # `sp ace+...` > `sp ace`
    assert [c.name for c in after.channels] == [NAME, "space"]

    storage = service.storages[PRIVATE]
    for key in (f"{NAME}/1000.ts", f"{NAME}/a b/1005.ts", "sp/1000.ts"):
        await storage.put(key, b"x", "video/MP2T")
    objects = await sync(bucket.list_objects, prefix=f"{NAME}/", delimiter=" ")
    assert [o.key for o in objects.object_list] == [f"{NAME}/1000.ts"]
    assert objects.prefix_list == [f"{NAME}/a "]
    objects = await sync(bucket.list_objects, prefix="sp ", marker=f"{NAME}/1000.ts")
    assert [o.key for o in objects.object_list] == [f"{NAME}/a b/1005.ts"]


def _header_signed(service: Service, raw_query: str, query: list[tuple[str, str | None]],
                   key: str = "") -> requests.Response:  # fmt: skip
    date = http_date(time.time_ns() // 1_000_000)
    resource = signing.canonical_resource(PRIVATE, key, query)
    sig = signing.hmac_sha1_b64(SK, signing.header_string_to_sign("GET", "", "", date, {},
                                                                  resource))  # fmt: skip
    path = f"/{PRIVATE}/{quote(key)}"
    headers = {"Date": date, "Authorization": f"OSS {AK}:{sig}"}
    return requests.get(f"{service.endpoint}{path}?{raw_query}", headers=headers,
                        timeout=REQUEST_TIMEOUT_S)  # fmt: skip


async def test_raw_requests_plus_and_percent_20_mean_the_same(service: Service) -> None:
    await sync(service.bucket().create_live_channel, NAME, info())
    for raw in ("live&prefix=sp+ace", "live&prefix=sp%20ace", "live&prefix=sp+ace%2Bplus"):
        r = await sync(_header_signed, service, raw, [("live", None)])
        assert r.status_code == 200, r.text
        assert f"<Name>{NAME}</Name>" in r.text, (raw, r.text)
    r = await sync(_header_signed, service, "live&prefix=sp%2Bace", [("live", None)])
    assert "<Name>" not in r.text  # an escaped plus is a plus


async def test_raw_requests_signed_sub_resource_value_with_a_space(service: Service) -> None:
    """V1 signs sub-resource values decoded: a client that form-encodes the value (`+`) and
    one that percent-encodes it (`%20`) both verify."""
    await service.storages[PRIVATE].put("cam/1000.ts", b"segment", "video/MP2T")
    disposition = "attachment; filename=a b.ts"
    query = [("response-content-disposition", disposition)]
    for encoded in (quote(disposition, safe=""), quote(disposition, safe="").replace("%20", "+")):
        raw = f"response-content-disposition={encoded}"
        r = await sync(_header_signed, service, raw, query, "cam/1000.ts")
        assert r.status_code == 200, (raw, r.text)
        assert r.headers["Content-Disposition"] == disposition


async def test_raw_requests_signed_url_with_an_unescaped_plus_in_the_signature(
    service: Service,
) -> None:
    """A signed URL copied by hand with the base64 `+` of its Signature left as is still
    verifies: a Signature never holds a space."""
    await service.storages[PRIVATE].put("cam/1000.ts", b"segment", "video/MP2T")
    for expires in range(int(time.time()) + 600, int(time.time()) + 700):
        params = dict(signing.sign_url_params(AK, SK, "GET", PRIVATE, "cam/1000.ts", expires))
        if "+" in params["Signature"]:
            break
    else:
        raise AssertionError("no signature with a + among 100")
    url = (f"{service.endpoint}/{PRIVATE}/cam/1000.ts?OSSAccessKeyId={AK}"
           f"&Expires={params['Expires']}&Signature={params['Signature']}")  # fmt: skip
    r = await sync(requests.get, url, timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 200, r.text
    assert r.content == b"segment"
