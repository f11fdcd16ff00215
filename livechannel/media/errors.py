"""The one error type of the media layer.

Every decoder in `media/` raises `MediaError` (or a subclass) on any malformed input, never a
bare IndexError/ValueError: the ingest edge catches it and drops that one publisher.
"""

from __future__ import annotations


class MediaError(Exception):
    """Malformed or truncated media data from the publisher (remote misbehaviour)."""
