"""`livechannel.auth.signing` against the OSS API reference examples and `oss2` (4.2-4.3, 10.2)."""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace
from urllib.parse import parse_qsl, unquote, urlsplit

import oss2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.auth import signing
from livechannel.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    OssError,
    SignatureDoesNotMatch,
)

AK, SK = "LTAIsigningtest1", "signing-secret-xyz"
BUCKET = "live"
CREDENTIALS = {AK: SK}


def _bucket() -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(AK, SK), "http://127.0.0.1:8080", BUCKET)


def test_hmac_sha1_b64_known_answer() -> None:
    # HMAC-SHA1("key", "The quick brown fox ...") = de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9.
    fox = "The quick brown fox jumps over the lazy dog"
    assert signing.hmac_sha1_b64("key", fox) == "3nybhbi3iqa8ino29wqQcBydtNk="


def test_reference_string_to_sign_example() -> None:
    resource = signing.canonical_resource("oss-example", "nelson", [])
    headers = {"X-OSS-Meta-Author": "foo@bar.com", "X-OSS-Magic": "abracadabra", "Host": "x"}
    string = signing.header_string_to_sign(
        "PUT", "ODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=", "text/html",
        "Thu, 17 Nov 2005 18:49:58 GMT", headers, resource,
    )  # fmt: skip
    assert string == (
        "PUT\nODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=\ntext/html\n"
        "Thu, 17 Nov 2005 18:49:58 GMT\nx-oss-magic:abracadabra\n"
        "x-oss-meta-author:foo@bar.com\n/oss-example/nelson"
    )


@pytest.mark.parametrize(
    "bucket, key, query, expected",
    [
        (None, None, [], "/"),
        ("b", "", [], "/b/"),
        ("b", "", [("acl", None)], "/b/?acl"),
        ("b", "c", [("live", ""), ("comp", "stat")], "/b/c?comp=stat&live"),
        ("b", "c", [("live", None), ("prefix", "x"), ("max-keys", "5")], "/b/c?live"),
        ("b", "c/v.m3u8", [("vod", ""), ("startTime", "1"), ("endTime", "2")],
         "/b/c/v.m3u8?endTime=2&startTime=1&vod"),
        ("b", "k", [("x-oss-process", "hls/sign"), ("OSSAccessKeyId", "a")],
         "/b/k?x-oss-process=hls/sign"),
    ],
)  # fmt: skip
def test_canonical_resource(
    bucket: str | None, key: str | None, query: list[tuple[str, str | None]], expected: str
) -> None:
    assert signing.canonical_resource(bucket, key, query) == expected


_oss2_resource = oss2.Auth(AK, SK)._ProviderAuth__get_resource_string  # type: ignore[attr-defined]
_param_names = st.sampled_from(
    ["live", "comp", "vod", "startTime", "endTime", "acl", "prefix", "marker", "max-keys",
     "x-oss-process", "response-content-type", "delete", "encoding-type", "status", "stat"]
)  # fmt: skip


@given(
    key=st.text(min_size=1, max_size=30),
    params=st.dictionaries(_param_names, st.text(max_size=10), max_size=6),
)
def test_canonical_resource_agrees_with_oss2(key: str, params: dict[str, str]) -> None:
    request = SimpleNamespace(params=params)
    assert signing.canonical_resource(BUCKET, key, list(params.items())) == _oss2_resource(
        request, BUCKET, key
    )


def _url_parts(url: str) -> tuple[str, list[tuple[str, str | None]], dict[str, str]]:
    """Key and query of a path-style URL, decoded once, as the API's addressing does."""
    parts = urlsplit(url)
    key = unquote(parts.path.split("/", 2)[2])
    query: list[tuple[str, str | None]] = []
    for item in parts.query.split("&"):
        name, eq, value = item.partition("=")
        query.append((unquote(name), unquote(value) if eq else None))
    return key, query, {k: v or "" for k, v in query}


@pytest.mark.parametrize(
    "key, params",
    [
        ("cam/playlist.m3u8", None),
        ("cam/playlist.m3u8", {"x-oss-process": "hls/sign"}),
        ("直播/a+b c.ts", {"response-content-type": "text/plain", "other": "x"}),
    ],
)
def test_sign_url_params_reproduces_oss2_sign_url(key: str, params: dict[str, str] | None) -> None:
    url = _bucket().sign_url("GET", key, 600, params=dict(params) if params else None)
    got_key, query, flat = _url_parts(url)
    assert got_key == key
    ours = signing.sign_url_params(
        AK, SK, "GET", BUCKET, key, int(flat["Expires"]),
        [(k, v) for k, v in query if k not in signing.URL_SIGNATURE_PARAMS],
    )  # fmt: skip
    assert ours == [("OSSAccessKeyId", AK), ("Expires", flat["Expires"]),
                    ("Signature", flat["Signature"])]  # fmt: skip


def _rtmp_params(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    assert parts.scheme == "rtmp"
    bucket, app, channel = parts.path.lstrip("/").split("/", 2)
    assert (bucket, app) == (BUCKET, "live")
    return channel, dict(parse_qsl(parts.query, keep_blank_values=True))


@pytest.mark.parametrize("playlist", ["playlist.m3u8", ""])
def test_oss2_sign_rtmp_url_verifies(playlist: str) -> None:
    url = _bucket().sign_rtmp_url("cam1", playlist, 300)
    channel, params = _rtmp_params(url)
    assert channel == "cam1"
    assert ("playlistName" in params) == bool(playlist)
    signing.check_rtmp_publish(params, BUCKET, channel, CREDENTIALS, int(time.time()))


def test_rtmp_string_to_sign_layout() -> None:
    params = {"playlistName": "p.m3u8", "a": "1", "OSSAccessKeyId": AK, "Expires": "9",
              "Signature": "s", "SecurityToken": "t"}  # fmt: skip
    assert signing.rtmp_string_to_sign("9", params, "b", "c") == "9\na:1\nplaylistName:p.m3u8\n/b/c"
    assert signing.rtmp_string_to_sign("9", {}, "b", "c") == "9\n/b/c"


def test_rtmp_publish_refusals() -> None:
    now_s = int(time.time())
    channel, good = _rtmp_params(_bucket().sign_rtmp_url("cam1", "playlist.m3u8", 300))
    for missing in ("OSSAccessKeyId", "Expires", "Signature"):
        params = {k: v for k, v in good.items() if k != missing}
        with pytest.raises(AccessDenied, match="missing"):
            signing.check_rtmp_publish(params, BUCKET, channel, CREDENTIALS, now_s)
    with pytest.raises(AccessDenied, match="expired"):
        signing.check_rtmp_publish(good, BUCKET, channel, CREDENTIALS, now_s + 301)
    with pytest.raises(AccessDenied):
        signing.check_rtmp_publish({**good, "Expires": "soon"}, BUCKET, channel, CREDENTIALS, now_s)
    with pytest.raises(InvalidAccessKeyId):
        signing.check_rtmp_publish(good, BUCKET, channel, {"other": SK}, now_s)
    for tampered in (
        {**good, "playlistName": "other.m3u8"},
        {**good, "extra": "1"},
        {**good, "Signature": good["Signature"][:-2] + "AA"},
    ):
        with pytest.raises(SignatureDoesNotMatch):
            signing.check_rtmp_publish(tampered, BUCKET, channel, CREDENTIALS, now_s)
    with pytest.raises(SignatureDoesNotMatch):
        signing.check_rtmp_publish(good, BUCKET, "cam2", CREDENTIALS, now_s)
    with pytest.raises(SignatureDoesNotMatch):
        signing.check_rtmp_publish(good, "other", channel, CREDENTIALS, now_s)
    # Exactly at Expires is still valid (refused only when later than Expires: OSS API
    # reference, signature in the URL).
    signing.check_rtmp_publish(good, BUCKET, channel, CREDENTIALS, int(good["Expires"]))


@given(params=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=6),
       now_s=st.integers(min_value=0, max_value=2**40))  # fmt: skip
def test_check_rtmp_publish_raises_only_oss_errors(params: dict[str, str], now_s: int) -> None:
    with contextlib.suppress(OssError):
        signing.check_rtmp_publish(params, BUCKET, "c", CREDENTIALS, now_s)


def test_signature_comparison_is_constant_time_primitive() -> None:
    assert signing.signatures_equal("abc=", "abc=")
    assert not signing.signatures_equal("abc=", "abd=")
    assert not signing.signatures_equal("abc=", "é")  # non-ASCII input must not raise
