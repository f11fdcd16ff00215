"""Security (docs/robustness.md), through HTTP and RTMP: constant-time signature checks,
signed URLs bound to their expiry and resource, names that cannot leave the bucket, no XML
entities, no secrets in the logs, an owner-only key file."""

from __future__ import annotations

import ast
import hmac
import http.client
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import oss2
import pytest

from livechannel.auth import signing
from livechannel.config import Config, ensure_credentials
from livechannel.ops.logs import JsonFormatter, TextFormatter
from tests.robustness import garbage
from tests.robustness.rtmp_session import RtmpSession, url_parts
from tests.support.service import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    BUCKET,
    ServiceThread,
    create_channel,
)

LIVECHANNEL = Path(__file__).resolve().parents[2] / "livechannel"
CANARY = "canary-outside-the-bucket-7f3a"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    service = ServiceThread(tmp_path_factory.mktemp("sec") / "data").start()
    try:
        create_channel(service.bucket(), "cam", frag_duration=1, frag_count=3)
        yield service
    finally:
        service.stop()


def raw_get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{port}")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def url_signed(raw_key: str, decoded_key: str, expires_s: int, method: str = "GET") -> str:
    params = signing.sign_url_params(ACCESS_KEY_ID, ACCESS_KEY_SECRET, method, BUCKET,
                                     decoded_key, expires_s)  # fmt: skip
    return f"/{BUCKET}/{raw_key}?{urlencode(params)}"


def rtmp_publish(svc: ServiceThread, url: str, *, channel: str | None = None) -> str:
    """Publish with `url` (optionally under another channel name); the onStatus code."""
    port, app, stream, tc_url = url_parts(url.replace(f":{svc.http_port}/", f":{svc.rtmp_port}/"))
    if channel is not None:
        stream = channel + "?" + stream.partition("?")[2]
    with RtmpSession(port, app, stream, tc_url=tc_url) as s:
        status = s.publish()
        return f"{status.code}: {status.description}"


# --- constant time ------------------------------------------------------------------------


def test_signatures_are_compared_in_constant_time_on_both_edges(
    svc: ServiceThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    status, _ = raw_get(svc.http_port, url_signed("cam/x.ts", "cam/x.ts", int(time.time()) + 60)
                        .replace("Signature=", "Signature=AAAA"))  # fmt: skip
    assert status == 403 and len(calls) == 1
    url = svc.signed_publish_url("cam").replace("Signature=", "Signature=AAAA")
    assert "SignatureDoesNotMatch" in rtmp_publish(svc, url) or len(calls) == 2
    assert len(calls) == 2, "the RTMP edge did not use the constant-time comparison"
    # And no code that handles request signatures compares one with ==.
    for path in LIVECHANNEL.rglob("*.py"):
        source = path.read_text()
        if path.name != "signing.py" and not re.search(
            r"^(from|import) .*\bsigning\b", source, re.M
        ):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                names = {n.id.lower() for n in ast.walk(node) if isinstance(n, ast.Name)}
                suspicious = {n for n in names if "signature" in n or n == "sig"}
                suspicious |= names & {"provided", "expected"}
                assert not suspicious, (path, node.lineno)


# --- signed URLs: expiry and resource ---------------------------------------------------------


def test_signed_http_url_valid_only_until_expires_and_for_its_resource(svc: ServiceThread) -> None:
    (svc.object_path("cam") / "a.ts").parent.mkdir(parents=True, exist_ok=True)
    svc.object_path("cam/a.ts").write_bytes(b"A" * 188)
    svc.object_path("cam/b.ts").write_bytes(b"B" * 188)
    soon = int(time.time()) + 60
    good = url_signed("cam/a.ts", "cam/a.ts", soon)
    assert raw_get(svc.http_port, good)[0] == 200
    assert raw_get(svc.http_port, good.replace("cam/a.ts", "cam/b.ts"))[0] == 403  # other key
    assert raw_get(svc.http_port, good + "&acl")[0] == 403  # other sub-resource
    assert raw_get(svc.http_port, good.replace(f"/{BUCKET}/", "/other/"))[0] in (403, 404)
    put_signed = url_signed("cam/a.ts", "cam/a.ts", soon, method="PUT")
    assert raw_get(svc.http_port, put_signed)[0] == 403  # other verb
    expired = url_signed("cam/a.ts", "cam/a.ts", int(time.time()) - 1)
    status, body = raw_get(svc.http_port, expired)
    assert status == 403 and b"expired" in body
    assert raw_get(svc.http_port, "/live/cam/a.ts")[0] == 403  # anonymous, private bucket
    # oss2's own signed URL, end to end
    assert oss2.Bucket(oss2.AnonymousAuth(), svc.endpoint, BUCKET) is not None
    assert raw_get(svc.http_port, svc.bucket().sign_url("GET", "cam/a.ts", 60)
                   .split(str(svc.http_port), 1)[1])[0] == 200  # fmt: skip


def test_signed_rtmp_url_valid_only_until_expires_and_for_its_channel(svc: ServiceThread) -> None:
    create_channel(svc.bucket(), "cam2", frag_duration=1, frag_count=3)
    good = svc.signed_publish_url("cam")
    assert rtmp_publish(svc, good, channel="cam2").startswith("NetStream.Publish.Rejected")
    assert "does not match" in rtmp_publish(svc, good, channel="cam2")
    tampered = good.replace("playlistName=playlist.m3u8", "playlistName=other.m3u8")
    assert "does not match" in rtmp_publish(svc, tampered)
    expired = svc.bucket().sign_rtmp_url("cam", "playlist.m3u8", -5)
    assert "expired" in rtmp_publish(svc, expired)
    unsigned = good.partition("?")[0]
    assert rtmp_publish(svc, unsigned).startswith("NetStream.Publish.Rejected")
    assert rtmp_publish(svc, good).startswith("NetStream.Publish.Start")
    svc.wait_idle("cam")


# --- names never leave the bucket -------------------------------------------------------------

HOSTILE_KEYS = [  # (as sent on the wire, as decoded once)
    ("../../secret.txt", "../../secret.txt"),
    ("%2e%2e/%2e%2e/secret.txt", "../../secret.txt"),
    ("%2E%2E%2F%2E%2E%2Fsecret.txt", "../../secret.txt"),
    ("cam/..%2f..%2f..%2fsecret.txt", "cam/../../../secret.txt"),
    ("%2fsecret.txt", "/secret.txt"),
    (quote(str(Path("/tmp").resolve()), safe=""), str(Path("/tmp").resolve())),
    ("a%5c..%5c..%5csecret.txt", "a\\..\\..\\secret.txt"),
    ("secret.txt%00.ts", "secret.txt\x00.ts"),
    ("x" * 2000, "x" * 2000),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not p.name.startswith("livechannel.db")}  # fmt: skip


def test_names_cannot_reach_outside_the_bucket_over_http(svc: ServiceThread) -> None:
    data = svc.config.data_dir
    (data / "secret.txt").write_text(CANARY)
    (data / "buckets" / "secret.txt").write_text(CANARY)
    before = _tree(data)
    soon = int(time.time()) + 60
    for raw, decoded in HOSTILE_KEYS:
        for target in (url_signed(raw, decoded, soon), f"/{BUCKET}/{raw}?live",
                       url_signed(raw, decoded, soon) + "&x-oss-process=hls/sign"):  # fmt: skip
            status, body = raw_get(svc.http_port, target)
            assert status >= 400 and CANARY.encode() not in body, (target, status)
    for _, decoded in HOSTILE_KEYS:  # creating channels by those names (signed by oss2)
        with pytest.raises(oss2.exceptions.OssError):
            create_channel(svc.bucket(), decoded, frag_duration=1, frag_count=3)
            pytest.fail(f"channel {decoded!r} created")
    assert _tree(data) == before


def test_names_cannot_reach_outside_the_bucket_over_rtmp(svc: ServiceThread) -> None:
    data = svc.config.data_dir
    before = _tree(data)
    for raw, decoded in [*HOSTILE_KEYS, ("..", ".."), ("%2e%2e", ".."), (".", ".")]:
        for name in (raw, decoded):
            url = svc.signed_publish_url("cam")  # a valid signature, for another name
            assert "Publish.Start" not in rtmp_publish(svc, url, channel=name), name
            playlist_escape = url.replace("playlistName=playlist.m3u8",
                                          "playlistName=..%2F..%2Fx.m3u8")  # fmt: skip
            assert "Publish.Start" not in rtmp_publish(svc, playlist_escape)
    assert _tree(data) == before


# --- XML ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [garbage.BILLION_LAUGHS, garbage.XXE], ids=["expansion", "xxe"])
def test_xml_entities_are_refused(svc: ServiceThread, body: bytes) -> None:
    with pytest.raises(oss2.exceptions.OssError) as refused:
        svc.bucket()._Bucket__do_object("PUT", "xmlchan", data=body, params={"live": ""})
    assert refused.value.status == 400 and refused.value.code == "MalformedXML"
    with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
        svc.bucket().get_live_channel("xmlchan")


# --- logs -----------------------------------------------------------------------------------


def test_no_secret_or_signature_reaches_the_logs(
    svc: ServiceThread, logs: pytest.LogCaptureFixture
) -> None:
    logs.clear()
    signatures: set[str] = set()
    soon = int(time.time()) + 60
    # HTTP: header-signed (oss2), URL-signed good and bad, malformed lines carrying signatures.
    svc.bucket().get_live_channel_stat("cam")
    with pytest.raises(oss2.exceptions.OssError):
        oss2.Bucket(
            oss2.Auth(ACCESS_KEY_ID, "wrong-secret"), svc.endpoint, BUCKET
        ).get_live_channel("cam")
    good = url_signed("cam/a.ts", "cam/a.ts", soon)
    bad = good.replace("Signature=", "Signature=Zm9vYmFy")
    for target in (good, bad):
        raw_get(svc.http_port, target)
        signatures.add(target.rsplit("Signature=", 1)[1])
    auth = f"OSS {ACCESS_KEY_ID}:c2VjcmV0c2lnbmF0dXJlMTIzNDU2Nzg="
    raw_get(svc.http_port, "/live/cam?live", {"Authorization": auth, "Date": "garbage"})
    signatures.add(auth.rsplit(":", 1)[1])
    for line in (f"GET {good} HTTP/9.9\r\n\r\n", f"GET {bad}\x01 HTTP/1.1\r\n\r\n",
                 f"GET / HTTP/1.1\r\nAuthorization: {auth}\r\nX: \x01\r\n\r\n"):  # fmt: skip
        garbage.run(garbage.Attack("malformed", "http", line.encode()), {"http": svc.http_port})
    # RTMP: a good publish, a wrong signature, an expired one.
    url = svc.signed_publish_url("cam")
    signatures.add(url.rsplit("Signature=", 1)[1])
    rtmp_publish(svc, url)
    svc.wait_idle("cam")
    rtmp_publish(svc, url.replace("Signature=", "Signature=QUJD"))
    rtmp_publish(svc, svc.bucket().sign_rtmp_url("cam", "playlist.m3u8", -5))
    time.sleep(0.3)

    ours = [r for r in logs.records if not r.name.startswith(("oss2", "urllib3"))]
    assert len(ours) > 5
    # The same records through both of the service's formats (--log-format text / json).
    for formatter in (logs.handler.formatter, TextFormatter(), JsonFormatter()):
        assert formatter is not None
        text = "\n".join(formatter.format(r) for r in ours)
        assert ACCESS_KEY_SECRET not in text
        for sig in signatures:
            for form in {sig, quote(sig, safe=""), oss2.compat.to_string(sig)}:
                assert form not in text, f"signature {form!r} logged"
        assert "Traceback" not in text
        assert "connection closed: BadStatusLine" in text  # logged, with its signature redacted
        assert "Signature=<redacted>" in text


# --- the key file ---------------------------------------------------------------------------


def test_generated_credentials_file_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen it
    try:
        cfg = ensure_credentials(Config(data_dir=tmp_path / "d"))
    finally:
        os.umask(old)
    path = tmp_path / "d" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ((key_id, secret),) = cfg.access_keys.items()
    assert secret in path.read_text() and len(secret) >= 30
    assert ensure_credentials(Config(data_dir=tmp_path / "d")).access_keys == {key_id: secret}
    logging.getLogger(__name__).debug("credentials checked")
