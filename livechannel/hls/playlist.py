"""A typed HLS media playlist (RFC 8216) and its rendering, tags in the RFC's order.

TARGETDURATION rule (decided by the team):

* A live playlist's EXT-X-TARGETDURATION is ``2·FragDuration`` (capped by the forced-cut
  bound, should a caller pass one below that; the service's never is). Segments are cut at
  the first keyframe after FragDuration, so a segment is at most FragDuration + one GOP
  long: every encoder whose keyframe interval is ≤ FragDuration — and every one up to
  2·FragDuration, OBS's default of 8.3 s at FragDuration 5 included — fits, and the target
  never changes (RFC 8216 6.2.1) while every rounded EXTINF stays ≤ it (4.3.3.1).
* Only a publisher whose keyframes are further apart than 2·FragDuration (or never come: the
  forced cut at ``max(2·FragDuration, 60 s)``, OSS API reference, PutLiveChannel) makes a
  longer segment. Then the live window raises TARGETDURATION to cover it (and logs why)
  rather than list an EXTINF above the target; it never lowers it again while the service runs.
* Why not the forced-cut bound (60) for everyone: players pace playlist reloads by the target
  (RFC 8216 6.3.4: half of it when a reload brings nothing new — ffmpeg then sits 30 s at the
  live edge) and start 3 targets from the end, so a target far above the real segment length
  stalls healthy streams to cover broken ones.
* A VOD playlist lists segments that already exist, so its target is simply the largest
  rounded EXTINF (at least 1): see `vod_target_duration_s`.

fMP4 segments (RFC 8216bis §3.1.2) name their init section with EXT-X-MAP (§4.4.4.5): the
tag is written before the first segment and again wherever the init section changes; such a
playlist is version 7 (EXT-X-MAP in a media playlist without I-FRAMES-ONLY needs version 6
(§7), and 7 is what the fMP4 authoring guidance and current players expect).

Low-latency playlists (RFC 8216bis 4.4.4.9, 4.4.5.3, 4.4.3.7-8, 6.2.5) add, when
`part_target_ms` is set: EXT-X-SERVER-CONTROL (CAN-BLOCK-RELOAD=YES, PART-HOLD-BACK of three
part targets, CAN-SKIP-UNTIL when the window is long enough to skip), EXT-X-PART-INF, the
EXT-X-PART lines of recent segments before their EXTINF, the parts of the segment in
progress after the last segment, and an EXT-X-PRELOAD-HINT for the next part. A delta update
replaces the oldest segments by EXT-X-SKIP (version 9, as the RFC asks for EXT-X-SKIP);
segments carry EXT-X-PROGRAM-DATE-TIME (the wall clock their first frame arrived).

Durations are integer milliseconds until rendered: EXTINF is ``ms / 1000`` with exactly three
decimals (``7.120``), as OSS writes them (OSS API reference, GetVodPlaylist). Rounding to
the nearest integer is half up, the conservative reading of RFC 8216 4.3.3.1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# Float EXTINF values need protocol version 3 (RFC 8216 7); nothing TS needs more, and
# older players accept it.
PLAYLIST_VERSION = 3
FMP4_PLAYLIST_VERSION = 7  # EXT-X-MAP (see the module doc)
LL_PLAYLIST_VERSION = 9  # EXT-X-SKIP needs 9 (RFC 8216bis 7); LL playlists always say 9
PART_HOLD_BACK_PARTS = 3  # RFC 8216bis 4.4.3.8: PART-HOLD-BACK at least 3 part targets


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One EXT-X-PART (RFC 8216bis 4.4.4.9)."""

    uri: str
    duration_ms: int
    independent: bool  # starts with a keyframe


@dataclass(frozen=True, slots=True)
class PlaylistEntry:
    uri: str  # relative to the playlist (it sits next to its segments)
    duration_ms: int
    discontinuity: bool  # EXT-X-DISCONTINUITY before this segment
    map_uri: str = ""  # fMP4: the init section's URI (EXT-X-MAP); "" for MPEG-TS
    parts: tuple[PartEntry, ...] = ()  # LL-HLS: its parts, while it is near the live edge
    program_date_ms: int | None = None  # EXT-X-PROGRAM-DATE-TIME, Unix ms

    def __post_init__(self) -> None:
        if not self.uri or any(c in self.uri for c in "\r\n") or self.uri.startswith("#"):
            raise ValueError(f"segment URI {self.uri!r} cannot be written on one playlist line")
        if any(c in self.map_uri for c in '\r\n"'):
            raise ValueError(f"init section URI {self.map_uri!r} cannot be a quoted-string")
        if self.duration_ms < 0:
            raise ValueError(f"negative segment duration {self.duration_ms} ms")


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration_s: int
    media_sequence: int  # sequence number of the first entry
    discontinuity_sequence: int  # discontinuities that scrolled out before the first entry
    entries: tuple[PlaylistEntry, ...]
    ended: bool  # #EXT-X-ENDLIST: no segment will be added
    vod: bool = False  # #EXT-X-PLAYLIST-TYPE:VOD
    # LL-HLS (0: classic): the part target, the segment in progress, the next part's URI.
    part_target_ms: int = 0
    open_parts: tuple[PartEntry, ...] = ()
    open_map_uri: str = ""  # the init section of the segment in progress
    open_discontinuity: bool = False
    open_program_date_ms: int | None = None
    preload_uri: str = ""
    can_skip_until_ms: int = 0  # 0: delta updates not offered
    skipped: int = 0  # segments before `entries` replaced by EXT-X-SKIP

    def __post_init__(self) -> None:
        if self.target_duration_s < 1:
            raise ValueError(f"TARGETDURATION must be at least 1, got {self.target_duration_s}")
        if self.media_sequence < 0 or self.discontinuity_sequence < 0:
            raise ValueError("sequence numbers are unsigned (RFC 8216 4.3.3.2, 4.3.3.3)")
        # EXTINF ≤ TARGETDURATION is the producers' duty (segmenter, VOD target), not
        # checked here: a live window may list segments cut under an older configuration,
        # and refusing to render would stop the channel instead of serving a usable playlist.


def rounded_s(duration_ms: int) -> int:
    """Seconds rounded to the nearest integer, halves up (RFC 8216 4.3.3.1's comparison)."""
    return (duration_ms + 500) // 1000


def format_extinf(duration_ms: int) -> str:
    """``7120`` → ``"7.120"``: exact decimal from integer ms, no float round-off."""
    return f"{duration_ms // 1000}.{duration_ms % 1000:03d}"


def forced_cut_bound_s(max_segment_ms: int) -> int:
    """The longest a segment can round to: the forced cut, in whole seconds (rounded up)."""
    if max_segment_ms < 1:
        raise ValueError("the forced-cut bound must be positive")
    return max(1, -(-max_segment_ms // 1000))


def target_duration_s(frag_duration_s: int, max_segment_ms: int) -> int:
    """A live playlist's TARGETDURATION: 2·FragDuration, capped by the forced-cut bound (see
    the module doc)."""
    if frag_duration_s < 1:
        raise ValueError("FragDuration must be positive")
    return min(2 * frag_duration_s, forced_cut_bound_s(max_segment_ms))


def vod_target_duration_s(entries: Iterable[PlaylistEntry]) -> int:
    """A VOD playlist's TARGETDURATION: its largest rounded EXTINF, at least 1."""
    return max((rounded_s(e.duration_ms) for e in entries), default=1) or 1


def vod_playlist(entries: Iterable[PlaylistEntry], media_sequence: int = 0) -> MediaPlaylist:
    """A finished playlist of already-stored segments (GetVodPlaylist / PostVodPlaylist)."""
    listed = tuple(entries)
    return MediaPlaylist(
        target_duration_s=vod_target_duration_s(listed),
        media_sequence=media_sequence,
        discontinuity_sequence=0,
        entries=listed,
        ended=True,
        vod=True,
    )


def program_date_time(unix_ms: int) -> str:
    """ISO 8601 with milliseconds, UTC (RFC 8216bis 4.4.4.6)."""
    moment = datetime.fromtimestamp(unix_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{unix_ms % 1000:03d}Z"


def _part_line(part: PartEntry) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={format_extinf(part.duration_ms)},URI="{part.uri}"{independent}'


def render(p: MediaPlaylist) -> str:
    """The playlist text: header tags first (RFC 8216 4.3.3 before any segment), then each
    segment's tags followed by its URI, then #EXT-X-ENDLIST. Lines end in LF."""
    fmp4 = any(entry.map_uri for entry in p.entries) or bool(p.open_map_uri)
    version = FMP4_PLAYLIST_VERSION if fmp4 else PLAYLIST_VERSION
    if p.part_target_ms:
        version = LL_PLAYLIST_VERSION
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{p.target_duration_s}",
    ]
    if p.part_target_ms:
        control = "CAN-BLOCK-RELOAD=YES"
        if p.can_skip_until_ms:
            control += f",CAN-SKIP-UNTIL={format_extinf(p.can_skip_until_ms)}"
        hold_back_ms = PART_HOLD_BACK_PARTS * p.part_target_ms
        control += f",PART-HOLD-BACK={format_extinf(hold_back_ms)}"
        lines.append(f"#EXT-X-SERVER-CONTROL:{control}")
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={format_extinf(p.part_target_ms)}")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{p.media_sequence}")
    if p.discontinuity_sequence > 0:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{p.discontinuity_sequence}")
    if p.vod:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    if p.skipped:
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={p.skipped}")
    current_map = ""
    for entry in p.entries:
        if entry.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if entry.map_uri and entry.map_uri != current_map:
            lines.append(f'#EXT-X-MAP:URI="{entry.map_uri}"')
            current_map = entry.map_uri
        if entry.program_date_ms is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(entry.program_date_ms)}")
        lines.extend(_part_line(part) for part in entry.parts)
        lines.append(f"#EXTINF:{format_extinf(entry.duration_ms)},")
        lines.append(entry.uri)
    if p.open_parts:  # the segment in progress: its tags, then the parts it has so far
        if p.open_discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if p.open_map_uri and p.open_map_uri != current_map:
            lines.append(f'#EXT-X-MAP:URI="{p.open_map_uri}"')
        if p.open_program_date_ms is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(p.open_program_date_ms)}")
        lines.extend(_part_line(part) for part in p.open_parts)
    if p.preload_uri:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{p.preload_uri}"')
    if p.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
