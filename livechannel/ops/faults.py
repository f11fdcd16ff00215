"""A fault that repeats (a full metadata disk, a store that went away) is logged once with its
traceback, then once more when it clears: a loop retrying every 250 ms must not write a
traceback every time, burying everything else in the log."""

from __future__ import annotations

import logging


class RepeatedFault:
    """Tracks one retried operation: `failed()` on each failure, `succeeded()` on success."""

    __slots__ = ("_failures", "_log", "_what")

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._failures = 0

    def failed(self, detail: str = "") -> None:
        """Call from an `except` block: the first failure is logged with the traceback, the
        following ones at DEBUG only."""
        self._failures += 1
        if self._failures == 1:
            self._log.exception("%s failed%s; retrying (logged once until it recovers)",
                                self._what, f" {detail}" if detail else "")  # fmt: skip
        else:
            self._log.debug("%s failed again (%d in a row)", self._what, self._failures)

    def succeeded(self) -> None:
        if self._failures:
            self._log.warning("%s recovered after %d failures", self._what, self._failures)
            self._failures = 0
