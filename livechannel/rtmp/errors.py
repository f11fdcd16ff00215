"""RTMP error kinds, shaped like h11's: the peer broke the protocol, or we misused the API.

Every decoder in `rtmp/` raises only these (never IndexError, struct.error, UnicodeError…),
so the asyncio edge needs exactly one `except RtmpError` around the core.
"""

from __future__ import annotations


class RtmpError(Exception):
    """Base of everything the RTMP core raises."""


class ProtocolError(RtmpError):
    """The remote peer sent something we cannot accept; the edge should close the TCP
    connection (after flushing `data_to_send()`)."""


class AmfDecodeError(ProtocolError):
    """Malformed or unsupported AMF0 bytes from the peer."""


class MessageTooLarge(ProtocolError):
    """A message, a partial-message backlog or a pre-accept media backlog exceeds a limit
    in `RtmpLimits`."""


class LocalProtocolError(RtmpError):
    """Our own caller misused the API (wrong state, unencodable value, undrained events)."""
