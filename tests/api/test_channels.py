"""Every LiveChannel operation through the unmodified `oss2` SDK (OSS API
reference, LiveChannel)."""

from __future__ import annotations

import json

import oss2
import pytest

from livechannel.store.base import ChannelConfig
from tests.support.api_service import PRIVATE, Service, info, sync


async def test_create_with_sdk_defaults(service: Service) -> None:
    bucket = service.bucket()
    result = await sync(bucket.create_live_channel, "cam1", info())
    port = service.port
    assert result.publish_url == f"rtmp://127.0.0.1/{PRIVATE}/live/cam1"
    assert result.play_url == f"http://127.0.0.1:{port}/{PRIVATE}/cam1/playlist.m3u8"
    got = await sync(bucket.get_live_channel, "cam1")
    assert (got.status, got.description) == ("enabled", "")
    t = got.target
    assert (t.type, t.frag_duration, t.frag_count, t.playlist_name) == (
        "HLS", "5", "3", "playlist.m3u8",
    )  # fmt: skip


async def test_create_with_explicit_values(service: Service) -> None:
    bucket = service.bucket()
    config = info(
        description="lobby camera ✓", status="disabled", frag_duration=2, frag_count=7,
        playlist_name="index.m3u8",
    )  # fmt: skip
    result = await sync(bucket.create_live_channel, "lobby", config)
    assert result.play_url.endswith("/lobby/index.m3u8")
    got = await sync(bucket.get_live_channel, "lobby")
    assert (got.status, got.description) == ("disabled", "lobby camera ✓")
    assert (got.target.frag_duration, got.target.frag_count) == ("2", "7")
    assert got.target.playlist_name == "index.m3u8"


async def test_recreate_replaces_configuration(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "c", info(frag_count=3))
    await sync(bucket.create_live_channel, "c", info(frag_count=9, description="v2"))
    got = await sync(bucket.get_live_channel, "c")
    assert (got.target.frag_count, got.description) == ("9", "v2")


@pytest.mark.parametrize(
    "target",
    [
        {"frag_duration": 0},
        {"frag_duration": 101},
        {"frag_count": 0},
        {"frag_count": 101},
        {"frag_duration": "5.0"},
        {"playlist_name": "x.m3u"},
        {"playlist_name": "a.m3u8"},  # 6 chars is the minimum: "a.m3u8" is exactly 6 -> ok?
        {"playlist_name": "p" * 124 + ".m3u8"},
        {"playlist_name": "dir/x.m3u8"},
        {"type": "DASH"},
        {"description": "x" * 129},
        {"description": "é" * 65},  # 130 bytes in UTF-8
        {"status": "paused"},
    ],
)
async def test_invalid_configuration_is_refused_and_nothing_applied(
    service: Service, target: dict[str, object]
) -> None:
    bucket = service.bucket()
    if target.get("playlist_name") == "a.m3u8":
        # Boundary: 6 characters is allowed (OSS API reference, PutLiveChannel [6, 128]).
        await sync(bucket.create_live_channel, "edge", info(**target))
        return
    await sync(bucket.create_live_channel, "keep", info(description="original"))
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.create_live_channel, "keep", info(**target))
    got = await sync(bucket.get_live_channel, "keep")
    assert got.description == "original"
    assert got.target.frag_count == "3"


@pytest.mark.parametrize("name", ["a/b", "/lead", "\\lead", "x" * 1024, "ctl\x01"])
async def test_invalid_channel_name(service: Service, name: str) -> None:
    with pytest.raises(oss2.exceptions.InvalidObjectName):
        await sync(service.bucket().create_live_channel, name, info())


async def test_unicode_and_plus_in_channel_name(service: Service) -> None:
    bucket = service.bucket()
    name = "直播 a+b%41"
    await sync(bucket.create_live_channel, name, info())
    got = await sync(bucket.get_live_channel, name)
    assert got.target.playlist_name == "playlist.m3u8"
    listed = await sync(bucket.list_live_channel)
    assert [c.name for c in listed.channels] == [name]


async def test_missing_channel_errors(service: Service) -> None:
    bucket = service.bucket()
    for op in (
        bucket.get_live_channel,
        bucket.get_live_channel_stat,
        bucket.get_live_channel_history,
        bucket.delete_live_channel,
    ):
        with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
            await sync(op, "ghost")
    with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
        await sync(bucket.put_live_channel_status, "ghost", "disabled")


async def test_status_switch_and_stat_idle_disabled(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "s", info())
    stat = await sync(bucket.get_live_channel_stat, "s")
    assert stat.status == "Idle"
    assert stat.video is None and stat.audio is None
    await sync(bucket.put_live_channel_status, "s", "disabled")
    assert service.disabled == [(PRIVATE, "s")]
    assert (await sync(bucket.get_live_channel, "s")).status == "disabled"
    assert (await sync(bucket.get_live_channel_stat, "s")).status == "Disabled"
    await sync(bucket.put_live_channel_status, "s", "enabled")
    assert service.disabled == [(PRIVATE, "s")]  # enabling kicks nobody
    assert (await sync(bucket.get_live_channel_stat, "s")).status == "Idle"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.put_live_channel_status, "s", "paused")


STATS = {
    "video": {"width": 1280, "height": 536, "frame_rate": 24, "bandwidth": 151000,
              "codec": "H264"},
    "audio": {"sample_rate": 44100, "bandwidth": 16000, "codec": "AAC"},
    "health": {"frames": 10},
}  # fmt: skip


async def _go_live(service: Service, channel: str, stats: object) -> int:
    push = await service.store.start_push(
        PRIVATE, channel, "10.1.2.3:47745", "w1", 1_472_106_315_000
    )
    await service.store.heartbeat(push.push_id, 1_472_106_316_000, json.dumps(stats))
    return push.push_id


async def test_stat_live_with_video_and_audio(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "live1", info())
    await _go_live(service, "live1", STATS)
    stat = await sync(bucket.get_live_channel_stat, "live1")
    assert stat.status == "Live"
    assert stat.remote_addr == "10.1.2.3:47745"
    assert stat.connected_time == 1_472_106_315
    v, a = stat.video, stat.audio
    assert (v.width, v.height, v.frame_rate, v.bandwidth, v.codec) == (
        1280,
        536,
        24,
        151000,
        "H264",
    )
    assert (a.sample_rate, a.bandwidth, a.codec) == (44100, 16000, "AAC")


@pytest.mark.parametrize(
    "stats, has_video, has_audio",
    [
        ({"video": None, "audio": None}, False, False),
        ({"video": STATS["video"], "audio": None}, True, False),
        ({"video": None, "audio": STATS["audio"]}, False, True),
        ({"video": {"width": 1}, "audio": STATS["audio"]}, False, True),  # partial: left out
        ("not an object", False, False),
        ({}, False, False),
    ],
)
async def test_stat_live_never_sends_empty_containers(
    service: Service, stats: object, has_video: bool, has_audio: bool
) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "c", info())
    await _go_live(service, "c", stats)
    stat = await sync(bucket.get_live_channel_stat, "c")
    assert stat.status == "Live"
    assert (stat.video is not None, stat.audio is not None) == (has_video, has_audio)


async def test_disabled_while_live_reports_disabled(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "c", info())
    await _go_live(service, "c", STATS)
    await sync(bucket.put_live_channel_status, "c", "disabled")
    assert (await sync(bucket.get_live_channel_stat, "c")).status == "Disabled"
    assert service.disabled == [(PRIVATE, "c")]


async def test_delete_and_recreate_refused_while_live(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "c", info())
    push_id = await _go_live(service, "c", STATS)
    with pytest.raises(oss2.exceptions.ChannelStillLive):
        await sync(bucket.delete_live_channel, "c")
    with pytest.raises(oss2.exceptions.ChannelStillLive):
        await sync(bucket.create_live_channel, "c", info(frag_count=5))
    assert (await sync(bucket.get_live_channel, "c")).target.frag_count == "3"
    await service.store.end_push(push_id, 1_472_106_400_000)
    await sync(bucket.delete_live_channel, "c")
    with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
        await sync(bucket.get_live_channel, "c")


async def test_delete_keeps_objects(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "c", info())
    await service.storages[PRIVATE].put("c/1.ts", b"segment", "video/MP2T")
    result = await sync(bucket.delete_live_channel, "c")
    assert result.status == 204
    assert await sync(bucket.object_exists, "c/1.ts")


async def test_history_at_most_ten_oldest_first(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "h", info())
    assert (await sync(bucket.get_live_channel_history, "h")).records == []
    base_ms = 1_469_843_601_000
    for i in range(12):
        push = await service.store.start_push(
            PRIVATE, "h", f"10.0.0.{i}:5000", "w", base_ms + i * 20_000
        )
        await service.store.end_push(push.push_id, base_ms + i * 20_000 + 10_000)
    records = (await sync(bucket.get_live_channel_history, "h")).records
    assert len(records) == 10
    assert [r.remote_addr for r in records] == [f"10.0.0.{i}:5000" for i in range(2, 12)]
    assert records[0].start_time == (base_ms + 2 * 20_000) // 1000
    assert records[0].end_time == (base_ms + 2 * 20_000 + 10_000) // 1000


async def test_list_pages_with_markers_and_iterator(service: Service) -> None:
    bucket = service.bucket()
    names = [*sorted(f"ch-{i:03d}" for i in range(130)), "other"]
    for name in names:
        await service.store.put_channel(PRIVATE, name, ChannelConfig(), service.clock())
    first = await sync(bucket.list_live_channel)
    assert first.max_keys == 100 and first.is_truncated
    assert [c.name for c in first.channels] == names[:100]
    assert first.next_marker == names[99]
    second = await sync(bucket.list_live_channel, "", first.next_marker, 100)
    assert [c.name for c in second.channels] == names[100:]
    assert not second.is_truncated
    channel = second.channels[0]
    assert channel.publish_url == f"rtmp://127.0.0.1/{PRIVATE}/live/{channel.name}"
    assert channel.play_url.endswith(f"/{PRIVATE}/{channel.name}/playlist.m3u8")
    assert channel.status == "enabled" and channel.last_modified > 1_600_000_000
    iterated = await sync(lambda: [c.name for c in oss2.LiveChannelIterator(bucket, max_keys=7)])
    assert iterated == names
    prefixed = await sync(
        lambda: [c.name for c in oss2.LiveChannelIterator(bucket, prefix="ch-12")]
    )
    assert prefixed == [f"ch-12{i}" for i in range(10)]


async def test_list_max_keys_limits(service: Service) -> None:
    bucket = service.bucket()
    for bad in (0, 1001):
        with pytest.raises(oss2.exceptions.InvalidArgument):
            await sync(bucket.list_live_channel, "", "", bad)
    assert (await sync(bucket.list_live_channel, "", "", 1000)).channels == []


async def test_unknown_bucket(service: Service) -> None:
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        await sync(service.bucket("nobucket").list_live_channel)
