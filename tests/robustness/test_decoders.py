"""Bad input (docs/robustness.md): the decoders the other suites do not fuzz yet raise only
our own errors.

Covered elsewhere (each with hypothesis): handshake + chunk stream + commands from arbitrary
bytes (tests/rtmp/test_fuzz.py, test_chunk.py), AMF0 (tests/rtmp/test_amf0.py), FLV tags,
AVC/AAC configuration, SPS, demuxer (tests/media/test_fuzz.py), XML bodies and the channel
configuration (tests/api/test_units.py), request targets (tests/api/test_units.py), RTMP
signatures on plain text (tests/api/test_signing.py).

Here: the RTMP publish URL (app, stream name, tcUrl), signatures fed what the AMF0 decoder
really produces (lone surrogates from `surrogateescape`) and numbers past `int()`'s digit
limit, the HTTP authenticator (header and URL signatures), numeric query and XML fields, and
the property that no name that gets past the decoders reaches outside the bucket's root.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from livechannel.api.addressing import parse_target
from livechannel.api.auth import authenticate
from livechannel.api.channel_config import check_channel_name, parse_channel_config
from livechannel.api.channels import parse_max_keys
from livechannel.api.dates import parse_http_date
from livechannel.auth import signing
from livechannel.errors import InvalidObjectName, OssError
from livechannel.ingest import publish
from livechannel.storage.local import LocalStorage

CREDENTIALS = {"AK": "secret"}
DOMAIN = "example.com"
INT_DIGIT_LIMIT = 4300  # CPython's default int(str) limit: longer digit strings raise ValueError

# Text a hostile peer can put in a field: ordinary text, lone surrogates (what AMF0's
# surrogateescape makes of invalid UTF-8), numbers past int()'s limit, non-ASCII digits,
# and the path tricks.
hostile_text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.integers(min_value=0, max_value=2**70).map(str),
    st.integers(INT_DIGIT_LIMIT - 10, INT_DIGIT_LIMIT + 200).map(lambda n: "9" * n),
    st.sampled_from(
        ["", "..", ".", "%2e%2e", "%2E%2E/x", "/etc/passwd", "a\\b", "\x00", "%00", "١٢٣", "²",
         "a/../../b", "x" * 2000, "%ff", "%", "+", "=", "&"]
    ),
)  # fmt: skip
SIGNED_NAMES = ("OSSAccessKeyId", "Expires", "Signature", "playlistName", "SecurityToken")
hostile_params = st.dictionaries(
    st.one_of(st.sampled_from(SIGNED_NAMES), hostile_text), hostile_text, max_size=6
)
# All three URL-signature parameters present, so the checks get past "missing parameter".
signed_params = st.builds(
    lambda key, expires, sig, extra: {**extra, "OSSAccessKeyId": key, "Expires": expires,
                                      "Signature": sig},
    st.one_of(st.just("AK"), hostile_text),
    st.one_of(st.integers(0, 2**40).map(str), hostile_text),
    hostile_text,
    hostile_params,
)  # fmt: skip


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


@given(app=hostile_text, channel=hostile_text, params=st.one_of(hostile_params, signed_params),
       tc_url=hostile_text,
       now_s=st.integers(0, 2**40))  # fmt: skip
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_publish_url_and_its_signature(
    app: str, channel: str, params: dict[str, str], tc_url: str, now_s: int
) -> None:
    stream = f"{channel}?{_query(params)}" if params else channel
    for app_name in (app, "live", "live/live"):
        try:
            target = publish.resolve(app_name, stream, tc_url, domain=DOMAIN, default_bucket="live")
        except publish.PublishUrlError:
            continue
        assert target.channel and not {"/", "\\", "\x00"} & set(target.channel)
        with contextlib.suppress(OssError):
            signing.check_rtmp_publish(target.params, target.bucket, target.channel,
                                       CREDENTIALS, now_s)  # fmt: skip


@given(params=signed_params, now_s=st.integers(0, 2**40))
@settings(max_examples=300)
def test_rtmp_signature_check_raises_only_oss_errors(params: dict[str, str], now_s: int) -> None:
    with contextlib.suppress(OssError):
        signing.check_rtmp_publish(params, "live", "cam", CREDENTIALS, now_s)


@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "G\x00T"]),
    authorization=st.one_of(st.none(), hostile_text, hostile_text.map(lambda s: f"OSS AK:{s}")),
    date=st.one_of(st.none(), hostile_text, st.just("Wed, 25 Nov 2026 20:00:00 GMT")),
    headers=st.dictionaries(st.sampled_from(["x-oss-meta-a", "Content-MD5", "Content-Type",
                                             "x-oss-date"]), hostile_text, max_size=3),
    params=st.one_of(hostile_params, signed_params),
    now_s=st.integers(0, 2**40),
)  # fmt: skip
@settings(max_examples=400)
def test_http_authentication_raises_only_oss_errors(
    method: str,
    authorization: str | None,
    date: str | None,
    headers: dict[str, str],
    params: dict[str, str],
    now_s: int,
) -> None:
    all_headers = CIMultiDict(headers)
    if authorization is not None:
        all_headers["Authorization"] = authorization
    if date is not None:
        all_headers["Date"] = date
    try:
        target = parse_target("127.0.0.1", "/live/cam?" + _query(params), DOMAIN)
    except OssError:
        return
    with contextlib.suppress(OssError):
        authenticate(method, all_headers, all_headers.items(), target, CREDENTIALS, now_s)


@given(text=hostile_text)
def test_numeric_fields_raise_only_oss_errors(text: str) -> None:
    with contextlib.suppress(OssError):
        parse_max_keys(text)
    body = (
        "<LiveChannelConfiguration><Target><Type>HLS</Type>"
        f"<FragDuration>{text}</FragDuration><FragCount>{text}</FragCount></Target>"
        f"<Snapshot><Interval>{text}</Interval></Snapshot></LiveChannelConfiguration>"
    )
    with contextlib.suppress(OssError):
        parse_channel_config(body.encode("utf-8", "surrogatepass"))
    assert parse_http_date(text) is None or isinstance(parse_http_date(text), int)


@given(path=st.lists(hostile_text, min_size=1, max_size=4), encode=st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_name_reaches_outside_the_bucket(tmp_path: Path, path: list[str], encode: bool) -> None:
    """Whatever a request path decodes to, the storage either refuses it or maps it inside
    the bucket's root; a channel name that passes the API check makes only inside keys."""
    root = tmp_path / "bucket"
    storage = LocalStorage(str(root), fsync=False)
    raw = "/".join(path)
    if encode:
        raw = "".join(f"%{b:02x}" for b in raw.encode("utf-8", "surrogatepass"))
    try:
        target = parse_target("127.0.0.1", "/live/" + raw, DOMAIN)
    except OssError:
        return
    for key in (target.key, f"{target.key}/1.ts"):
        try:
            resolved = storage._path(key)
        except InvalidObjectName:
            continue
        assert os.path.commonpath([resolved, storage.root]) == storage.root, key
        assert os.path.realpath(resolved).startswith(storage.root + os.sep), key
    try:
        check_channel_name(target.key)
    except OssError:
        return
    try:  # a creatable channel may still be unstorable here (a backslash, > 255 bytes)
        inside = storage._path(f"{target.key}/playlist.m3u8")
    except InvalidObjectName:
        return  # publishing it is refused cleanly: test_bad_input.py
    assert os.path.dirname(os.path.dirname(inside)) == storage.root
