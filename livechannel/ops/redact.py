"""Keeping secrets out of the logs, and malformed HTTP down to one line each.

aiohttp logs a request it cannot parse as an ERROR with a traceback whose message quotes the
offending bytes: the request line (which may carry `Signature=`), or a header line (which may
be `Authorization: OSS id:signature`). A public port gets such requests all day, so its log
records go through `HttpServerLogFilter`: one INFO line naming the peer and what was wrong,
with any signature redacted, and no traceback.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"
# `Signature=...` (URL-signed requests, RTMP publish URLs) and `OSS id:signature` headers;
# percent-encoded or not, up to the next delimiter.
_SECRETS = re.compile(
    r"(?P<key>(?:Signature|SecurityToken|x-oss-security-token)(?:=|%3D))[^&\s'\"]*"
    r"|(?P<auth>OSS\s+[^:\s'\"]+:)[^\s'\"]+",
    re.IGNORECASE,
)
MAX_REASON_CHARS = 200  # the parser's message quotes the bad line; keep a log line short


def redact(text: str) -> str:
    """`text` with every signature or security token value replaced by REDACTED."""
    return _SECRETS.sub(lambda m: (m.group("key") or m.group("auth")) + REDACTED, text)


class HttpServerLogFilter(logging.Filter):
    """For aiohttp's server logger: malformed requests become one redacted INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            reason = " ".join(str(error).split())[:MAX_REASON_CHARS]
            what = redact(record.getMessage())
            record.msg = "%s; connection closed: %s: %s"
            record.args = (what, type(error).__name__, redact(reason))
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.INFO:
                record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def http_server_logger() -> logging.Logger:
    """The logger to hand aiohttp's server (`AppRunner(logger=...)`)."""
    logger = logging.getLogger("livechannel.http")
    if not any(isinstance(f, HttpServerLogFilter) for f in logger.filters):
        logger.addFilter(HttpServerLogFilter())
    return logger
