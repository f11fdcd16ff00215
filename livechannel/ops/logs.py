"""Log formats: text (the default) and JSON, one record per line, secrets redacted in both.

A log line must say what happened, never what an attacker wants it to say. Channel names,
stream names and request paths come from clients before any authentication, and a `%0A` in
one of them decodes to a newline: written raw, it forges a whole log line. So the text format
escapes every control character in the message and its fields (a newline reads `\\n`); the
JSON format escapes them by construction (one `json.dumps` per record). Tracebacks keep
their newlines: they are our own text, and indented below their record.

Fields: a record may carry the context of a connection or a push as `extra=` (see FIELDS);
the text format shows them as a `[conn 3 peer bucket/channel]` prefix and `key=value`
pairs, the JSON format as keys of the object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from livechannel.config import LOG_FORMATS as FORMATS
from livechannel.ops.redact import redact

# Context a record may carry (`log.info(..., extra={...})`); JSON keys, in this order.
FIELDS = ("conn", "peer", "bucket", "channel", "push_id", "reason", "request_id", "status")
# The text prefix shows these; the others follow the message as key=value.
_PREFIX_FIELDS = frozenset({"conn", "peer", "bucket", "channel"})

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators some log viewers
# break lines at. Backslash too, so an escaped sequence cannot be faked by a literal one.
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """`text` on one line: every control character as a visible escape."""
    return text.translate(_ESCAPES)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = record.__dict__.get(name)
        if value is not None and value != "":
            out[name] = value
    return out


def _clean(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [conn N peer bucket/channel] message key=value`, on one line; a
    traceback follows on lines that all start with whitespace, so no line of it (an
    exception's message may quote a client) can pass for a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        parts = []
        if "conn" in fields or "channel" in fields or "peer" in fields:
            where = (
                f"{fields.get('bucket', '')}/{fields['channel']}" if "channel" in fields else "-"
            )
            conn = f"conn {fields['conn']} " if "conn" in fields else ""
            parts.append(f"[{conn}{fields.get('peer', '-')} {where}]")
        event = record.getMessage()
        parts.append(event)
        # A field the message already says (a refusal's reason) is not repeated.
        parts += [
            f"{k}={v}" for k, v in fields.items() if k not in _PREFIX_FIELDS and str(v) not in event
        ]
        message = escape_controls(redact(" ".join(str(p) for p in parts)))
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {message}"
        trace = ""
        if record.exc_info and record.exc_info[1] is not None:
            trace = self.formatException(record.exc_info)
        elif record.exc_text:
            trace = record.exc_text
        if record.stack_info:
            trace = f"{trace}\n{self.formatStack(record.stack_info)}".strip("\n")
        if trace:
            lines = redact(trace).splitlines()
            line += "".join("\n  " + escape_controls(t) for t in lines)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, the record's fields, and
    `exception` (the traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z"
        out: dict[str, Any] = {
            "time": stamp,
            "level": record.levelname,
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        out.update((k, _clean(v)) for k, v in _fields(record).items())
        if record.exc_info and record.exc_info[1] is not None:
            out["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = redact(record.exc_text)
        # ensure_ascii: every control and non-ASCII character escaped, one line whatever
        # a client put in a name.
        return json.dumps(out, ensure_ascii=True, default=str)


def make_formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        return JsonFormatter()
    if kind == "text":
        return TextFormatter()
    raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, got {kind!r}")


def configure(level: str, kind: str, stream: IO[str] | None = None) -> None:
    """The root logger writes `kind` records at `level` and up to `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(kind))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
