"""The playlist validator itself: it must accept good playlists and name each broken rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.hls.playlist import MediaPlaylist, PlaylistEntry, render
from tests.support.hls_validator import (
    PlaylistHistory,
    assert_segments_exist,
    validate_media_playlist,
)

GOOD = (
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:3\n"
    "#EXTINF:9.900,\n1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:10.499,\n2.ts\n#EXT-X-ENDLIST\n"
)


def test_accepts_a_good_playlist() -> None:
    parsed = validate_media_playlist(GOOD)
    assert [s.uri for s in parsed.segments] == ["1.ts", "2.ts"]
    assert parsed.segments[1].discontinuity


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "#EXTM3U"),
        ("\n" + GOOD, "#EXTM3U"),
        (GOOD.replace("#EXT-X-VERSION:3\n", ""), "VERSION is missing"),
        (GOOD.replace("#EXT-X-VERSION:3", "#EXT-X-VERSION:2"), "VERSION >= 3"),
        (GOOD.replace("#EXT-X-TARGETDURATION:10\n", ""), "TARGETDURATION is missing"),
        (GOOD.replace("TARGETDURATION:10", "TARGETDURATION:9.5"), "decimal integer"),
        (GOOD.replace("10.499", "10.500"), "exceeds TARGETDURATION"),
        (GOOD.replace("#EXT-X-MEDIA-SEQUENCE:3\n", ""), "MEDIA-SEQUENCE is missing"),
        (
            GOOD.replace("#EXT-X-MEDIA-SEQUENCE:3\n", "").replace(
                "1.ts\n", "1.ts\n#EXT-X-MEDIA-SEQUENCE:3\n"
            ),
            "before the first segment",
        ),
        (GOOD.replace("1.ts\n", "1.ts\n#EXT-X-VERSION:3\n"), "appears 2 times"),
        (GOOD.replace("#EXT-X-ENDLIST\n", "#EXT-X-ENDLIST\n#EXTINF:1.000,\n3.ts\n"), "last"),
        (GOOD.replace("\n2.ts\n", "\n\n"), "no URI"),
        (GOOD.replace("\n1.ts\n", "\n\n"), "twice"),
        (GOOD.replace("#EXTINF:9.900,\n", ""), "URI without #EXTINF"),
        (GOOD.replace("#EXTINF:9.900,", "#EXTINF:abc,"), "#EXTINF:<duration>"),
        (GOOD.replace("#EXTINF:9.900,", "#EXTINF:9.900"), "#EXTINF:<duration>"),
        (GOOD.replace("#EXT-X-ENDLIST\n", "#EXT-X-DISCONTINUITY\n"), "no URI"),
        (GOOD.replace("#EXT-X-DISCONTINUITY\n", "#EXT-X-DISCONTINUITY\n" * 2), "twice"),
        (GOOD.replace("\n2.ts", "\n 2.ts"), "blanks"),
        (GOOD.replace("#EXT-X-ENDLIST", "#EXT-X-BOGUS"), "unexpected tag"),
        (
            GOOD.replace(
                "#EXT-X-MEDIA-SEQUENCE:3", "#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-PLAYLIST-TYPE:VOD"
            ).replace("#EXT-X-ENDLIST\n", ""),
            "VOD playlist must end",
        ),
    ],
)
def test_names_the_broken_rule(text: str, complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        validate_media_playlist(text)


def test_segments_exist() -> None:
    parsed = validate_media_playlist(GOOD)
    assert_segments_exist(parsed, {"1.ts", "2.ts"}.__contains__)
    assert_segments_exist(GOOD, lambda uri: True)
    with pytest.raises(AssertionError, match=r"\['2.ts'\]"):
        assert_segments_exist(GOOD, {"1.ts"}.__contains__)


def _live(seq: int, dseq: int, entries: list[tuple[str, bool]], target: int = 60) -> str:
    return render(
        MediaPlaylist(
            target,
            seq,
            dseq,
            tuple(PlaylistEntry(uri, 2000, disc) for uri, disc in entries),
            ended=False,
        )
    )


def test_history_accepts_a_sliding_window_with_discontinuities_scrolling_out() -> None:
    history = PlaylistHistory()
    history.add(_live(0, 0, [("a", False), ("b", True), ("c", False)]))
    history.add(_live(1, 0, [("b", True), ("c", False), ("d", True)]))
    history.add(_live(2, 1, [("c", False), ("d", True), ("e", False)]))
    history.add(_live(2, 1, [("c", False), ("d", True), ("e", False)]))  # refetch, unchanged
    history.add(_live(5, 2, [("f", False), ("g", False)]))  # some segments never seen
    assert len(history.fetches) == 5


@pytest.mark.parametrize(
    ("second", "complaint"),
    [
        (_live(0, 0, [("a", False)], target=61), "TARGETDURATION changed"),
        (_live(0, 0, [("a", False), ("b", True)]), "MEDIA-SEQUENCE went back"),
        (_live(1, 0, [("b", True)]), "DISCONTINUITY-SEQUENCE went back"),
        (_live(2, 1, [("x", False)]), "was c, now x"),
        (_live(3, 1, [("c", False)]), "was #2, now #3"),
        # b scrolled out with its discontinuity, but DISCONTINUITY-SEQUENCE did not count it
        (_live(2, 0, [("c", False)]), "went back|discontinuity sequence number changed"),
        (_live(2, 1, [("c", True)]), "DISCONTINUITY tag changed"),
        (_live(2, 2, [("c", True)]), "DISCONTINUITY tag changed"),
        (
            _live(2, 1, [("c", False)]).replace("#EXTINF:2.000", "#EXTINF:3.000"),
            "duration changed",
        ),
    ],
)
def test_history_rejects_illegal_updates(second: str, complaint: str) -> None:
    history = PlaylistHistory()
    history.add(_live(1, 1, [("b", True), ("c", False)]))
    with pytest.raises(AssertionError, match=complaint):
        history.add(second)


def test_history_catches_uncounted_scrolled_discontinuity() -> None:
    history = PlaylistHistory()
    history.add(_live(0, 0, [("a", True), ("b", False)]))
    with pytest.raises(AssertionError, match="discontinuity sequence number changed"):
        history.add(_live(1, 0, [("b", False)]))  # a's discontinuity vanished uncounted
    history = PlaylistHistory()
    history.add(_live(0, 0, [("a", True), ("b", False)]))
    history.add(_live(1, 1, [("b", False)]))


@given(flags=st.lists(st.booleans(), min_size=1, max_size=40), window=st.integers(1, 6))
def test_history_accepts_any_correct_sliding_window(flags: list[bool], window: int) -> None:
    """A window that slides one segment at a time and counts the discontinuities it drops
    is exactly what RFC 8216 6.2.2 allows; the history must accept every step."""
    history = PlaylistHistory()
    for end in range(1, len(flags) + 1):
        start = max(0, end - window)
        listed = [(f"{i}.ts", flags[i]) for i in range(start, end)]
        history.add(_live(start, sum(flags[:start]), listed))
    assert history.fetches[-1].media_sequence == max(0, len(flags) - window)
