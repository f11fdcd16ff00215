"""RFC 8216bis low-latency checks on top of `hls_validator.validate_media_playlist`, for the
playlists we serve: the LL tags' syntax and the rules that tie them together, what a
blocking reload must answer, and how a delta update relates to the full playlist.

Failures raise AssertionError naming the rule and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from tests.support.hls_validator import validate_media_playlist

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\r\n]*)(?:,|$)')
_DECIMAL = re.compile(r"\d+(?:\.\d+)?")
MIN_VERSION_FOR_SKIP = 9  # RFC 8216bis 7: EXT-X-SKIP


def attributes(line: str) -> dict[str, str]:
    """An attribute-list (RFC 8216bis 4.2), every attribute once, quotes kept."""
    body = line.split(":", 1)[1]
    found: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        match = _ATTRIBUTE.match(body, pos)
        assert match, f"{line!r}: malformed attribute list at {body[pos:]!r} (RFC 8216bis 4.2)"
        name, value = match.groups()
        assert name not in found, f"{line!r}: attribute {name} twice (RFC 8216bis 4.2)"
        found[name] = value
        pos = match.end()
    return found


def _seconds(value: str, what: str) -> float:
    assert _DECIMAL.fullmatch(value), f"{what}: {value!r} is not a decimal-floating-point"
    return float(value)


def _quoted(value: str, what: str) -> str:
    assert len(value) >= 2 and value[0] == value[-1] == '"', f"{what} must be a quoted-string"
    return value[1:-1]


@dataclass
class LlSegment:
    uri: str | None  # None: the segment in progress
    duration_s: float | None
    parts: list[tuple[str, float, bool]] = field(default_factory=list)  # uri, duration, indep.


@dataclass
class LlPlaylist:
    version: int
    target_s: int
    media_sequence: int
    part_target_s: float
    part_hold_back_s: float
    can_skip_until_s: float | None
    skipped: int
    segments: list[LlSegment]  # complete ones, then the one in progress if it has parts
    preload_part: str | None

    @property
    def complete(self) -> list[LlSegment]:
        return [s for s in self.segments if s.uri is not None]

    def last_msn(self) -> int:
        return self.media_sequence + self.skipped + len(self.complete) - 1

    def parts_of(self, msn: int) -> list[tuple[str, float, bool]] | None:
        index = msn - self.media_sequence - self.skipped
        return self.segments[index].parts if 0 <= index < len(self.segments) else None


def validate_ll_playlist(text: str, *, live: bool = True) -> LlPlaylist:
    """Check an LL-HLS media playlist (RFC 8216bis 4.4.3.7-8, 4.4.4.9, 4.4.5.3, 6.2.5).
    `live`: the push is running, so the next part must be hinted."""
    validate_media_playlist(text)
    lines = [line for line in text.split("\n") if line]
    version = int(next(x for x in lines if x.startswith("#EXT-X-VERSION:")).split(":")[1])
    target_s = int(next(x for x in lines if x.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    sequence = int(next(x for x in lines if x.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
    controls = [x for x in lines if x.startswith("#EXT-X-SERVER-CONTROL:")]
    infos = [x for x in lines if x.startswith("#EXT-X-PART-INF:")]
    assert len(controls) == 1, "an LL-HLS playlist has one EXT-X-SERVER-CONTROL"
    assert len(infos) == 1, "EXT-X-PART-INF is required with EXT-X-PART (RFC 8216bis 4.4.3.7)"
    control = attributes(controls[0])
    assert control.get("CAN-BLOCK-RELOAD") == "YES", "blocking reloads: CAN-BLOCK-RELOAD=YES"
    part_target_s = _seconds(attributes(infos[0]).get("PART-TARGET", ""), "PART-TARGET")
    hold_back_s = _seconds(control.get("PART-HOLD-BACK", ""), "PART-HOLD-BACK")
    assert hold_back_s >= 2 * part_target_s, (
        "PART-HOLD-BACK must be at least twice PART-TARGET (RFC 8216bis 4.4.3.8)"
    )
    skip_until_s = None
    if "CAN-SKIP-UNTIL" in control:
        skip_until_s = _seconds(control["CAN-SKIP-UNTIL"], "CAN-SKIP-UNTIL")
        assert skip_until_s >= 6 * target_s, (
            "CAN-SKIP-UNTIL must be at least six target durations (RFC 8216bis 4.4.3.8)"
        )
    skipped = 0
    skips = [x for x in lines if x.startswith("#EXT-X-SKIP:")]
    if skips:
        assert skip_until_s is not None, "EXT-X-SKIP without CAN-SKIP-UNTIL (RFC 8216bis 4.4.5.2)"
        assert version >= MIN_VERSION_FOR_SKIP, "EXT-X-SKIP needs VERSION >= 9"
        skipped = int(attributes(skips[0])["SKIPPED-SEGMENTS"])
        assert skipped > 0, "EXT-X-SKIP skips at least one segment"

    segments: list[LlSegment] = []
    current = LlSegment(None, None)
    preload: str | None = None
    last_pdt: datetime | None = None
    for number, line in enumerate(lines, start=1):
        where = f"line {number} {line!r}"
        if line.startswith("#EXT-X-PART:"):
            assert preload is None, f"{where}: parts after the preload hint"
            part = attributes(line)
            duration_s = _seconds(part.get("DURATION", ""), f"{where} DURATION")
            assert duration_s <= part_target_s + 1e-9, (
                f"{where}: a part is longer than PART-TARGET (RFC 8216bis 4.4.4.9)"
            )
            independent = part.get("INDEPENDENT", "NO")
            assert independent in ("YES", "NO"), f"{where}: INDEPENDENT is YES or absent"
            current.parts.append((_quoted(part.get("URI", ""), f"{where} URI"), duration_s,
                                  independent == "YES"))  # fmt: skip
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            assert preload is None, f"{where}: one preload hint of TYPE=PART at most"
            hint = attributes(line)
            assert hint.get("TYPE") == "PART", f"{where}: we hint parts only"
            preload = _quoted(hint.get("URI", ""), f"{where} URI")
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            stamp = line.split(":", 1)[1]
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            assert moment.tzinfo is not None, f"{where}: a date-time needs its offset"
            assert last_pdt is None or moment > last_pdt, f"{where}: dates go back"
            last_pdt = moment
        elif line.startswith("#EXTINF:"):
            current.duration_s = float(line.split(":", 1)[1].split(",")[0])
        elif not line.startswith("#"):
            assert preload is None, f"{where}: segments after the preload hint"
            current.uri = line
            if current.parts:
                total = sum(p[1] for p in current.parts)
                assert current.duration_s is not None
                assert abs(total - current.duration_s) < 0.0015, (
                    f"{where}: its parts last {total:.3f} s, the segment {current.duration_s}"
                    " (a segment is its parts, RFC 8216bis 4.4.4.9)"
                )
            segments.append(current)
            current = LlSegment(None, None)
    if current.parts:
        segments.append(current)
    if live:
        assert preload is not None, "a live LL playlist hints its next part (RFC 8216bis 4.4.5.3)"
    part_uris = [p[0] for s in segments for p in s.parts]
    assert len(part_uris) == len(set(part_uris)), "a part URI is listed twice"
    assert preload not in part_uris, "the preload hint names a part already listed"
    # Parts are kept for the last three target durations at most (RFC 8216bis 4.4.4.9 SHOULD).
    complete = [s for s in segments if s.uri is not None]
    from_end_s = 0.0
    for segment in reversed(complete):
        if from_end_s > 3 * target_s:
            assert not segment.parts, f"{segment.uri}: parts listed beyond three targets"
        from_end_s += segment.duration_s or 0
    return LlPlaylist(version, target_s, sequence, part_target_s, hold_back_s, skip_until_s,
                      skipped, segments, preload)  # fmt: skip


def assert_answers_blocking_reload(playlist: LlPlaylist, msn: int, part: int | None) -> None:
    """RFC 8216bis 6.2.5.2: the answer to `_HLS_msn=msn[&_HLS_part=part]` contains segment
    msn (with part `part`), or something later."""
    if msn <= playlist.last_msn():
        return
    parts = playlist.parts_of(msn)
    assert part is not None and parts is not None and len(parts) > part, (
        f"asked for segment {msn} part {part}; the answer ends at segment "
        f"{playlist.last_msn()} with {len(parts or [])} parts of {msn}"
    )


def next_request(playlist: LlPlaylist) -> tuple[int, int]:
    """What an LL-HLS client asks for next: the part after the last one listed."""
    last = playlist.segments[-1]
    msn = playlist.media_sequence + playlist.skipped + len(playlist.segments) - 1
    if last.uri is None:
        return msn, len(last.parts)
    return msn + 1, 0


def assert_delta_matches(delta: LlPlaylist, full: LlPlaylist) -> None:
    """A delta update (RFC 8216bis 6.2.5.1) is the full playlist with its oldest segments
    replaced by EXT-X-SKIP: same sequence numbers, same remaining segments."""
    assert delta.skipped > 0, "no segment was skipped"
    assert delta.media_sequence == full.media_sequence
    assert [s.uri for s in full.complete[delta.skipped :]] == [s.uri for s in delta.complete]
    kept_s = sum(s.duration_s or 0 for s in delta.complete)
    assert delta.can_skip_until_s is not None and kept_s >= delta.can_skip_until_s - 1e-6, (
        "skipped segments must be older than CAN-SKIP-UNTIL from the end (RFC 8216bis 4.4.5.2)"
    )
