"""PostgreSQL down while a push runs: the push keeps writing segments and playlists, the API
answers 503 ServiceUnavailable (and /-/readyz 503 naming the store), a new publish is refused
with a readable reason; when the database is back the waiting index rows are written and
nothing is lost, and no running push is swept as stale for the heartbeats the outage
swallowed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest

from livechannel.ops.health import READY_CACHE_S
from tests.support import publishers
from tests.support.postgres import PostgresServer, available, start_postgres
from tests.support.service import BUCKET, ServiceThread, create_channel

pytestmark = pytest.mark.slow
OUTAGE_S = 10.0  # two stale-push timeouts (the multi-node test stops it for 20 s)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it is stopped and started again."""
    if not available():
        pytest.skip("PostgreSQL is not installed (bash scripts/test.sh installs it)")
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


def _wait(what: str, check: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_postgres_outage_loses_nothing(own_postgres: PostgresServer, tmp_path: Path) -> None:
    url = own_postgres.url(own_postgres.new_database())
    objects = tmp_path / "objects"
    storage = {"type": "local", "root": str(objects)}
    with ServiceThread(tmp_path / "a", storage=storage, store=url).start() as svc:
        bucket = svc.bucket()
        create_channel(bucket, "cam", frag_duration=1, frag_count=3)
        create_channel(bucket, "late", frag_duration=1, frag_count=3)
        pub = publishers.start(
            publishers.ffmpeg_live(svc.signed_publish_url("cam"), duration_s=60, gop_s=1)
        )
        try:
            playlist = objects / "cam" / "playlist.m3u8"
            _wait("first segments", lambda: len(list((objects / "cam").glob("*.ts"))) >= 2)

            assert svc.probe("/-/readyz")[0] == 200
            own_postgres.stop()
            down_at = time.monotonic()
            # Readiness names the store (a load balancer takes this node out), liveness holds.
            time.sleep(READY_CACHE_S)
            status, body = svc.probe("/-/readyz")
            assert (status, body["down"]) == (503, ["store"]), body
            assert svc.probe("/-/healthz")[0] == 200
            before = media_sequence(playlist.read_text())
            with pytest.raises(oss2.exceptions.ServerError) as e:
                bucket.get_live_channel_stat("cam")
            assert (e.value.status, e.value.code) == (503, "ServiceUnavailable")
            refused = publishers.run(
                publishers.ffmpeg_live(svc.signed_publish_url("late"), duration_s=3),
                timeout_s=30,
            )
            assert refused.returncode != 0
            assert "metadata store cannot be reached" in refused.stderr
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            during = media_sequence(playlist.read_text())
            assert during >= before + OUTAGE_S / 2, "the playlist stopped during the outage"
            assert pub.poll() is None, "the publisher was dropped during the outage"

            own_postgres.start()
            _wait("the API is back", lambda: _stat_status(bucket) == "Live", timeout_s=20)
            _wait("ready again", lambda: svc.probe("/-/readyz")[0] == 200)
            on_disk = sorted((objects / "cam").glob("*.ts"))
            _wait(
                "waiting index rows written",
                lambda: (
                    len(svc.call(svc.store.last_segments(BUCKET, "cam", 10_000))) >= len(on_disk)
                ),
                timeout_s=10,
            )
            time.sleep(3)  # past a stale sweep or two: the push must still run
            assert pub.poll() is None
            assert svc.call(svc.store.live_push(BUCKET, "cam")) is not None
        finally:
            publishers.stop(pub)
        svc.wait_idle("cam")
        rows = svc.call(svc.store.last_segments(BUCKET, "cam", 10_000))
        names = sorted(p.name for p in (objects / "cam").glob("*.ts"))
        assert sorted(r.key.rsplit("/", 1)[1] for r in rows) == names  # every object indexed
        assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + len(rows)))
        history = bucket.get_live_channel_history("cam").records
        assert len(history) == 1  # one push, not swept and restarted


def media_sequence(playlist: str) -> int:
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            return int(line.split(":", 1)[1])
    raise AssertionError("no #EXT-X-MEDIA-SEQUENCE")


def _stat_status(bucket: oss2.Bucket) -> str:
    try:
        return str(bucket.get_live_channel_stat("cam").status)
    except oss2.exceptions.ServerError:
        return ""
