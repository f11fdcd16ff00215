"""OSS V4 signatures (OSS4-HMAC-SHA256) from the real `oss2` SDK: `oss2.AuthV4` and
`oss2.ProviderAuthV4` in the Authorization header across the LiveChannel calls and object
reads, and `Bucket.sign_url` presigned V4 GETs; V1 keeps working beside them."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime
from urllib.parse import urljoin

import m3u8
import oss2
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from oss2.credentials import StaticCredentialsProvider
from oss2.models import LiveChannelInfo, LiveChannelInfoTarget

from livechannel.auth import signing_v4
from livechannel.errors import InvalidArgument
from livechannel.store.base import Segment
from tests.api.raw import CONFIG, code
from tests.support.api_service import AK, PRIVATE, SK, Service, sync

REGION = signing_v4.DEFAULT_REGION
NAME = "sp ace+plus-中文"
T0_S = 1_543_895_700
REQUEST_TIMEOUT_S = 10


def v4_bucket(service: Service, *, region: str = REGION, secret: str = SK,
              provider: bool = False) -> oss2.Bucket:  # fmt: skip
    auth = (
        oss2.ProviderAuthV4(StaticCredentialsProvider(AK, secret))
        if provider
        else oss2.AuthV4(AK, secret)
    )
    return oss2.Bucket(auth, service.endpoint, PRIVATE, region=region, session=service.session)


async def _segments(service: Service, channel: str, count: int) -> None:
    for seq in range(count):
        start_ms = (T0_S + 5 * seq) * 1000
        key = f"{channel}/{start_ms}.ts"
        await service.storages[PRIVATE].put(key, b"ts", "video/MP2T")
        await service.store.add_segment(Segment(
            bucket=PRIVATE, channel=channel, seq=seq, key=key, start_ms=start_ms,
            duration_ms=5000, size=2, push_id=1, discontinuity=seq == 0,
        ))  # fmt: skip


@pytest.mark.parametrize("provider", [False, True], ids=["AuthV4", "ProviderAuthV4"])
async def test_oss2_v4_every_livechannel_call(service: Service, provider: bool) -> None:
    bucket = v4_bucket(service, provider=provider)
    info = LiveChannelInfo(target=LiveChannelInfoTarget(frag_duration=2, frag_count=4))
    created = await sync(bucket.create_live_channel, NAME, info)
    assert created.publish_url.endswith("/live/sp%20ace%2Bplus-%E4%B8%AD%E6%96%87")
    got = await sync(bucket.get_live_channel, NAME)
    assert (got.target.frag_duration, got.target.frag_count) == ("2", "4")
    listed = await sync(bucket.list_live_channel, prefix="sp ace")  # signed with a space
    assert [c.name for c in listed.channels] == [NAME]
    assert (await sync(bucket.get_live_channel_stat, NAME)).status == "Idle"
    await sync(bucket.put_live_channel_status, NAME, "disabled")
    assert (await sync(bucket.get_live_channel, NAME)).status == "disabled"
    await sync(bucket.put_live_channel_status, NAME, "enabled")
    assert (await sync(bucket.get_live_channel_history, NAME)).records == []
    await _segments(service, NAME, 3)
    vod = await sync(bucket.get_vod_playlist, NAME, T0_S, T0_S + 60)
    assert len(m3u8.loads(vod.playlist).segments) == 3
    await sync(bucket.post_vod_playlist, NAME, "vod.m3u8", T0_S, T0_S + 60)
    assert await service.storages[PRIVATE].head(f"{NAME}/vod.m3u8") is not None
    await sync(bucket.delete_live_channel, NAME)
    with pytest.raises(oss2.exceptions.NotFound):
        await sync(bucket.get_live_channel, NAME)


async def test_oss2_v4_object_reads(service: Service) -> None:
    data = bytes(range(256)) * 40
    key = f"{NAME}/1000.ts"
    await service.storages[PRIVATE].put(key, data, "video/MP2T")
    bucket = v4_bucket(service)
    assert await sync((await sync(bucket.get_object, key)).read) == data
    ranged = await sync(bucket.get_object, key, byte_range=(10, 19))
    assert await sync(ranged.read) == data[10:20]
    assert (await sync(bucket.head_object, key)).content_length == len(data)
    assert (await sync(bucket.get_object_meta, key)).content_length == len(data)
    listed = await sync(bucket.list_objects, prefix="sp ace")
    assert [o.key for o in listed.object_list] == [key]
    service_api = oss2.Service(oss2.AuthV4(AK, SK), service.endpoint, region=REGION,
                               session=service.session)  # fmt: skip
    names = [b.name for b in (await sync(service_api.list_buckets)).buckets]
    assert PRIVATE in names


async def test_oss2_v4_presigned_get(service: Service) -> None:
    key = f"{NAME}/1000.ts"
    await service.storages[PRIVATE].put(key, b"segment bytes", "video/MP2T")
    bucket = v4_bucket(service)
    url = bucket.sign_url("GET", key, 60)
    assert "x-oss-signature-version=OSS4-HMAC-SHA256" in url
    r = await sync(requests.get, url, timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 200, r.text
    assert r.content == b"segment bytes"
    # With a signed sub-resource and a header the client chose to sign.
    url = bucket.sign_url("GET", key, 60, headers={"Range": "bytes=0-6"},
                          params={"response-content-type": "text/plain"},
                          additional_headers=["range"])  # fmt: skip
    r = await sync(requests.get, url, headers={"Range": "bytes=0-6"}, timeout=REQUEST_TIMEOUT_S)
    assert (r.status_code, r.content) == (206, b"segment"), r.text
    assert r.headers["Content-Type"] == "text/plain"
    # The signed header changed: refused.
    r = await sync(requests.get, url, headers={"Range": "bytes=0-3"}, timeout=REQUEST_TIMEOUT_S)
    assert (r.status_code, code(r.content)) == (403, "SignatureDoesNotMatch")
    # The key changed: refused.
    tampered = url.replace("1000.ts", "1001.ts")
    r = await sync(requests.get, tampered, timeout=REQUEST_TIMEOUT_S)
    assert (r.status_code, code(r.content)) == (403, "SignatureDoesNotMatch")


async def test_oss2_v4_presigned_url_expires(service: Service) -> None:
    await service.storages[PRIVATE].put("cam/1000.ts", b"x", "video/MP2T")
    url = v4_bucket(service).sign_url("GET", "cam/1000.ts", 60)
    service.clock.offset_ms = 61_000
    r = await sync(requests.get, url, timeout=REQUEST_TIMEOUT_S)
    assert (r.status_code, code(r.content)) == (403, "AccessDenied")
    assert "expired" in r.text


async def test_oss2_v4_refusals(service: Service) -> None:
    with pytest.raises(oss2.exceptions.InvalidArgument) as e:
        await sync(v4_bucket(service, region="us-west-1").list_live_channel)
    assert "cn-hangzhou" in str(e.value)
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        await sync(v4_bucket(service, secret="wrong").list_live_channel)
    other = oss2.Bucket(oss2.AuthV4("nobody", SK), service.endpoint, PRIVATE, region=REGION,
                        session=service.session)  # fmt: skip
    with pytest.raises(oss2.exceptions.OssError) as denied:
        await sync(other.list_live_channel)
    assert denied.value.code == "InvalidAccessKeyId"
    service.clock.offset_ms = 16 * 60 * 1000
    with pytest.raises(oss2.exceptions.OssError) as skewed:
        await sync(v4_bucket(service).list_live_channel)
    assert skewed.value.code == "RequestTimeTooSkewed"


def _v4_put(service: Service, body: bytes, payload_hash: str) -> requests.Response:
    """PutLiveChannel signed by hand with a body hash instead of UNSIGNED-PAYLOAD."""
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"x-oss-date": now, "x-oss-content-sha256": payload_hash,
               "Content-Type": "application/xml"}  # fmt: skip
    query = [("live", "")]
    request = signing_v4.canonical_request(
        "PUT", PRIVATE, "cam", query, headers.items(), (), payload_hash
    )
    sig = signing_v4.signature(SK, now, REGION, request)
    headers["Authorization"] = (
        f"{signing_v4.ALGORITHM} Credential={AK}/{now[:8]}/{REGION}/oss/aliyun_v4_request,"
        f"Signature={sig}"
    )
    return requests.put(f"{service.endpoint}/{PRIVATE}/cam?live=", data=body, headers=headers,
                        timeout=REQUEST_TIMEOUT_S)  # fmt: skip


async def test_raw_requests_v4_signed_payload_hash_is_checked(service: Service) -> None:
    good = hashlib.sha256(CONFIG).hexdigest()
    r = await sync(_v4_put, service, CONFIG, good)
    assert r.status_code == 200, r.text
    # The signature covers the claimed hash; the body must be what was hashed.
    r = await sync(_v4_put, service, CONFIG.replace(b"<FragCount>3", b"<FragCount>9"), good)
    assert (r.status_code, code(r.content)) == (400, "InvalidArgument"), r.text


async def test_v1_still_works_beside_v4(service: Service) -> None:
    await sync(v4_bucket(service).create_live_channel, "cam", LiveChannelInfo())
    assert (await sync(service.bucket().get_live_channel, "cam")).status == "enabled"


async def test_oss2_v4_presigned_playlist_with_hls_sign(service: Service) -> None:
    """A player given a V4 presigned playlist URL with x-oss-process=hls/sign gets segment
    URIs it can fetch (signed V1 until the playlist URL's own expiry)."""
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5.000,\n1000.ts\n#EXT-X-ENDLIST\n"
    await service.storages[PRIVATE].put("cam/playlist.m3u8", playlist, "application/x-mpegURL")
    await service.storages[PRIVATE].put("cam/1000.ts", b"ts bytes", "video/MP2T")
    url = v4_bucket(service).sign_url("GET", "cam/playlist.m3u8", 60,
                                      params={"x-oss-process": "hls/sign"})  # fmt: skip
    r = await sync(requests.get, url, timeout=REQUEST_TIMEOUT_S)
    assert r.status_code == 200, r.text
    (segment,) = m3u8.loads(r.text).segments
    assert "Signature=" in segment.uri
    seg = await sync(requests.get, urljoin(url, segment.uri), timeout=REQUEST_TIMEOUT_S)
    assert (seg.status_code, seg.content) == (200, b"ts bytes"), seg.text


@pytest.mark.parametrize(
    "text",
    [
        f"OSS4-HMAC-SHA256 Credential={AK}/20231203/cn-hangzhou/oss/aliyun_v4_request, "
        "AdditionalHeaders=range;host, Signature=ab",
        f"OSS4-HMAC-SHA256 Credential={AK}/20231203/cn-hangzhou/oss/aliyun_v4_request,"
        "AdditionalHeaders=host;range,Signature=ab",
        f"OSS4-HMAC-SHA256 Signature=ab,AdditionalHeaders=HOST;range;x-oss-date;content-type,"
        f"Credential={AK}/20231203/cn-hangzhou/oss/aliyun_v4_request",
    ],
)
def test_authorization_forms(text: str) -> None:
    auth = signing_v4.parse_authorization(text)
    assert auth.credential == signing_v4.Credential(AK, "20231203", "cn-hangzhou")
    assert (auth.additional, auth.signature) == (("host", "range"), "ab")


@pytest.mark.parametrize(
    "text",
    [
        "OSS4-HMAC-SHA256",
        "OSS4-HMAC-SHA256 Credential=a/20231203/r/oss/aliyun_v4_request",  # no Signature
        "OSS4-HMAC-SHA256 Credential=a/20231203/r/s3/aws4_request, Signature=ab",
        "OSS4-HMAC-SHA256 Credential=a/2023-12-03/r/oss/aliyun_v4_request, Signature=ab",
        "OSS4-HMAC-SHA256 Credential=a//r/oss/aliyun_v4_request, Signature=ab",
        "OSS4-HMAC-SHA256 Credential=a/20231203/r/oss/aliyun_v4_request, Signature=ab, X=1",
        "AWS4-HMAC-SHA256 Credential=a/20231203/r/oss/aliyun_v4_request, Signature=ab",
    ],
)
def test_malformed_authorization_is_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgument):
        signing_v4.parse_authorization(text)


@given(st.text(max_size=300))
def test_any_authorization_raises_only_invalid_argument(text: str) -> None:
    with contextlib.suppress(InvalidArgument):
        signing_v4.parse_authorization("OSS4-HMAC-SHA256 " + text)


def test_uri_encoding_and_canonical_query() -> None:
    assert signing_v4.uri_encode("a b+/中~", keep_slash=True) == "a%20b%2B/%E4%B8%AD~"
    assert signing_v4.uri_encode("a/b", keep_slash=False) == "a%2Fb"
    query = [("prefix", "sp ace"), ("live", None), ("x-oss-signature", "zz"), ("a", "")]
    assert signing_v4.canonical_query(query) == "a&live&prefix=sp%20ace"
