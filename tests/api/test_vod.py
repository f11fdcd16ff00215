"""GetVodPlaylist and PostVodPlaylist through `oss2`, segments from the index."""

from __future__ import annotations

import m3u8
import oss2
import pytest
from oss2.models import LiveChannelInfo

from livechannel.store.base import Segment
from tests.support.api_service import PRIVATE, Service, sync

T0_S = 1_543_895_700  # a push that started at this Unix time


async def _segments(
    service: Service, channel: str, durations_ms: list[int], *, new_push_at: int | None = None
) -> list[Segment]:
    storage = service.storages[PRIVATE]
    out = []
    start_ms = T0_S * 1000
    for seq, duration_ms in enumerate(durations_ms):
        key = f"{channel}/{start_ms}.ts"
        data = f"segment {seq}".encode()
        await storage.put(key, data, "video/MP2T")
        segment = Segment(
            bucket=PRIVATE, channel=channel, seq=seq, key=key, start_ms=start_ms,
            duration_ms=duration_ms, size=len(data), push_id=1 if seq != new_push_at else 2,
            discontinuity=seq in (0, new_push_at),
        )  # fmt: skip
        await service.store.add_segment(segment)
        out.append(segment)
        start_ms += duration_ms
    return out


async def test_get_vod_playlist(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "cam", LiveChannelInfo())
    segments = await _segments(service, "cam", [7120, 5840, 13320, 6400], new_push_at=2)
    result = await sync(bucket.get_vod_playlist, "cam", T0_S - 1, T0_S + 60)
    assert result.headers["Content-Type"] == "application/x-mpegURL"
    text = result.playlist
    assert text.startswith("#EXTM3U\n") and text.rstrip().endswith("#EXT-X-ENDLIST")
    playlist = m3u8.loads(text)
    assert playlist.is_endlist and playlist.media_sequence == 0
    assert playlist.target_duration == 13
    # Bare names, as the example response in the OSS API reference (GetVodPlaylist) lists.
    assert [s.uri for s in playlist.segments] == [s.key.split("/")[1] for s in segments]
    assert [s.duration for s in playlist.segments] == [7.12, 5.84, 13.32, 6.4]
    assert [s.discontinuity for s in playlist.segments] == [False, False, True, False]
    assert "#EXTINF:7.120," in text
    # The URIs resolve from the channel's directory, where a client saves the body.
    got = await sync(bucket.get_object, "cam/" + playlist.segments[1].uri)
    assert await sync(got.read) == b"segment 1"


async def test_vod_range_selects_by_segment_start(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "cam", LiveChannelInfo())
    await _segments(service, "cam", [10_000] * 6)  # starts at T0, T0+10, ..., T0+50
    result = await sync(bucket.get_vod_playlist, "cam", T0_S + 10, T0_S + 30)
    uris = [s.uri for s in m3u8.loads(result.playlist).segments]
    assert uris == [f"{(T0_S + d) * 1000}.ts" for d in (10, 20, 30)]


async def test_post_vod_playlist_stores_object_next_to_segments(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "cam", LiveChannelInfo())
    segments = await _segments(service, "cam", [5000, 5000, 4000])
    result = await sync(bucket.post_vod_playlist, "cam", "vod.m3u8", T0_S, T0_S + 20)
    assert result.status == 200
    stored = await sync(bucket.get_object, "cam/vod.m3u8")
    assert stored.headers["Content-Type"] == "application/x-mpegURL"
    playlist = m3u8.loads((await sync(stored.read)).decode())
    assert [s.uri for s in playlist.segments] == [s.key.split("/")[1] for s in segments]
    assert playlist.is_endlist


async def test_post_vod_playlist_with_odd_channel_name(service: Service) -> None:
    bucket = service.bucket()
    name = "a+b c"
    await sync(bucket.create_live_channel, name, LiveChannelInfo())
    await _segments(service, name, [5000])
    await sync(bucket.post_vod_playlist, name, "v.m3u8", T0_S, T0_S + 10)
    text = (await sync((await sync(bucket.get_object, f"{name}/v.m3u8")).read)).decode()
    assert f"{T0_S * 1000}.ts" in text.splitlines()
    get = await sync(bucket.get_vod_playlist, name, T0_S, T0_S + 10)
    assert get.playlist == text  # the same body, whether fetched or stored


@pytest.mark.parametrize(
    "start, end",
    [
        (T0_S + 10, T0_S + 10),  # endTime must be greater
        (T0_S + 10, T0_S),
        (T0_S, T0_S + 86_401),  # more than one day
        (T0_S + 1000, T0_S + 2000),  # no segment in range
    ],
)
async def test_vod_invalid_ranges(service: Service, start: int, end: int) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "cam", LiveChannelInfo())
    await _segments(service, "cam", [5000, 5000])
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.get_vod_playlist, "cam", start, end)
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.post_vod_playlist, "cam", "v.m3u8", start, end)
    assert not await sync(bucket.object_exists, "cam/v.m3u8")


async def test_vod_exactly_one_day_is_allowed(service: Service) -> None:
    bucket = service.bucket()
    await sync(bucket.create_live_channel, "cam", LiveChannelInfo())
    await _segments(service, "cam", [5000])
    await sync(bucket.get_vod_playlist, "cam", T0_S, T0_S + 86_400)


async def test_vod_needs_channel_and_m3u8_name(service: Service) -> None:
    bucket = service.bucket()
    with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
        await sync(bucket.get_vod_playlist, "ghost", T0_S, T0_S + 10)
    with pytest.raises(oss2.exceptions.NoSuchLiveChannel):
        await sync(bucket.post_vod_playlist, "ghost", "v.m3u8", T0_S, T0_S + 10)
    await sync(bucket.create_live_channel, "cam", LiveChannelInfo())
    await _segments(service, "cam", [5000])
    for name in ("v.txt", "v.m3u", "sub/v.m3u8"):
        with pytest.raises(oss2.exceptions.InvalidArgument):
            await sync(bucket.post_vod_playlist, "cam", name, T0_S, T0_S + 10)
