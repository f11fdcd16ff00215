"""The publish URL forms (spec: Addressing) → bucket, channel, parameters; decoded exactly once."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.ingest.publish import PublishUrlError, parse_params, resolve

DOMAIN = "live.example.com"


@pytest.mark.parametrize(
    ("app", "name", "tc_url", "bucket", "channel"),
    [
        # oss2.sign_rtmp_url from an IP endpoint; ffmpeg keeps %XX in the name
        ("b1/live", "cam?Signature=a%2Bb%3D", "rtmp://127.0.0.1:8080/b1/live", "b1", "cam"),
        # virtual host
        ("live", "cam", f"rtmp://b2.{DOMAIN}/live", "b2", "cam"),
        ("live", "cam", f"rtmp://b2.{DOMAIN}:1935/live", "b2", "cam"),
        # plain: the default bucket
        ("live", "cam", "rtmp://127.0.0.1:1935/live", "default", "cam"),
        ("/live/", "cam", "rtmp://127.0.0.1/live", "default", "cam"),
        # nginx-rtmp's push relay splits at the first `/`: app <bucket>, name live/<channel>
        ("b1", "live/cam?Signature=x", "rtmp://127.0.0.1:8080/b1", "b1", "cam"),
        ("b1/", "/live/cam", "rtmp://127.0.0.1:8080/b1", "b1", "cam"),
        # the whole path in the stream name, no app (tcUrl without a path)
        ("", "b1/live/cam", "rtmp://127.0.0.1:8080", "b1", "cam"),
        ("", "live/cam", f"rtmp://b2.{DOMAIN}", "b2", "cam"),
        # no app in connect: the tcUrl's path is the app
        ("", "cam", "rtmp://127.0.0.1:8080/b1/live", "b1", "cam"),
        # a bucket named like the application
        ("live/live", "cam", "rtmp://127.0.0.1/live/live", "live", "cam"),
        ("live", "live/cam", "rtmp://127.0.0.1/live", "live", "cam"),
        # channel names are percent-decoded once
        ("live", "caf%C3%A9", "rtmp://127.0.0.1/live", "default", "café"),
        ("live", "a%2520b", "rtmp://127.0.0.1/live", "default", "a%20b"),
    ],
)
def test_url_forms(app: str, name: str, tc_url: str, bucket: str, channel: str) -> None:
    target = resolve(app, name, tc_url, domain=DOMAIN, default_bucket="default")
    assert (target.bucket, target.channel) == (bucket, channel)


def test_params_decoded_exactly_once_form_encoded_but_the_signature() -> None:
    # ffmpeg sends the query percent-encoded; librtmp (OBS) decodes it before sending.
    encoded = parse_params("Signature=ab%2Bc%2Fd%3D&Expires=1&playlistName=x.m3u8")
    decoded = parse_params("Signature=ab+c/d=&Expires=1&playlistName=x.m3u8")
    assert encoded == decoded == {"Signature": "ab+c/d=", "Expires": "1", "playlistName": "x.m3u8"}
    assert parse_params("a=%2541")["a"] == "%41"  # once, not twice
    # Form encoding, as the HTTP API reads queries: `+` is a space, `%2B` a plus.
    assert parse_params("playlistName=my+list%2B1.m3u8")["playlistName"] == "my list+1.m3u8"
    assert parse_params("playlistName=my%20list.m3u8")["playlistName"] == "my list.m3u8"


@pytest.mark.parametrize(
    ("app", "name", "message"),
    [
        ("other", "cam", "unknown application"),
        ("a/b/live", "cam", "unknown application"),
        ("live", "", "no channel name"),
        ("live", "?x=1", "no channel name"),
        ("live", "a%2Fb", "invalid channel name"),
        ("live", "a%00b", "invalid channel name"),
        ("live", "a%5Cb", "invalid channel name"),
        ("live", "cam?x=1&x=2", "more than once"),
        ("live", "cam?" + "&".join(f"k{i}=1" for i in range(40)), "too many"),
        ("live", "x" * 5000, "too long"),
        ("live", "caf\udce9", "not valid UTF-8"),
    ],
)
def test_refusals_are_readable(app: str, name: str, message: str) -> None:
    with pytest.raises(PublishUrlError, match=message):
        resolve(app, name, "rtmp://127.0.0.1/live", domain=DOMAIN, default_bucket="d")


def test_playlist_name_parameter() -> None:
    t = resolve("live", "cam?playlistName=other.m3u8", "", domain=DOMAIN, default_bucket="d")
    assert t.playlist_name == "other.m3u8"
    assert resolve("live", "cam", "", domain=DOMAIN, default_bucket="d").playlist_name is None


@given(st.text(max_size=200), st.text(max_size=300), st.text(max_size=100))
def test_any_input_raises_only_publish_url_error(app: str, name: str, tc_url: str) -> None:
    with contextlib.suppress(PublishUrlError):
        resolve(app, name, tc_url, domain=DOMAIN, default_bucket="d")
