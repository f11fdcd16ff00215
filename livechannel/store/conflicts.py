"""Errors of the metadata store that are not OSS errors (they never reach an HTTP client)."""

from __future__ import annotations


class SegmentConflict(Exception):
    """`add_segment` got a seq or key the channel already has, for a different segment.

    Re-adding an identical segment (a retried write) is not a conflict. A conflict means two
    writers number one channel's segments, e.g. a worker whose push was closed as stale still
    runs: that writer must stop, so this is not a (retryable) StorageError.
    """
