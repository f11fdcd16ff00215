"""Admission of TCP connections on both listening ports: a cap in total and per remote address.

One gate per process counts every connection on the RTMP port and on the HTTP port (which
also carries RTMP), so a flood on either port cannot starve the other of file descriptors.
Pure bookkeeping: the edges call `admit` when a connection arrives and `release` when it
ends, and close the socket themselves when `admit` refuses.
"""

from __future__ import annotations

from collections import Counter


class ConnectionGate:
    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def admit(self, ip: str) -> str | None:
        """Count the connection and return None, or return why it is refused (not counted)."""
        if self.total >= self.max_total:
            return f"too many connections ({self.max_total})"
        if self.per_ip[ip] >= self.max_per_ip:
            return f"too many connections from {ip} ({self.max_per_ip})"
        self.total += 1
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]
