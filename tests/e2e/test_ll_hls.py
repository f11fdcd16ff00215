"""LL-HLS end to end: ffmpeg publishes live into an fMP4 bucket with 0.5 s parts; a client
follows the playlist as an LL-HLS player does (blocking reloads for the next part, signed
through hls/sign on a private bucket), and every answer goes through our RFC 8216bis
validator; parts, the preload-hinted part and the init section are fetched and decoded."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from livechannel.config import HlsConfig
from livechannel.store.base import SegmentFormat
from tests.support import publishers
from tests.support.hls_validator import PlaylistHistory
from tests.support.ll_hls_validator import (
    assert_answers_blocking_reload,
    next_request,
    validate_ll_playlist,
)
from tests.support.media_oracle import decode_all
from tests.support.service import BUCKET, ServiceThread, create_channel

FPS = 30
RELOADS = 12  # blocking reloads followed (~6 s of parts)


def ll_service(data_dir: Path) -> ServiceThread:
    service = ServiceThread(data_dir)
    hls = HlsConfig(SegmentFormat.FMP4, 0.5)
    service.config = replace(service.config, buckets=(replace(service.config.buckets[0], hls=hls),))
    return service


@pytest.fixture
def live(tmp_path: Path):  # type: ignore[no-untyped-def]
    with ll_service(tmp_path / "data").start() as svc:
        create_channel(svc.bucket(), "cam", frag_duration=1, frag_count=4)
        pub = publishers.start(
            publishers.ffmpeg_live(svc.signed_publish_url("cam"), duration_s=12, gop_s=1)
        )
        try:
            yield svc
        finally:
            publishers.stop(pub)


def test_blocking_reloads_parts_and_hls_sign(live: ServiceThread) -> None:
    svc = live
    bucket = svc.bucket()
    signed = bucket.sign_url("GET", "cam/playlist.m3u8", 300, params={"x-oss-process": "hls/sign"})
    session = requests.Session()
    try:
        _follow(svc, session, signed)
    finally:
        session.close()  # its keep-alive connection must not outlive the service


def _follow(svc: ServiceThread, session: requests.Session, signed: str) -> None:
    deadline = time.monotonic() + 20
    while "#EXT-X-PART:" not in (text := session.get(signed, timeout=10).text):
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    history = PlaylistHistory()
    playlist = validate_ll_playlist(text)
    history.add(text)
    waits = []
    for _ in range(RELOADS):
        msn, part = next_request(playlist)
        start = time.monotonic()
        answer = session.get(f"{signed}&_HLS_msn={msn}&_HLS_part={part}", timeout=10)
        waits.append(time.monotonic() - start)
        assert answer.status_code == 200, answer.text
        playlist = validate_ll_playlist(answer.text)
        assert_answers_blocking_reload(playlist, msn, part)
        history.add(answer.text)
    print(f"blocking reloads answered after {sorted(waits)} s")
    # Every part, init and preload URI is signed (absolute, with a Signature).
    text = answer.text
    uris = re.findall(r'URI="([^"]+)"', text)
    assert uris and all("Signature=" in u and u.startswith(f"/{BUCKET}/cam/") for u in uris)
    assert "CAN-SKIP-UNTIL" not in text  # a 4-segment window has nothing worth skipping
    # The init section and the parts of a complete segment decode into its frames.
    base = svc.endpoint
    init_uri = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)[-1]
    init = session.get(base + init_uri, timeout=10).content
    complete = [s for s in playlist.complete if s.parts]
    assert complete and all(s.parts[0][2] for s in complete)  # each starts independent
    segment = complete[-1]
    parts_uris = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
    body = b""
    for part_uri, _, _ in segment.parts:
        match = next(
            u
            for u in parts_uris
            if u.split("?")[0].endswith("/" + part_uri.split("?")[0].rsplit("/", 1)[-1])
        )
        body += session.get(base + match, timeout=10).content
    video, audio, logs, first_key = decode_all(init + body)
    assert logs == [] and first_key and video == FPS and audio > 0
    # The preload-hinted part: asked before it exists, answered when it does.
    hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
    assert hint is not None
    hinted = session.get(base + hint.group(1), timeout=10)
    assert hinted.status_code == 200 and hinted.content[4:8] == b"moof"
    # Too far ahead: 400 at once (RFC 8216bis 6.2.5.2).
    far = session.get(f"{signed}&_HLS_msn={playlist.last_msn() + 10}", timeout=10)
    assert far.status_code == 400 and "InvalidArgument" in far.text
    # Unsigned, the private bucket's playlist stays closed.
    assert session.get(f"{base}/{BUCKET}/cam/playlist.m3u8", timeout=10).status_code == 403
    # Once the push is over, storage's playlist answers: classic, with its init section.
    svc.wait_idle("cam", timeout_s=40)
    text = session.get(signed, timeout=10).text
    assert "#EXT-X-PART" not in text and "#EXT-X-MAP" in text
    validate_media_playlist_text = PlaylistHistory().add(text)
    assert validate_media_playlist_text.segments
