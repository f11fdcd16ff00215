"""The two date formats of the API. Sans-IO: times come in as integer milliseconds/seconds.

* XML bodies: exactly `YYYY-MM-DDTHH:MM:SS.000Z` (`oss2` parses it with a fixed pattern).
* HTTP headers: RFC 1123 GMT, `Sun, 22 Nov 2015 08:16:38 GMT`; OSS API reference, signature
  in the header, requires the day to have two digits, so "2 Jun 1982" and "2-Jun-82" are refused.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HTTP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT"
)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, tz=UTC)


def iso8601_ms(ms: int) -> str:
    t = _utc(ms)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.000Z"


def http_date(ms: int) -> str:
    t = _utc(ms)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch, or None when `text` is not a valid RFC 1123 GMT date."""
    m = _HTTP_DATE.fullmatch(text.strip())
    if m is None:
        return None
    day, month, year, hour, minute, second = m.groups()
    fields = (int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute), int(second))
    if not (1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        return None
    try:
        if fields[2] > calendar.monthrange(fields[0], fields[1])[1]:
            return None
    except ValueError:
        return None
    return calendar.timegm((*fields, 0, 0, 0))
