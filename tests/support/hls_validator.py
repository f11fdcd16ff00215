"""RFC 8216 checks for the media playlists we serve, for unit and end-to-end tests.

`validate_media_playlist` checks one playlist text; `PlaylistHistory` checks successive
fetches of one live playlist against each other (RFC 8216 6.2.1/6.2.2 rules on how a live
playlist may change); `assert_segments_exist` checks that every listed segment is stored.
Failures raise AssertionError whose message names the rule and the offending line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import m3u8

# Tags that describe the whole playlist and must come before the first segment (RFC 8216 4.3.3).
HEADER_TAGS = (
    "#EXT-X-VERSION",
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-DISCONTINUITY-SEQUENCE",
    "#EXT-X-PLAYLIST-TYPE",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    # LL-HLS (RFC 8216bis 4.4.3.7, 4.4.3.8; EXT-X-SKIP stands where the skipped segments
    # were, before every listed one): the rules on them are in ll_hls_validator.py.
    "#EXT-X-SERVER-CONTROL",
    "#EXT-X-PART-INF",
    "#EXT-X-SKIP",
)
# Tags that apply to the next segment URI (RFC 8216 4.3.2).
SEGMENT_TAGS = ("#EXTINF", "#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME", "#EXT-X-BYTERANGE")
_EXTINF = re.compile(r"#EXTINF:(\d+(?:\.\d+)?),.*")
_UNSIGNED = re.compile(r"\d+")
# Float EXTINF durations need version 3 (RFC 8216 7).
MIN_VERSION_FOR_FLOAT_EXTINF = 3
# EXT-X-MAP in a playlist without EXT-X-I-FRAMES-ONLY needs version 6 (RFC 8216bis 7).
MIN_VERSION_FOR_MAP = 6
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"\r\n]+)"(?:,BYTERANGE="\d+(?:@\d+)?")?')


def _rounded_s(extinf: str) -> int:
    """Nearest integer, halves up: the strictest reading of RFC 8216 4.3.3.1."""
    whole, _, frac = extinf.partition(".")
    frac_ms = int((frac + "000")[:3]) if frac else 0
    return (int(whole) * 1000 + frac_ms + 500) // 1000


def _tag(line: str) -> str:
    return line.split(":", 1)[0]


def _single_value(lines: list[str], tag: str, required: bool) -> str | None:
    found = [line for line in lines if _tag(line) == tag]
    assert len(found) <= 1, f"{tag} appears {len(found)} times; at most once (RFC 8216 4.3.3)"
    assert found or not required, f"{tag} is missing"
    if not found:
        return None
    _, sep, value = found[0].partition(":")
    assert sep and value, f"{found[0]!r}: {tag} needs a value"
    return value


def validate_media_playlist(text: str) -> m3u8.M3U8:
    """Check one media playlist; return it parsed by the `m3u8` package."""
    assert isinstance(text, str), f"playlist must be text, got {type(text).__name__}"
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    assert lines and lines[0] == "#EXTM3U", (
        f"first line must be #EXTM3U (RFC 8216 4.3.1.1), got {lines[:1]!r}"
    )

    version = _single_value(lines, "#EXT-X-VERSION", required=True)
    assert version is not None and _UNSIGNED.fullmatch(version), f"bad VERSION {version!r}"
    target = _single_value(lines, "#EXT-X-TARGETDURATION", required=True)
    assert target is not None and _UNSIGNED.fullmatch(target), (
        f"TARGETDURATION must be a decimal integer (RFC 8216 4.3.3.1), got {target!r}"
    )
    target_s = int(target)
    sequence = _single_value(lines, "#EXT-X-MEDIA-SEQUENCE", required=True)
    assert sequence is not None and _UNSIGNED.fullmatch(sequence), (
        f"bad MEDIA-SEQUENCE {sequence!r}"
    )
    dseq = _single_value(lines, "#EXT-X-DISCONTINUITY-SEQUENCE", required=False)
    assert dseq is None or _UNSIGNED.fullmatch(dseq), f"bad DISCONTINUITY-SEQUENCE {dseq!r}"
    ptype = _single_value(lines, "#EXT-X-PLAYLIST-TYPE", required=False)
    assert ptype in (None, "VOD", "EVENT"), f"bad PLAYLIST-TYPE {ptype!r}"

    seen_segment = False
    pending: list[str] = []  # segment tags waiting for their URI
    uris = 0
    map_uri = ""  # the EXT-X-MAP in effect (RFC 8216bis 4.4.4.5)
    segments_without_map = 0
    for number, line in enumerate(lines[1:], start=2):
        where = f"line {number} {line!r}"
        if not line:
            continue
        if line == "#EXT-X-ENDLIST":
            assert all(not rest for rest in lines[number:]), f"{where}: ENDLIST must be last"
            assert not pending, f"{where}: segment tags {pending} have no URI"
            continue
        if not line.startswith("#"):
            assert line.strip() == line, f"{where}: URI has surrounding blanks"
            assert "#EXTINF" in pending, f"{where}: URI without #EXTINF (RFC 8216 4.3.2.1)"
            pending, seen_segment, uris = [], True, uris + 1
            segments_without_map += not map_uri
            continue
        if line.startswith("#EXT-X-MAP:"):
            match = _MAP.fullmatch(line)
            assert match, f'{where}: EXT-X-MAP must be #EXT-X-MAP:URI="<uri>" (RFC 8216bis 4.4.4.5)'
            assert int(version) >= MIN_VERSION_FOR_MAP, (
                f"{where}: EXT-X-MAP needs VERSION >= 6 (RFC 8216bis 7)"
            )
            assert "#EXT-X-MAP" not in pending, f"{where}: two EXT-X-MAP for one segment"
            map_uri = match.group(1)
            pending.append("#EXT-X-MAP")
            continue
        if line.startswith("#EXT-X-PART:"):  # one per part, before its segment's EXTINF
            pending.append("#EXT-X-PART")
            continue
        if line.startswith("#EXT-X-PRELOAD-HINT:"):  # playlist-wide: ll_hls_validator.py
            continue
        tag = _tag(line)
        if tag in HEADER_TAGS:
            assert not seen_segment and not pending, (
                f"{where}: {tag} must come before the first segment (RFC 8216 4.3.3)"
            )
        elif tag in SEGMENT_TAGS:
            assert tag not in pending, f"{where}: {tag} twice for one segment"
            if tag == "#EXTINF":
                match = _EXTINF.fullmatch(line)
                assert match, f"{where}: EXTINF must be '#EXTINF:<duration>,[title]'"
                if "." in match.group(1):
                    assert int(version) >= MIN_VERSION_FOR_FLOAT_EXTINF, (
                        f"{where}: float durations need VERSION >= 3 (RFC 8216 7)"
                    )
                assert _rounded_s(match.group(1)) <= target_s, (
                    f"{where}: rounded EXTINF exceeds TARGETDURATION {target_s} (RFC 8216 4.3.3.1)"
                )
            pending.append(tag)
        elif tag.startswith("#EXT"):
            raise AssertionError(f"{where}: unexpected tag {tag}")
    # Only the segment in progress of an LL-HLS playlist may end it: its parts, no EXTINF.
    open_segment = "#EXT-X-PART" in pending and "#EXTINF" not in pending
    assert not pending or open_segment, f"segment tags {pending} at the end have no URI"
    # fMP4 segments all need an init section: one EXT-X-MAP, or none at all (MPEG-TS).
    assert not map_uri or segments_without_map == 0, (
        f"{segments_without_map} segments come before the first EXT-X-MAP (RFC 8216bis 4.4.4.5)"
    )
    if ptype == "VOD":
        assert "#EXT-X-ENDLIST" in lines, "a VOD playlist must end with #EXT-X-ENDLIST"

    try:
        parsed = m3u8.loads(text)
    except Exception as e:  # the package raises bare ValueError and friends
        raise AssertionError(f"m3u8 cannot parse the playlist: {e!r}") from e
    listed = [s for s in parsed.segments if s.uri]  # m3u8 puts trailing parts in a URI-less one
    assert len(listed) == uris, f"m3u8 saw {len(listed)} segments, not {uris}"
    assert parsed.target_duration == target_s and parsed.media_sequence == int(sequence)
    return parsed


def assert_segments_exist(playlist: m3u8.M3U8 | str, exists: Callable[[str], bool]) -> None:
    """Every segment URI the playlist names must exist (`exists` gets the URI as written)."""
    parsed = validate_media_playlist(playlist) if isinstance(playlist, str) else playlist
    missing = [s.uri for s in parsed.segments if not exists(s.uri)]
    assert not missing, f"playlist names segments that do not exist: {missing}"


def _map_of(segment: m3u8.Segment) -> str:
    init = getattr(segment, "init_section", None)
    return str(init.uri) if init is not None else ""


@dataclass
class _Known:
    uri: str
    duration: float
    discontinuity: bool
    discontinuity_number: int  # RFC 8216 6.2.2: a segment's discontinuity sequence number
    map_uri: str  # its EXT-X-MAP ("" without): a segment keeps its init section


@dataclass
class PlaylistHistory:
    """Successive fetches of one live playlist; `add` asserts each is a legal update.

    RFC 8216 6.2.1/6.2.2: TARGETDURATION never changes; MEDIA-SEQUENCE and
    DISCONTINUITY-SEQUENCE never decrease; a segment URI keeps its media sequence number,
    duration and tags, and a number never names another URI; a segment keeps its
    discontinuity sequence number (DISCONTINUITY-SEQUENCE + the DISCONTINUITY tags up to and
    including it) as discontinuities scroll out.
    """

    fetches: list[m3u8.M3U8] = field(default_factory=list)
    _by_seq: dict[int, _Known] = field(default_factory=dict)
    _seq_by_uri: dict[str, int] = field(default_factory=dict)

    def add(self, text: str) -> m3u8.M3U8:
        parsed = validate_media_playlist(text)
        n = len(self.fetches) + 1
        if self.fetches:
            prev = self.fetches[-1]
            assert parsed.target_duration == prev.target_duration, (
                f"fetch {n}: TARGETDURATION changed {prev.target_duration} → "
                f"{parsed.target_duration} (RFC 8216 6.2.1)"
            )
            assert parsed.media_sequence >= prev.media_sequence, (
                f"fetch {n}: MEDIA-SEQUENCE went back {prev.media_sequence} → "
                f"{parsed.media_sequence}"
            )
            assert (parsed.discontinuity_sequence or 0) >= (prev.discontinuity_sequence or 0), (
                f"fetch {n}: DISCONTINUITY-SEQUENCE went back"
            )
        dnum = parsed.discontinuity_sequence or 0
        # An LL-HLS playlist's trailing parts (the segment in progress) have no URI yet.
        for index, segment in enumerate(s for s in parsed.segments if s.uri):
            seq = parsed.media_sequence + index
            dnum += 1 if segment.discontinuity else 0
            known = self._by_seq.get(seq)
            if known is None:
                assert segment.uri not in self._seq_by_uri, (
                    f"fetch {n}: {segment.uri} was #{self._seq_by_uri[segment.uri]}, now #{seq}"
                )
                self._by_seq[seq] = _Known(
                    segment.uri, segment.duration, segment.discontinuity, dnum, _map_of(segment)
                )
                self._seq_by_uri[segment.uri] = seq
                continue
            assert known.uri == segment.uri, (
                f"fetch {n}: sequence #{seq} was {known.uri}, now {segment.uri}"
            )
            assert known.duration == segment.duration, (
                f"fetch {n}: {segment.uri} duration changed {known.duration} → {segment.duration}"
            )
            assert known.discontinuity == segment.discontinuity, (
                f"fetch {n}: {segment.uri} DISCONTINUITY tag changed (RFC 8216 6.2.1)"
            )
            assert known.map_uri == _map_of(segment), (
                f"fetch {n}: {segment.uri} init section changed {known.map_uri} → "
                f"{_map_of(segment)} (RFC 8216bis 6.2.1)"
            )
            assert known.discontinuity_number == dnum, (
                f"fetch {n}: {segment.uri} discontinuity sequence number changed "
                f"{known.discontinuity_number} → {dnum} (RFC 8216 6.2.2)"
            )
        self.fetches.append(parsed)
        return parsed
