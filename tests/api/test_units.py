"""The API's sans-IO pieces on their own: XML, addressing, ranges, dates, channel config,
hls/sign. Every decoder is fed arbitrary input and may raise only the project's OSS errors.
(That they stay sans-IO is tests/test_architecture.py's.)"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.api import xml
from livechannel.api.addressing import parse_query, parse_target
from livechannel.api.channel_config import check_channel_name, parse_channel_config
from livechannel.api.dates import http_date, iso8601_ms, parse_http_date
from livechannel.api.hls_sign import sign_playlist
from livechannel.api.ranges import (
    ByteRange,
    Precondition,
    evaluate_preconditions,
    parse_range,
)
from livechannel.auth import signing
from livechannel.errors import (
    InvalidArgument,
    InvalidObjectName,
    InvalidRange,
    MalformedXML,
    OssError,
    PreconditionFailed,
)
from livechannel.store.base import ChannelStatus

# --- XML ----------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_xml_parse_raises_only_malformed_xml_on_bytes(body: bytes) -> None:
    with contextlib.suppress(MalformedXML):
        xml.parse(body)


_xml_ish = st.lists(
    st.sampled_from(["<a>", "</a>", "<b/>", "&amp;", "&x;", "<!DOCTYPE a>", "<!ENTITY x 'y'>",
                     "<?xml version='1.0'?>", "<![CDATA[z]]>", "text", "<a b='1'>", "\x00", "é"]),
    max_size=12,
).map("".join)  # fmt: skip


@given(_xml_ish)
def test_xml_parse_raises_only_malformed_xml_on_xml_like_text(text: str) -> None:
    with contextlib.suppress(MalformedXML):
        xml.parse(text.encode())


@given(st.text(max_size=50))
def test_rendered_xml_always_parses_back(text: str) -> None:
    body = xml.render(("Root", [("Text", text), ("N", 25), ("B", False), ("E", None)]))
    root = xml.parse(body)
    assert root.findtext("N") == "25" and root.findtext("B") == "false"
    assert root.findtext("E") == ""
    assert "\ufffd" in (root.findtext("Text") or "") or (root.findtext("Text") or "") == text


def test_xml_refuses_doctype_even_harmless() -> None:
    with pytest.raises(MalformedXML):
        xml.parse(b"<!DOCTYPE a><a/>")


# --- addressing --------------------------------------------------------------------------------


def test_query_keeps_blank_and_bare_values_and_decodes_once_as_a_form() -> None:
    assert parse_query("live&comp=stat&x=&p=a%2Bb+c%252F&Signature=a+b%2B") == (
        ("live", None), ("comp", "stat"), ("x", ""), ("p", "a+b c%2F"), ("Signature", "a+b+"),
    )  # fmt: skip


@pytest.mark.parametrize(
    "host, target, expected",
    [
        ("127.0.0.1:8080", "/", (None, "")),
        ("127.0.0.1:8080", "/live", ("live", "")),
        ("127.0.0.1:8080", "/live/", ("live", "")),
        ("127.0.0.1:8080", "/live/cam%2Fvod.m3u8?vod", ("live", "cam/vod.m3u8")),
        ("127.0.0.1:8080", "/live/a+b%20c", ("live", "a+b c")),
        ("live.example.com", "/cam/x.ts", ("live", "cam/x.ts")),
        ("LIVE.Example.com:80", "/cam", ("live", "cam")),
        ("example.com", "/live/cam", ("live", "cam")),
        ("proxy.internal", "/live/cam", ("live", "cam")),
        ("[::1]:8080", "/live/cam", ("live", "cam")),
        ("127.0.0.1", "http://127.0.0.1/live/k?acl", ("live", "k")),
    ],
)
def test_parse_target(host: str, target: str, expected: tuple[str | None, str]) -> None:
    got = parse_target(host, target, "example.com")
    assert (got.bucket, got.key) == expected


def test_bucket_path_follows_the_addressing_style() -> None:
    assert parse_target("127.0.0.1", "/live/k", "example.com").bucket_path == "/live"
    assert parse_target("live.example.com", "/k", "example.com").bucket_path == ""


@given(host=st.text(max_size=30), target=st.text(max_size=60))
def test_parse_target_raises_only_oss_errors(host: str, target: str) -> None:
    with contextlib.suppress(OssError):
        parse_target(host, target, "example.com")


# --- ranges and preconditions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, size, expected",
    [
        (None, 10, None),
        ("bytes=0-4", 10, ByteRange(0, 5)),
        ("bytes=5-", 10, ByteRange(5, 10)),
        ("bytes=-3", 10, ByteRange(7, 10)),
        ("bytes=-30", 10, ByteRange(0, 10)),
        ("bytes=8-100", 10, ByteRange(8, 10)),
        ("bytes=4-2", 10, None),  # invalid syntax: whole object (OSS API reference, GetObject)
        ("bytes=0-1,3-4", 10, None),  # multiple ranges: whole object
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
        ("bytes=" + "9" * 30 + "-", 10, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header, size", [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(InvalidRange):
        parse_range(header, size)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**12))
def test_parse_range_total(header: str, size: int) -> None:
    try:
        r = parse_range(header, size)
    except InvalidRange:
        return
    if r is not None:
        assert 0 <= r.start < r.end <= size


MODIFIED_MS = 1_330_064_868_000  # Fri, 24 Feb 2012 06:27:48 GMT


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, Precondition.PROCEED),
        ({"if_none_match": '"ABC"'}, Precondition.NOT_MODIFIED),
        ({"if_none_match": 'W/"ABC", "X"'}, Precondition.NOT_MODIFIED),
        ({"if_none_match": "*"}, Precondition.NOT_MODIFIED),
        ({"if_none_match": '"OTHER"'}, Precondition.PROCEED),
        ({"if_modified_since": "Fri, 24 Feb 2012 06:27:48 GMT"}, Precondition.NOT_MODIFIED),
        ({"if_modified_since": "Fri, 24 Feb 2012 06:27:47 GMT"}, Precondition.PROCEED),
        ({"if_modified_since": "garbage"}, Precondition.PROCEED),
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        ({"if_none_match": '"X"', "if_modified_since": "Fri, 24 Feb 2012 06:27:48 GMT"},
         Precondition.PROCEED),
        ({"if_match": '"ABC"'}, Precondition.PROCEED),
        ({"if_unmodified_since": "Fri, 24 Feb 2012 06:27:48 GMT"}, Precondition.PROCEED),
    ],
)  # fmt: skip
def test_preconditions(headers: dict[str, str], expected: Precondition) -> None:
    args = {"if_match": None, "if_none_match": None, "if_modified_since": None,
            "if_unmodified_since": None, **headers}  # fmt: skip
    assert evaluate_preconditions(**args, etag="ABC", last_modified_ms=MODIFIED_MS) is expected


@pytest.mark.parametrize(
    "headers",
    [{"if_match": '"NOPE"'}, {"if_unmodified_since": "Fri, 24 Feb 2012 06:27:47 GMT"}],
)
def test_failed_preconditions(headers: dict[str, str]) -> None:
    args = {"if_match": None, "if_none_match": None, "if_modified_since": None,
            "if_unmodified_since": None, **headers}  # fmt: skip
    with pytest.raises(PreconditionFailed):
        evaluate_preconditions(**args, etag="ABC", last_modified_ms=MODIFIED_MS)


# --- dates --------------------------------------------------------------------------------------


def test_date_formats() -> None:
    assert iso8601_ms(1_472_106_315_999) == "2016-08-25T06:25:15.000Z"
    assert http_date(1_330_064_868_000) == "Fri, 24 Feb 2012 06:27:48 GMT"
    assert parse_http_date("Fri, 24 Feb 2012 06:27:48 GMT") == 1_330_064_868
    for bad in ("Fri, 4 Feb 2012 06:27:48 GMT", "2-Jun-82", "Fri, 30 Feb 2012 06:27:48 GMT",
                "Fri, 24 Feb 2012 06:27:48 UTC", "Fri, 24 Feb 2012 25:00:00 GMT"):  # fmt: skip
        assert parse_http_date(bad) is None


@given(st.integers(min_value=0, max_value=253_402_300_799_000))
def test_http_date_round_trips(ms: int) -> None:
    assert parse_http_date(http_date(ms)) == ms // 1000


# --- channel configuration ----------------------------------------------------------------------


def test_channel_config_from_oss2_body_and_defaults() -> None:
    body = (b"<LiveChannelConfiguration><Description /><Status>disabled</Status><Target>"
            b"<Type>HLS</Type><FragDuration>2</FragDuration><FragCount>4</FragCount>"
            b"<PlaylistName /></Target></LiveChannelConfiguration>")  # fmt: skip
    config = parse_channel_config(body)
    assert (config.status, config.frag_duration_s, config.frag_count) == (
        ChannelStatus.DISABLED,
        2,
        4,
    )
    assert config.playlist_name == "playlist.m3u8" and config.description == ""
    minimal = parse_channel_config(
        b"<LiveChannelConfiguration><Target><Type>HLS</Type></Target></LiveChannelConfiguration>"
    )
    assert (minimal.status, minimal.frag_duration_s, minimal.frag_count) == (
        ChannelStatus.ENABLED,
        5,
        3,
    )


@given(st.binary(max_size=200))
def test_channel_config_raises_only_oss_errors(body: bytes) -> None:
    with contextlib.suppress(MalformedXML, InvalidArgument):
        parse_channel_config(body)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/a", "\\a", "a\nb", "x" * 1024])
def test_channel_names_refused(name: str) -> None:
    with pytest.raises(InvalidObjectName):
        check_channel_name(name)


# --- hls/sign -----------------------------------------------------------------------------------


def test_sign_playlist_rewrites_only_relative_segment_uris() -> None:
    text = ("#EXTM3U\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"k.bin\"\r\n#EXTINF:5.000,\r\n1000.ts\r\n"
            "#EXTINF:5.000,\r\nhttp://cdn/x.ts\r\n#EXTINF:5.000,\r\n../../escape.ts\r\n"
            "#EXTINF:5.000,\r\nsub/a%20b.ts\r\n")  # fmt: skip
    out = sign_playlist(text, "cam/p.m3u8", "live", "/live", "AK", "SK", 2_000_000_000)
    lines = out.split("\r\n")
    expected = signing.sign_url_params("AK", "SK", "GET", "live", "cam/1000.ts", 2_000_000_000)
    assert lines[3] == "/live/cam/1000.ts?" + "&".join(
        f"{k}={v.replace('+', '%2B').replace('/', '%2F').replace('=', '%3D')}" for k, v in expected
    )
    assert lines[1] == '#EXT-X-KEY:METHOD=AES-128,URI="k.bin"'
    assert lines[5] == "http://cdn/x.ts" and lines[7] == "../../escape.ts"
    assert lines[9].startswith("/live/cam/sub/a%20b.ts?OSSAccessKeyId=AK&Expires=2000000000&")
