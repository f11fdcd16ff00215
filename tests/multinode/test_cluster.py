"""Three nodes (real processes in network namespaces) on PostgreSQL and S3, behind HAProxy.

One run shows, in order: a publish through the balancer lands on some node and plays; a
second publisher for the channel is refused on every node; Stat is the same from every node;
a disable through another node's API kicks within 1 s (latency printed); kill -9 of the node
holding the next push frees the channel within the stale timeout and the reconnect through
the balancer continues the playlist on another node (DISCONTINUITY, no name reused, no
MEDIA-SEQUENCE going back); history and VOD are the same from every node; PostgreSQL stopped
for 20 s and started again loses nothing (the push runs on, every segment gets indexed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import oss2
import pytest

from livechannel.fleet.liveness import STALE_PUSH_MS
from livechannel.server import STALE_SWEEP_INTERVAL_S
from livechannel.store.postgres_notices import LEADER_RETRY_S
from tests.support import haproxy, netns, postgres, publishers
from tests.support.cluster import Cluster, wait_for
from tests.support.hls import probe_segment
from tests.support.service import create_channel

pytestmark = [
    pytest.mark.multinode,
    pytest.mark.skipif(not postgres.available(), reason="PostgreSQL not installed"),
    pytest.mark.skipif(not haproxy.available(), reason="HAProxy not installed"),
]
KICK_DEADLINE_S = 1.0
# A dead node's push ends STALE_PUSH_MS after its last heartbeat, at the next sweep of the
# leader (which may have to be elected first, if the dead node was the leader).
FREED_DEADLINE_S = STALE_PUSH_MS / 1000 + STALE_SWEEP_INTERVAL_S + LEADER_RETRY_S + 2
OUTAGE_S = 20.0
CHANNEL = "cam"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    ok, why = netns.available()
    if not ok:
        pytest.skip(why)
    c = Cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        logs = c.logs()
        c.stop()
        print(logs)


def _media_sequence(playlist: str) -> int:
    line = next(x for x in playlist.splitlines() if x.startswith("#EXT-X-MEDIA-SEQUENCE:"))
    return int(line.split(":", 1)[1])


def _indexed(c: Cluster) -> list[tuple[int, str]]:
    rows = c.sql(f"SELECT seq, key FROM segments WHERE channel = '{CHANNEL}' ORDER BY seq")
    return [(int(seq), key) for seq, key in rows]


def _live_publisher(c: Cluster) -> publishers.subprocess.Popen[str]:
    return publishers.start(
        publishers.ffmpeg_live(c.publish_url(CHANNEL), duration_s=100, gop_s=1, fps=25)
    )


def test_three_nodes_behind_haproxy(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    nodes = list(range(1, c.count + 1))
    create_channel(c.bucket(), CHANNEL, frag_duration=1, frag_count=4)

    # --- a publish through the balancer lands on some node and plays -----------------------
    pub = _live_publisher(c)
    try:
        wait_for("the push starts on some node", lambda: c.owner(CHANNEL) is not None)
        owner = c.owner(CHANNEL)
        assert owner in nodes
        wait_for("two segments indexed", lambda: len(_indexed(c)) >= 2)
        playlist = c.bucket().get_object(f"{CHANNEL}/playlist.m3u8").read().decode()
        last = [x for x in playlist.splitlines() if x and not x.startswith("#")][-1]
        segment = tmp_path / "first.ts"
        segment.write_bytes(c.bucket().get_object(f"{CHANNEL}/{last}").read())
        probe = probe_segment(segment)
        assert probe.video_frames > 0 and probe.starts_with_keyframe and not probe.decode_errors

        # --- a second publisher is refused whichever node it reaches ----------------------
        for node in nodes:
            second = publishers.run(
                publishers.ffmpeg_live(c.publish_url(CHANNEL, node), duration_s=2), timeout_s=30
            )
            assert second.returncode != 0 and "channel is already live" in second.stderr, node

        # --- Stat the same from every node -------------------------------------------------
        stats = [c.bucket(node).get_live_channel_stat(CHANNEL) for node in nodes]
        assert {s.status for s in stats} == {"Live"}
        assert len({s.remote_addr for s in stats}) == 1
        assert stats[0].remote_addr.startswith("127.0.0.1:")  # the client, not HAProxy

        # --- disable through another node's API kicks within 1 s --------------------------
        other = next(n for n in nodes if n != owner)
        start = time.monotonic()
        c.bucket(other).put_live_channel_status(CHANNEL, "disabled")
        pub.wait(timeout=10)
        kick_s = time.monotonic() - start
        print(f"kick: disabled through node{other}, publisher on node{owner} gone after "
              f"{kick_s * 1000:.0f} ms")  # fmt: skip
        assert kick_s <= KICK_DEADLINE_S
    finally:
        publishers.stop(pub)
    c.bucket(other).put_live_channel_status(CHANNEL, "enabled")
    wait_for("the kicked push ends", lambda: c.owner(CHANNEL) is None)

    # --- kill -9 of the node holding the push; the reconnect continues elsewhere -----------
    pub = _live_publisher(c)
    try:
        wait_for("the second push starts", lambda: c.owner(CHANNEL) is not None)
        victim = c.owner(CHANNEL)
        assert victim is not None
        count = len(_indexed(c))
        wait_for("segments of the second push", lambda: len(_indexed(c)) >= count + 3)
        before = c.object(f"{CHANNEL}/playlist.m3u8").decode()
        c.kill(victim)
        killed_at = time.monotonic()
    finally:
        publishers.stop(pub)
    wait_for(
        "the dead node's push is ended by another node",
        lambda: c.owner(CHANNEL) is None,
        timeout_s=FREED_DEADLINE_S + 5,
        every_s=0.2,
    )
    freed_s = time.monotonic() - killed_at
    print(f"kill -9 of node{victim}: channel free again after {freed_s:.1f} s")
    assert freed_s <= FREED_DEADLINE_S
    old_keys = {key for _, key in _indexed(c)}
    pub = None
    for _attempt in range(10):  # HAProxy may still send one to the dead node: retry, as OBS does
        pub = _live_publisher(c)
        try:
            wait_for("the reconnect is accepted", lambda: c.owner(CHANNEL) is not None, 6)
            break
        except AssertionError:
            publishers.stop(pub)
            pub = None
    assert pub is not None, "no reconnect was accepted"
    try:
        new_owner = c.owner(CHANNEL)
        assert new_owner is not None and new_owner != victim
        count = len(_indexed(c))
        wait_for("segments of the reconnect", lambda: len(_indexed(c)) >= count + 3)
        after = c.object(f"{CHANNEL}/playlist.m3u8").decode()
        assert "#EXT-X-DISCONTINUITY" in after
        assert _media_sequence(after) >= _media_sequence(before)
        rows = _indexed(c)
        new_keys = [key for _, key in rows if key not in old_keys]
        assert new_keys and all(k not in old_keys for k in new_keys)  # no name reused
        assert [seq for seq, _ in rows] == sorted({seq for seq, _ in rows})
        assert max(int(k.split("/")[1][:-3]) for k in old_keys) < min(
            int(k.split("/")[1][:-3]) for k in new_keys
        )

        # --- history and VOD the same from every live node ---------------------------------
        alive = [n for n in nodes if n != victim]
        histories = [
            [(r.start_time, r.end_time, r.remote_addr)
             for r in c.bucket(n).get_live_channel_history(CHANNEL).records]
            for n in alive
        ]  # fmt: skip
        assert len(histories[0]) == 2 and all(h == histories[0] for h in histories)
        # up to 10 s ago: segments still arriving must not make the nodes' answers differ
        end_s = int(time.time()) - 10
        vods = [c.bucket(n).get_vod_playlist(CHANNEL, end_s - 300, end_s).playlist for n in alive]
        assert vods[0].count(".ts") >= 4 and all(v == vods[0] for v in vods)

        # --- PostgreSQL stopped for 20 s and started again loses nothing -------------------
        assert c.pg is not None
        sequence_before = _media_sequence(c.object(f"{CHANNEL}/playlist.m3u8").decode())
        c.pg.stop()
        down_at = time.monotonic()
        with pytest.raises(oss2.exceptions.ServerError) as e:
            c.bucket().get_live_channel_stat(CHANNEL)
        assert e.value.status == 503
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        during = _media_sequence(c.object(f"{CHANNEL}/playlist.m3u8").decode())
        assert during >= sequence_before + OUTAGE_S / 2, "the playlist stalled in the outage"
        assert pub.poll() is None, "the publisher was dropped in the outage"
        c.pg.start()
        wait_for("the API answers again", lambda: _stat(c) == "Live", timeout_s=20, every_s=0.2)
        time.sleep(STALE_PUSH_MS / 1000 + 2)  # a sweep must not end the push now
        assert c.owner(CHANNEL) == new_owner and pub.poll() is None
    finally:
        if pub is not None:
            publishers.stop(pub)
    wait_for("the push ends", lambda: c.owner(CHANNEL) is None, timeout_s=20, every_s=0.2)
    indexed = {key for _, key in _indexed(c)}
    new_objects = {k for k in c.segment_objects(CHANNEL) if k not in old_keys}
    missing = new_objects - indexed
    # Every object of the pushes that ran on live nodes is indexed; only the killed node may
    # have stored a segment it never got to index.
    assert len(missing) <= 1 and all(
        int(k.split("/")[1][:-3]) < min(int(x.split("/")[1][:-3]) for x in new_keys)
        for k in missing
    ), sorted(missing)


def _stat(c: Cluster) -> str:
    try:
        return str(c.bucket().get_live_channel_stat(CHANNEL).status)
    except (oss2.exceptions.ServerError, oss2.exceptions.RequestError):
        return ""
