"""The playlist model renders byte-for-byte what RFC 8216 and OSS (OSS API reference,
GetVodPlaylist) expect."""

from __future__ import annotations

import m3u8
import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.hls.playlist import (
    MediaPlaylist,
    PlaylistEntry,
    format_extinf,
    render,
    rounded_s,
    target_duration_s,
    vod_playlist,
    vod_target_duration_s,
)
from tests.support.hls_validator import validate_media_playlist

E = PlaylistEntry

RENDER_TABLE = [
    pytest.param(
        MediaPlaylist(60, 0, 0, (), ended=False),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:60\n#EXT-X-MEDIA-SEQUENCE:0\n",
        id="empty-live",
    ),
    pytest.param(
        MediaPlaylist(
            60,
            7,
            0,
            (E("1543895706266.ts", 7120, False), E("1543895713386.ts", 5000, False)),
            ended=False,
        ),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:60\n#EXT-X-MEDIA-SEQUENCE:7\n"
        "#EXTINF:7.120,\n1543895706266.ts\n#EXTINF:5.000,\n1543895713386.ts\n",
        id="live-window",
    ),
    pytest.param(
        MediaPlaylist(
            60,
            12,
            2,
            (E("a.ts", 999, True), E("b.ts", 60_000, False), E("c.ts", 1, True)),
            ended=True,
        ),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:60\n#EXT-X-MEDIA-SEQUENCE:12\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:2\n"
        "#EXT-X-DISCONTINUITY\n#EXTINF:0.999,\na.ts\n"
        "#EXTINF:60.000,\nb.ts\n"
        "#EXT-X-DISCONTINUITY\n#EXTINF:0.001,\nc.ts\n"
        "#EXT-X-ENDLIST\n",
        id="discontinuities-ended",
    ),
    pytest.param(
        vod_playlist([E("1.ts", 7120, False), E("2.ts", 12_500, False), E("3.ts", 2000, True)]),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:13\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:7.120,\n1.ts\n#EXTINF:12.500,\n2.ts\n"
        "#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n3.ts\n#EXT-X-ENDLIST\n",
        id="vod",
    ),
]


@pytest.mark.parametrize(("playlist", "text"), RENDER_TABLE)
def test_render_table(playlist: MediaPlaylist, text: str) -> None:
    assert render(playlist) == text
    parsed = validate_media_playlist(text)
    assert parsed.target_duration == playlist.target_duration_s
    assert parsed.media_sequence == playlist.media_sequence
    assert (parsed.discontinuity_sequence or 0) == playlist.discontinuity_sequence
    assert parsed.is_endlist == playlist.ended
    assert parsed.playlist_type == ("vod" if playlist.vod else None)
    assert [(s.uri, round(s.duration * 1000), s.discontinuity) for s in parsed.segments] == [
        (e.uri, e.duration_ms, e.discontinuity) for e in playlist.entries
    ]


@pytest.mark.parametrize(
    ("ms", "text", "rounded"),
    [
        (0, "0.000", 0),
        (1, "0.001", 0),
        (499, "0.499", 0),
        (500, "0.500", 1),
        (7120, "7.120", 7),
        (60_499, "60.499", 60),
        (60_500, "60.500", 61),
        (123_456_789, "123456.789", 123457),
    ],
)
def test_extinf_format_and_rounding(ms: int, text: str, rounded: int) -> None:
    assert format_extinf(ms) == text
    assert rounded_s(ms) == rounded


@pytest.mark.parametrize(
    ("frag_s", "max_segment_ms", "target"),
    [
        (5, 60_000, 10),  # default: 2·FragDuration
        (1, 60_000, 2),
        (40, 80_000, 80),
        (100, 200_000, 200),
        (5, 8_000, 8),  # operator lowered the forced-cut bound below 2·FragDuration
        (5, 8_001, 9),  # a partial second rounds the bound up
        (1, 1, 1),
    ],
)
def test_live_target_duration_is_twice_frag_duration_within_the_forced_cut(
    frag_s: int, max_segment_ms: int, target: int
) -> None:
    assert target_duration_s(frag_s, max_segment_ms) == target


def test_vod_target_duration() -> None:
    assert vod_target_duration_s([]) == 1
    assert vod_target_duration_s([E("a.ts", 100, False)]) == 1
    assert vod_target_duration_s([E("a.ts", 4_400, False), E("b.ts", 6_500, False)]) == 7


@pytest.mark.parametrize("uri", ["", "a\nb.ts", "#x.ts", "a\r.ts"])
def test_entry_rejects_unwritable_uri(uri: str) -> None:
    with pytest.raises(ValueError):
        E(uri, 1000, False)


def test_model_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        E("a.ts", -1, False)
    with pytest.raises(ValueError):
        MediaPlaylist(0, 0, 0, (), ended=False)
    with pytest.raises(ValueError):
        MediaPlaylist(1, -1, 0, (), ended=False)


entries = st.lists(
    st.builds(
        E,
        uri=st.from_regex(r"[0-9]{1,13}\.ts", fullmatch=True),
        duration_ms=st.integers(0, 200_000),
        discontinuity=st.booleans(),
    ),
    max_size=20,
)


@given(
    entries=entries,
    media_sequence=st.integers(0, 2**40),
    dseq=st.integers(0, 2**20),
    ended=st.booleans(),
)
def test_rendered_playlists_are_valid_and_round_trip(
    entries: list[PlaylistEntry], media_sequence: int, dseq: int, ended: bool
) -> None:
    target = vod_target_duration_s(entries)
    playlist = MediaPlaylist(target, media_sequence, dseq, tuple(entries), ended=ended)
    text = render(playlist)
    parsed = validate_media_playlist(text)
    assert len(parsed.segments) == len(entries)
    assert [s.uri for s in parsed.segments] == [e.uri for e in entries]
    assert [round(s.duration * 1000) for s in parsed.segments] == [e.duration_ms for e in entries]
    assert m3u8.loads(text).media_sequence == media_sequence


def test_fmp4_entries_get_ext_x_map_where_the_init_section_changes() -> None:
    entries = (
        PlaylistEntry("1.m4s", 2000, False, map_uri="1.mp4"),
        PlaylistEntry("2.m4s", 2000, False, map_uri="1.mp4"),
        PlaylistEntry("3.m4s", 2000, True, map_uri="3.mp4"),
    )
    text = render(MediaPlaylist(4, 0, 0, entries, ended=False))
    assert "#EXT-X-VERSION:7\n" in text
    assert text.count("#EXT-X-MAP") == 2
    assert '#EXT-X-MAP:URI="1.mp4"\n#EXTINF:2.000,\n1.m4s\n#EXTINF:2.000,\n2.m4s\n' in text
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="3.mp4"\n#EXTINF:2.000,\n3.m4s\n' in text
    validate_media_playlist(text)
    ts = render(MediaPlaylist(4, 0, 0, (PlaylistEntry("1.ts", 2000, False),), ended=False))
    assert "#EXT-X-VERSION:3\n" in ts and "MAP" not in ts


def test_the_validator_refuses_maps_it_must() -> None:
    good = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
    body = '#EXT-X-MAP:URI="i.mp4"\n#EXTINF:2.000,\n1.m4s\n'
    validate_media_playlist(good + body)
    for bad in (
        good.replace("VERSION:7", "VERSION:3") + body,  # MAP needs version 6
        good + "#EXTINF:2.000,\n0.m4s\n" + body,  # a segment before the first MAP
        good + body.replace('URI="i.mp4"', "URI=i.mp4"),  # not a quoted-string
    ):
        with pytest.raises(AssertionError):
            validate_media_playlist(bad)
