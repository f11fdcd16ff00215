"""LL-HLS from any process (api/owners.py): with `serve --workers 2`, whichever worker the
kernel hands a player's connection to, the player gets the LL-HLS playlist of the worker
that owns the push; from another node, a redirect to the owner's advertised URL.

Every request here goes on a fresh connection, so the kernel (SO_REUSEPORT) picks a worker
for each: without the hand-over about half of them would reach the worker without the push
and get storage's classic playlist. All FRESH_REQUESTS must be answered as LL-HLS; by chance
alone they would all reach the owner once in 2**FRESH_REQUESTS runs.
"""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from livechannel.api.owners import (
    MAX_SOCKET_PATH_BYTES,
    prepare_socket_dir,
    socket_dir,
    socket_path,
)
from tests.robustness.serve_process import ServeProcess, free_port
from tests.support import publishers
from tests.support.ll_hls_validator import (
    assert_answers_blocking_reload,
    next_request,
    validate_ll_playlist,
)
from tests.support.service import create_channel

FRESH_REQUESTS = 16
PUBLISH_S = 30  # ffmpeg's stream: long enough for the requests below on a loaded machine
FIRST_PARTS_TIMEOUT_S = 20.0
IO_TIMEOUT_S = 10.0
LL_TOML = """
[[buckets]]
name = "live"
[buckets.hls]
segment_format = "fmp4"
part_duration_s = 0.5
"""


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ServeProcess]:
    config = tmp_path / "ll.toml"
    config.write_text(LL_TOML)
    proc = ServeProcess(tmp_path / "data", config=config, args=["--workers", "2"]).start()
    try:
        yield proc
    finally:
        proc.terminate(15)


def fresh_get(url: str) -> requests.Response:
    """A GET on a new connection (the kernel picks the worker again)."""
    with requests.Session() as session:
        return session.get(url, timeout=IO_TIMEOUT_S, headers={"Connection": "close"})


def test_every_worker_answers_ll_hls(two_workers: ServeProcess) -> None:
    proc = two_workers
    bucket = proc.bucket()
    create_channel(bucket, "cam", frag_duration=1, frag_count=4)
    pub = publishers.start(
        publishers.ffmpeg_live(proc.signed_publish_url("cam"), duration_s=PUBLISH_S, gop_s=1)
    )
    try:
        signed = bucket.sign_url("GET", "cam/playlist.m3u8", 300)
        deadline = time.monotonic() + FIRST_PARTS_TIMEOUT_S
        while "#EXT-X-PART:" not in (text := fresh_get(signed).text):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        for _ in range(FRESH_REQUESTS):
            plain = fresh_get(signed)
            assert plain.status_code == 200 and "#EXT-X-PART:" in plain.text, plain.text
            msn, part = next_request(validate_ll_playlist(plain.text))
            answer = fresh_get(f"{signed}&_HLS_msn={msn}&_HLS_part={part}")
            assert answer.status_code == 200, answer.text
            assert_answers_blocking_reload(validate_ll_playlist(answer.text), msn, part)
        # A listed part, fetched through both workers, is the same bytes.
        uri = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', answer.text)[-1]
        part_url = bucket.sign_url("GET", f"cam/{uri}", 300)
        bodies = {fresh_get(part_url).content for _ in range(FRESH_REQUESTS // 2)}
        assert len(bodies) == 1 and next(iter(bodies))[4:8] == b"moof"
        # Unsigned, the private bucket stays closed whichever worker is asked.
        for _ in range(4):
            url = f"http://127.0.0.1:{proc.http_port}/live/cam/playlist.m3u8"
            assert fresh_get(url).status_code == 403
    finally:
        publishers.stop(pub)
    assert "Traceback" not in proc.log()


def test_the_socket_directory_is_this_users_alone(tmp_path: Path) -> None:
    short = tmp_path / "d"
    assert socket_dir(short) == short.resolve() / "run"
    deep = tmp_path / ("x" * 120)
    assert len(str(socket_path(socket_dir(deep), 1)).encode()) <= MAX_SOCKET_PATH_BYTES
    prepare_socket_dir(socket_dir(short))
    assert stat.S_IMODE(socket_dir(short).stat().st_mode) == 0o700
    elsewhere = tmp_path / "link"
    elsewhere.symlink_to(tmp_path)
    with pytest.raises(OSError, match="not a directory of this user"):
        prepare_socket_dir(elsewhere)


def test_another_node_redirects_to_the_owner(tmp_path: Path) -> None:
    """Two nodes on one metadata store: node B, asked for a channel whose LL-HLS push node A
    owns, redirects (307) to A's advertised URL with the request's path and query, so the
    signature holds and the player's next requests (relative part URIs) go to A directly."""
    config = tmp_path / "ll.toml"
    config.write_text(LL_TOML)
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    a_port = free_port()
    a_url = f"http://127.0.0.1:{a_port}"
    a_args = ["--store", store, "--node-id", "node-a", "--advertise-url", a_url]
    a = ServeProcess(tmp_path / "a", config=config, http_port=a_port, args=a_args)
    b = ServeProcess(tmp_path / "b", config=config, args=["--store", store, "--node-id", "node-b"])
    a.start()
    try:
        b.start()
        try:
            _follow_through(a, b, a_url)
        finally:
            b.terminate(15)
    finally:
        a.terminate(15)
    assert "Traceback" not in a.log() + b.log()


def _follow_through(a: ServeProcess, b: ServeProcess, a_url: str) -> None:
    create_channel(a.bucket(), "cam", frag_duration=1, frag_count=4)
    pub = publishers.start(
        publishers.ffmpeg_live(a.signed_publish_url("cam"), duration_s=PUBLISH_S, gop_s=1)
    )
    try:
        on_a = a.bucket().sign_url("GET", "cam/playlist.m3u8", 300)
        deadline = time.monotonic() + FIRST_PARTS_TIMEOUT_S
        while "#EXT-X-PART:" not in (text := fresh_get(on_a).text):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        on_b = b.bucket().sign_url("GET", "cam/playlist.m3u8", 300)
        msn, part = next_request(validate_ll_playlist(text))
        with requests.Session() as session:
            # Escapes in the query must reach A as they were sent (a signature's %2B read as
            # "+" would be a space): an unsigned parameter with some makes sure there are.
            query = f"&_HLS_msn={msn}&_HLS_part={part}&note=a%2Bb%2Fc%20d"
            hop = session.get(on_b + query, timeout=IO_TIMEOUT_S, allow_redirects=False)
            assert hop.status_code == 307, hop.text
            location = hop.headers["Location"]
            assert location == a_url + on_b.split(f":{b.http_port}", 1)[1] + query
            answer = session.get(location, timeout=IO_TIMEOUT_S)
            assert answer.status_code == 200, answer.text
            assert_answers_blocking_reload(validate_ll_playlist(answer.text), msn, part)
            followed = session.get(on_b, timeout=IO_TIMEOUT_S)  # as a player does
            assert followed.url.startswith(a_url) and "#EXT-X-PART:" in followed.text
    finally:
        publishers.stop(pub)
