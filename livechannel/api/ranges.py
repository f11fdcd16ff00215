"""GetObject's Range and conditional headers (OSS API reference, GetObject, HeadObject; RFC 9110
13, 14). Sans-IO.

OSS API reference, GetObject: a Range that does not follow the syntax is ignored and the whole
object is sent (200, no Content-Range); a well-formed range that starts at or past the end is 416
InvalidRange. Multiple ranges are not supported by OSS and are ignored the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from livechannel.api.dates import parse_http_date
from livechannel.errors import InvalidRange, PreconditionFailed

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_RANGE_DIGITS = 20  # anything longer is past any object size (2**64 has 20 digits)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to send, None for the whole object; InvalidRange when unsatisfiable."""
    if header is None:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None:
        return None
    first, last = m.groups()
    if len(first) > MAX_RANGE_DIGITS or len(last) > MAX_RANGE_DIGITS or (not first and not last):
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return ByteRange(max(size - suffix, 0), size)
    start = int(first)
    if last and int(last) < start:
        return None  # "bytes=9-1" is not a valid range spec: send everything
    if start >= size:
        raise _unsatisfiable(header, size)
    end = size if not last else min(int(last) + 1, size)
    return ByteRange(start, end)


def _unsatisfiable(header: str, size: int) -> InvalidRange:
    return InvalidRange(
        "The requested range cannot be satisfied",
        RangeRequested=header,
        ActualObjectSize=str(size),
    )


class Precondition(Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not-modified"  # 304


def _etags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]


def _matches(header: str, etag: str) -> bool:
    tags = _etags(header)
    return "*" in tags or etag.strip('"') in tags


def evaluate_preconditions(
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    if_unmodified_since: str | None,
    etag: str,
    last_modified_ms: int,
) -> Precondition:
    """RFC 9110 13.2.2 order; PreconditionFailed (412) or a 304 decision.

    OSS API reference, GetObject: an If-Modified-Since that is not a valid date is ignored
    (200). HTTP dates have one-second resolution, so the object's time is compared in whole seconds.
    """
    modified_s = last_modified_ms // 1000
    if if_match is not None:
        if not _matches(if_match, etag):
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
    elif if_unmodified_since is not None:
        since_s = parse_http_date(if_unmodified_since)
        if since_s is not None and modified_s > since_s:
            raise PreconditionFailed(
                "At least one of the pre-conditions you specified did not hold"
            )
    if if_none_match is not None:
        if _matches(if_none_match, etag):
            return Precondition.NOT_MODIFIED
    elif if_modified_since is not None:
        since_s = parse_http_date(if_modified_since)
        if since_s is not None and modified_s <= since_s:
            return Precondition.NOT_MODIFIED
    return Precondition.PROCEED
