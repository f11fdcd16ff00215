"""One behaviour for every MetadataStore: the in-memory one, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livechannel.errors import (
    ChannelStillLive,
    LiveChannelDisabled,
    NoSuchBucket,
    NoSuchLiveChannel,
)
from livechannel.store.base import (
    Acl,
    ChannelConfig,
    ChannelStatus,
    MetadataStore,
    Segment,
    SegmentFormat,
    Snapshot,
)
from livechannel.store.conflicts import SegmentConflict
from livechannel.store.memory import MemoryStore
from livechannel.store.postgres import PostgresStore
from livechannel.store.sqlite import SqliteStore
from tests.support.postgres import PostgresServer

B = "live"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    s: MetadataStore
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = await SqliteStore.open(str(tmp_path / "meta.db"))
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        s = await PostgresStore.open(server.url(server.new_database()))
    await s.ensure_bucket(B, Acl.PRIVATE, 1)
    yield s
    await s.close()


async def _channel(store: MetadataStore, name: str, **config: object) -> None:
    await store.put_channel(B, name, ChannelConfig(**config), 10)  # type: ignore[arg-type]


def _segment(seq: int, start_ms: int, *, channel: str = "c", disc: bool = False) -> Segment:
    return Segment(
        bucket=B,
        channel=channel,
        seq=seq,
        key=f"{channel}/{start_ms}.ts",
        start_ms=start_ms,
        duration_ms=2000,
        size=1000 + seq,
        push_id=1,
        discontinuity=disc,
    )


# --- buckets --------------------------------------------------------------------------------
async def test_ensure_bucket_creates_once_and_keeps_acl(store: MetadataStore) -> None:
    again = await store.ensure_bucket(B, Acl.PUBLIC_READ, 99)
    assert (again.acl, again.created_ms) == (Acl.PRIVATE, 1)
    made = await store.ensure_bucket("other", Acl.PUBLIC_READ_WRITE, 5)
    assert (made.name, made.acl, made.created_ms) == ("other", Acl.PUBLIC_READ_WRITE, 5)
    assert await store.get_bucket("other") == made
    assert await store.get_bucket("nope") is None
    assert [b.name for b in await store.list_buckets()] == ["live", "other"]


async def test_set_bucket_acl(store: MetadataStore) -> None:
    await store.set_bucket_acl(B, Acl.PUBLIC_READ)
    bucket = await store.get_bucket(B)
    assert bucket is not None and bucket.acl is Acl.PUBLIC_READ
    with pytest.raises(NoSuchBucket):
        await store.set_bucket_acl("nope", Acl.PRIVATE)


# --- channels -------------------------------------------------------------------------------
async def test_put_and_get_channel_round_trip(store: MetadataStore) -> None:
    config = ChannelConfig(
        description="d ü",
        status=ChannelStatus.DISABLED,
        frag_duration_s=2,
        frag_count=7,
        playlist_name="x.m3u8",
        snapshot=Snapshot("role", "dest", "topic", 3),
        segment_format=SegmentFormat.FMP4,
    )
    made = await store.put_channel(B, "c", config, 42)
    assert (made.bucket, made.name, made.config, made.last_modified_ms) == (B, "c", config, 42)
    assert await store.get_channel(B, "c") == made
    assert await store.get_channel(B, "other") is None
    assert await store.get_channel("other-bucket", "c") is None


async def test_put_channel_replaces_config(store: MetadataStore) -> None:
    await _channel(store, "c", description="one")
    await store.put_channel(B, "c", ChannelConfig(description="two", frag_count=9), 50)
    got = await store.get_channel(B, "c")
    assert got is not None
    assert (got.config.description, got.config.frag_count, got.config.snapshot) == ("two", 9, None)
    assert got.last_modified_ms == 50


async def test_put_channel_needs_the_bucket(store: MetadataStore) -> None:
    with pytest.raises(NoSuchBucket):
        await store.put_channel("nope", "c", ChannelConfig(), 1)


async def test_put_channel_refused_while_live(store: MetadataStore) -> None:
    await _channel(store, "c")
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    with pytest.raises(ChannelStillLive):
        await store.put_channel(B, "c", ChannelConfig(description="new"), 101)
    got = await store.get_channel(B, "c")
    assert got is not None and got.config.description == ""
    await store.end_push(push.push_id, 200)
    await store.put_channel(B, "c", ChannelConfig(description="new"), 201)


async def test_list_channels_prefix_marker_limit(store: MetadataStore) -> None:
    for name in ["b2", "a", "b1", "c", "b3", "é", "Z", "b"]:
        await _channel(store, name)
    await store.ensure_bucket("other", Acl.PRIVATE, 1)
    await store.put_channel("other", "b0", ChannelConfig(), 1)

    async def names(prefix: str, marker: str, limit: int) -> list[str]:
        return [c.name for c in await store.list_channels(B, prefix, marker, limit)]

    assert await names("", "", 100) == ["Z", "a", "b", "b1", "b2", "b3", "c", "é"]  # byte order
    assert await names("b", "", 100) == ["b", "b1", "b2", "b3"]
    assert await names("b", "b", 100) == ["b1", "b2", "b3"]  # marker is exclusive
    assert await names("b", "b1", 2) == ["b2", "b3"]
    assert await names("", "b3", 100) == ["c", "é"]
    assert await names("", "", 3) == ["Z", "a", "b"]
    assert await names("", "zzz", 100) == ["é"]  # a marker that is not a name still counts
    assert await names("q", "", 100) == []
    assert await names("", "", 0) == []
    with pytest.raises(NoSuchBucket):
        await store.list_channels("nope", "", "", 10)


async def test_list_channels_prefix_is_literal(store: MetadataStore) -> None:
    for name in ["a_b", "axb", "a%b", "A_b"]:
        await _channel(store, name)
    assert [c.name for c in await store.list_channels(B, "a_", "", 10)] == ["a_b"]
    assert [c.name for c in await store.list_channels(B, "a%", "", 10)] == ["a%b"]


async def test_set_channel_status(store: MetadataStore) -> None:
    await _channel(store, "c")
    await store.set_channel_status(B, "c", ChannelStatus.DISABLED, 77)
    got = await store.get_channel(B, "c")
    assert got is not None
    assert (got.config.status, got.last_modified_ms) == (ChannelStatus.DISABLED, 77)
    with pytest.raises(NoSuchLiveChannel):
        await store.set_channel_status(B, "nope", ChannelStatus.ENABLED, 1)


async def test_disable_kicks_the_running_push(store: MetadataStore) -> None:
    await _channel(store, "c")
    await _channel(store, "d")
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    other = await store.start_push(B, "d", "1.2.3.4:6", "w1", 100)
    assert not push.kick
    await store.set_channel_status(B, "c", ChannelStatus.ENABLED, 101)
    beat = await store.heartbeat(push.push_id, 102, "{}")
    assert beat is not None and not beat.kick
    await store.set_channel_status(B, "c", ChannelStatus.DISABLED, 103)
    beat = await store.heartbeat(push.push_id, 104, "{}")
    assert beat is not None and beat.kick
    live = await store.live_push(B, "c")
    assert live is not None and live.kick
    other_beat = await store.heartbeat(other.push_id, 104, "{}")
    assert other_beat is not None and not other_beat.kick  # only that channel's push


async def test_delete_channel(store: MetadataStore) -> None:
    with pytest.raises(NoSuchLiveChannel):
        await store.delete_channel(B, "c")
    await _channel(store, "c")
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    await store.add_segment(_segment(0, 1000))
    with pytest.raises(ChannelStillLive):
        await store.delete_channel(B, "c")
    assert await store.get_channel(B, "c") is not None
    await store.end_push(push.push_id, 200)
    await store.delete_channel(B, "c")
    assert await store.get_channel(B, "c") is None
    assert await store.last_segments(B, "c", 5) == [_segment(0, 1000)]  # segments are kept
    await _channel(store, "c")
    assert await store.history(B, "c", 10) == []  # a re-created channel starts afresh


# --- pushes ---------------------------------------------------------------------------------
async def test_start_push_checks_channel(store: MetadataStore) -> None:
    with pytest.raises(NoSuchLiveChannel):
        await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    await _channel(store, "c", status=ChannelStatus.DISABLED)
    with pytest.raises(LiveChannelDisabled):
        await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    assert await store.live_push(B, "c") is None


async def test_start_push_fields(store: MetadataStore) -> None:
    await _channel(store, "c")
    push = await store.start_push(B, "c", "10.0.0.1:5000", "host:42", 100)
    assert (push.bucket, push.channel, push.remote_addr, push.worker) == (
        B,
        "c",
        "10.0.0.1:5000",
        "host:42",
    )
    assert (push.start_ms, push.end_ms, push.heartbeat_ms, push.kick) == (100, None, 100, False)
    assert push.stats_json == "{}" and push.owner_url == ""
    assert await store.live_push(B, "c") == push


async def test_a_push_keeps_where_its_owner_is_reached(store: MetadataStore) -> None:
    await _channel(store, "c")
    url = "http://node-a.example.com:8080"
    push = await store.start_push(B, "c", "10.0.0.1:5000", "a/0@h:1", 100, url)
    assert push.owner_url == url
    assert await store.live_push(B, "c") == push
    beat = await store.heartbeat(push.push_id, 200, "{}")
    assert beat is not None and beat.owner_url == url


async def test_one_running_push_per_channel(store: MetadataStore) -> None:
    await _channel(store, "c")
    await _channel(store, "d")
    first = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    with pytest.raises(ChannelStillLive):
        await store.start_push(B, "c", "1.2.3.4:6", "w2", 101)
    assert await store.live_push(B, "c") == first
    await store.start_push(B, "d", "1.2.3.4:7", "w2", 101)  # other channels are independent
    await store.end_push(first.push_id, 150)
    second = await store.start_push(B, "c", "1.2.3.4:6", "w2", 160)
    assert second.push_id > first.push_id
    assert await store.live_push(B, "c") == second


async def test_heartbeat(store: MetadataStore) -> None:
    await _channel(store, "c")
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    beat = await store.heartbeat(push.push_id, 150, '{"video": 1}')
    assert beat is not None
    assert (beat.heartbeat_ms, beat.stats_json, beat.start_ms) == (150, '{"video": 1}', 100)
    assert await store.live_push(B, "c") == beat
    await store.end_push(push.push_id, 160)
    assert await store.heartbeat(push.push_id, 170, "{}") is None
    assert await store.heartbeat(12345, 170, "{}") is None


async def test_end_push(store: MetadataStore) -> None:
    await _channel(store, "c")
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    await store.end_push(push.push_id, 300)
    await store.end_push(push.push_id, 999)  # a second end changes nothing
    await store.end_push(12345, 999)  # an unknown push is no error
    assert await store.live_push(B, "c") is None
    (ended,) = await store.history(B, "c", 10)
    assert (ended.push_id, ended.end_ms) == (push.push_id, 300)


async def test_end_push_never_before_start(store: MetadataStore) -> None:
    await _channel(store, "c")
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    await store.end_push(push.push_id, 50)  # a clock step backwards
    (ended,) = await store.history(B, "c", 10)
    assert ended.end_ms == 100


async def test_history_ended_newest_first_with_limit(store: MetadataStore) -> None:
    await _channel(store, "c")
    await _channel(store, "d")
    ids = []
    for i in range(12):
        push = await store.start_push(B, "c", f"1.2.3.4:{i}", "w1", 1000 * i)
        await store.end_push(push.push_id, 1000 * i + 500)
        ids.append(push.push_id)
    running = await store.start_push(B, "c", "1.2.3.4:99", "w1", 50_000)
    other = await store.start_push(B, "d", "1.2.3.4:98", "w1", 60_000)
    await store.end_push(other.push_id, 61_000)
    history = await store.history(B, "c", 10)
    assert [p.push_id for p in history] == ids[::-1][:10]
    assert running.push_id not in [p.push_id for p in history]
    assert [p.remote_addr for p in history[:2]] == ["1.2.3.4:11", "1.2.3.4:10"]
    assert all(p.end_ms is not None for p in history)
    assert len(await store.history(B, "c", 100)) == 12
    assert await store.history(B, "c", 0) == []
    assert await store.history(B, "nope", 10) == []


async def test_close_stale_pushes(store: MetadataStore) -> None:
    for name in "abcd":
        await _channel(store, name)
    a = await store.start_push(B, "a", "1.2.3.4:1", "w1", 100)
    b = await store.start_push(B, "b", "1.2.3.4:2", "w1", 100)
    c = await store.start_push(B, "c", "1.2.3.4:3", "w2", 100)
    d = await store.start_push(B, "d", "1.2.3.4:4", "w2", 100)
    await store.heartbeat(a.push_id, 400, "{}")
    await store.heartbeat(b.push_id, 500, "{}")  # exactly at the threshold: not stale
    await store.heartbeat(c.push_id, 300, "{}")
    await store.end_push(d.push_id, 150)  # already ended: untouched
    assert await store.running_workers() == {"w1": 500, "w2": 300}
    closed = await store.close_stale_pushes(500, ["w1"])  # c is stale too, but w2 is spared
    assert [(p.push_id, p.end_ms) for p in closed] == [(a.push_id, 400)]
    assert await store.live_push(B, "a") is None
    assert await store.live_push(B, "b") is not None
    assert await store.live_push(B, "c") is not None
    assert [p.end_ms for p in await store.history(B, "d", 10)] == [150]
    assert await store.close_stale_pushes(500, ["w1"]) == []
    assert await store.close_stale_pushes(10_000, []) == []
    # the channel is free again
    await store.start_push(B, "a", "1.2.3.4:9", "w3", 1000)
    assert await store.running_workers() == {"w1": 500, "w2": 300, "w3": 1000}
    swept = await store.close_stale_pushes(10_000, ["w2", "w3", "nobody"])
    assert [p.channel for p in swept] == ["c", "a"]  # w2's and w3's; b (w1) stays running
    assert await store.live_push(B, "b") is not None
    assert await store.running_workers() == {"w1": 500}


async def test_close_worker_pushes(store: MetadataStore) -> None:
    for name in "abc":
        await _channel(store, name)
    a = await store.start_push(B, "a", "1.2.3.4:1", "host:1", 100)
    b = await store.start_push(B, "b", "1.2.3.4:2", "host:2", 100)
    c = await store.start_push(B, "c", "1.2.3.4:3", "host:1", 100)
    await store.heartbeat(c.push_id, 333, "{}")
    closed = await store.close_worker_pushes("host:1")
    assert [(p.push_id, p.end_ms) for p in closed] == [(a.push_id, 100), (c.push_id, 333)]
    assert await store.live_push(B, "b") == b
    assert await store.live_push(B, "a") is None and await store.live_push(B, "c") is None
    assert await store.close_worker_pushes("host:1") == []
    assert await store.close_worker_pushes("nobody") == []


# --- segment index --------------------------------------------------------------------------
async def test_last_segments(store: MetadataStore) -> None:
    assert await store.last_segments(B, "c", 3) == []
    segs = [_segment(seq, 1000 * seq) for seq in range(6)]
    for s in reversed(segs):  # insertion order does not matter, seq does
        await store.add_segment(s)
    await store.add_segment(_segment(0, 1, channel="other"))
    assert await store.last_segments(B, "c", 3) == segs[3:]
    assert await store.last_segments(B, "c", 100) == segs
    assert await store.last_segments(B, "c", 0) == []


async def test_fmp4_segment_keeps_its_init_key(store: MetadataStore) -> None:
    fmp4 = dataclasses.replace(_segment(3, 3000), key="c/3000.m4s", init_key="c/1000.mp4")
    await store.add_segment(fmp4)
    await store.add_segment(_segment(4, 4000))
    assert await store.last_segments(B, "c", 2) == [fmp4, _segment(4, 4000)]
    assert (await store.last_segments(B, "c", 1))[0].init_key == ""


async def test_add_segment_is_idempotent_but_unique(store: MetadataStore) -> None:
    await store.add_segment(_segment(5, 5000))
    await store.add_segment(_segment(5, 5000))  # a retried write
    with pytest.raises(SegmentConflict):
        await store.add_segment(_segment(5, 6000))  # same seq, another segment
    with pytest.raises(SegmentConflict):
        await store.add_segment(_segment(6, 5000))  # same key, another seq
    clash = dataclasses.replace(_segment(7, 7000), key="other/1.ts")
    await store.add_segment(_segment(0, 1, channel="other"))  # key "other/1.ts"
    with pytest.raises(SegmentConflict):
        await store.add_segment(clash)  # keys are unique per bucket, not per channel
    assert await store.last_segments(B, "c", 10) == [_segment(5, 5000)]


async def test_segments_between_is_inclusive(store: MetadataStore) -> None:
    segs = [_segment(seq, 1000 + 2000 * seq) for seq in range(5)]  # starts 1000..9000
    for s in segs:
        await store.add_segment(s)
    await store.add_segment(_segment(0, 3000, channel="other"))
    assert await store.segments_between(B, "c", 3000, 7000) == segs[1:4]
    assert await store.segments_between(B, "c", 3001, 6999) == segs[2:3]
    assert await store.segments_between(B, "c", 0, 10**13) == segs
    assert await store.segments_between(B, "c", 9001, 10**13) == []
    assert await store.segments_between(B, "c", 5000, 5000) == [segs[2]]
    assert await store.segments_between(B, "c", 7000, 3000) == []


async def test_discontinuities_before(store: MetadataStore) -> None:
    for seq in range(8):
        await store.add_segment(_segment(seq, 1000 * seq, disc=seq in (0, 3, 4, 7)))
    await store.add_segment(_segment(1, 10, channel="other", disc=True))
    counts = [await store.discontinuities_before(B, "c", seq) for seq in range(10)]
    assert counts == [0, 1, 1, 1, 2, 3, 3, 3, 4, 4]
    assert await store.discontinuities_before(B, "nope", 10) == 0


async def test_heartbeat_many(store: MetadataStore) -> None:
    await store.ensure_bucket("live", Acl.PRIVATE, 1)
    for name in ("a", "b", "c"):
        await store.put_channel("live", name, ChannelConfig(), 1)
    a = await store.start_push("live", "a", "1.2.3.4:1", "w", 100)
    b = await store.start_push("live", "b", "1.2.3.4:2", "w", 100)
    c = await store.start_push("live", "c", "1.2.3.4:3", "w", 100)
    await store.end_push(c.push_id, 120)
    await store.set_channel_status("live", "b", ChannelStatus.DISABLED, 130)
    beats = [(a.push_id, '{"n": 1}'), (b.push_id, "{}"), (c.push_id, "{}"), (999, "{}")]
    running = await store.heartbeat_many(beats, 150)
    assert set(running) == {a.push_id, b.push_id}  # ended and unknown pushes are absent
    assert running[a.push_id].heartbeat_ms == 150
    assert running[a.push_id].stats_json == '{"n": 1}'
    assert running[b.push_id].kick and not running[a.push_id].kick
    assert await store.heartbeat_many([], 160) == {}
    # The cheap poll between heartbeats: running and not kicked, nothing written.
    running_now = await store.running_pushes([a.push_id, b.push_id, c.push_id, 999])
    assert running_now == {a.push_id: False, b.push_id: True}  # b was disabled: kick it
    assert await store.running_pushes([]) == {}
    assert (await store.live_push("live", "a")).heartbeat_ms == 150  # type: ignore[union-attr]
