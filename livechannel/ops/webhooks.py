"""Webhooks: the operator's backend asked before a publish starts, and told what happened.

Every request is a POST of one JSON object to the bucket's configured URL (webhook_config):

    {"event": "on_segment", "id": "<uuid4>", "timestamp_ms": 1765100000000,
     "node": "<node>/<worker>", "bucket": "live", "channel": "cam", ...the event's fields}

with headers (docs/operations.md has a receiver that verifies them):

    Content-Type: application/json
    X-Livechannel-Event: on_segment
    X-Livechannel-Delivery: <the same id: retries repeat it, so a receiver can drop duplicates>
    X-Livechannel-Timestamp: <the same timestamp_ms: a receiver may refuse old requests>
    X-Livechannel-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by secret>

- `on_publish` is asked after our own signature and channel checks, before the channel is
  claimed: a 2xx answer allows the publish; anything else, or no answer within timeout_s,
  refuses it, and the publisher reads the hook's reason (`{"reason": "..."}` in a JSON
  answer, else the answer's text) in its onStatus description.
- Notifications (`on_publish_done`, `on_segment`, `on_playlist`, `on_snapshot`,
  `on_stream_health`) never wait on the receiver: they go into one bounded queue per process
  (Limits.max_webhook_queue_events), sent by SENDERS tasks; a failed request is retried with capped
  exponential backoff for retry_for_s, then dropped. Drops (queue full, or retries spent) are
  counted in livechannel_webhook_requests_total{result="dropped"} and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from livechannel.ops import metrics
from livechannel.ops.logs import escape_controls
from livechannel.ops.webhook_config import ON_PUBLISH, WebhookConfig

log = logging.getLogger("livechannel.ops.webhooks")

HEADER_EVENT = "X-Livechannel-Event"
HEADER_ID = "X-Livechannel-Delivery"
HEADER_TIMESTAMP = "X-Livechannel-Timestamp"
HEADER_SIGNATURE = "X-Livechannel-Signature"
SENDERS = 4  # notifications in flight at once per process: one slow receiver blocks no other
RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 8.0
MAX_REASON_CHARS = 200  # of a denying hook's reason, shown to the publisher and logged
MAX_ANSWER_BYTES = 4096  # read of a hook's answer body: a reason, not a document
DRAIN_ON_CLOSE_S = 2.0  # at shutdown, the queued notifications (on_publish_done) get this
DROP_LOG_INTERVAL_S = 10.0  # drops are logged at most this often (with the count since)
# URL parameters never sent to a hook: credentials of the publish URL itself.
SECRET_PARAMS = frozenset({"Signature", "SecurityToken", "x-oss-security-token"})


def signature(secret: str, body: bytes) -> str:
    """The X-Livechannel-Signature value of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class _Pending:
    hook: WebhookConfig
    event: str
    body: bytes
    delivery: str
    timestamp_ms: int
    first_try: float  # monotonic


def _reason(status: int, answer: bytes) -> str:
    text = answer.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("reason") or "")
    text = escape_controls(" ".join(text.split()))[:MAX_REASON_CHARS]
    return text or f"HTTP {status}"


class Webhooks:
    """One per process: the hooks of every bucket that has one, and the notification queue."""

    def __init__(self, hooks: Mapping[str, WebhookConfig], node: str, max_queue: int) -> None:
        self.hooks = dict(hooks)
        self.node = node
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(max_queue)
        self._senders: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._dropped_since_log = 0
        self._last_drop_log = 0.0

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def wants(self, bucket: str, event: str) -> bool:
        hook = self.hooks.get(bucket)
        return hook is not None and event in hook.events

    async def start(self) -> None:
        if not self.hooks:
            return
        # No cookies, no environment proxies: a hook is the configured URL, nothing else.
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self._senders = [
            asyncio.create_task(self._send_loop(), name=f"webhook sender {i}")
            for i in range(SENDERS)
        ]

    async def close(self) -> None:
        if self._session is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_ON_CLOSE_S):
                await self._queue.join()
        for task in self._senders:
            task.cancel()
        for task in self._senders:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._session.close()
        if self._queue.qsize():
            self._drop(self._queue.qsize(), "service stopping")

    def _pending(self, hook: WebhookConfig, event: str, fields: Mapping[str, Any]) -> _Pending:
        delivery, now_ms = str(uuid.uuid4()), time.time_ns() // 1_000_000
        document = {"event": event, "id": delivery, "timestamp_ms": now_ms, "node": self.node,
                    **fields}  # fmt: skip
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        return _Pending(hook, event, body, delivery, now_ms, time.monotonic())

    async def _post(self, item: _Pending) -> tuple[int, bytes]:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json",
            HEADER_EVENT: item.event,
            HEADER_ID: item.delivery,
            HEADER_TIMESTAMP: str(item.timestamp_ms),
            HEADER_SIGNATURE: signature(item.hook.secret, item.body),
        }
        timeout = aiohttp.ClientTimeout(total=item.hook.timeout_s)
        async with self._session.post(
            item.hook.url, data=item.body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            return response.status, await response.content.read(MAX_ANSWER_BYTES)

    # --- on_publish -------------------------------------------------------------------------

    async def ask_publish(
        self, bucket: str, channel: str, peer: str, params: Mapping[str, str]
    ) -> str | None:
        """None when the hook allows the publish, else the refusal's description."""
        hook = self.hooks.get(bucket)
        if hook is None or ON_PUBLISH not in hook.events or self._session is None:
            return None
        shown = {k: v for k, v in params.items() if k not in SECRET_PARAMS}
        item = self._pending(hook, ON_PUBLISH, {"bucket": bucket, "channel": channel,
                                                "client_addr": peer, "params": shown})  # fmt: skip
        try:
            status, answer = await self._post(item)
        except TimeoutError:
            metrics.WEBHOOKS.labels(ON_PUBLISH, "failed").inc()
            return f"publish hook did not answer within {hook.timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as e:
            metrics.WEBHOOKS.labels(ON_PUBLISH, "failed").inc()
            log.warning("publish hook %s failed: %s", hook.url, e,
                        extra={"bucket": bucket, "channel": channel, "peer": peer})  # fmt: skip
            return "publish hook unreachable"
        if 200 <= status < 300:
            metrics.WEBHOOKS.labels(ON_PUBLISH, "allowed").inc()
            return None
        metrics.WEBHOOKS.labels(ON_PUBLISH, "denied").inc()
        return _reason(status, answer)

    # --- notifications ----------------------------------------------------------------------

    def notify(self, bucket: str, event: str, fields: Mapping[str, Any]) -> None:
        """Queue `event` for the bucket's hook, if it wants it; never waits."""
        hook = self.hooks.get(bucket)
        if hook is None or event not in hook.events or self._session is None:
            return
        item = self._pending(hook, event, {"bucket": bucket, **fields})
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            metrics.WEBHOOKS.labels(event, "dropped").inc()
            self._drop(1, "the queue is full")

    def notifier(self, bucket: str, channel: str) -> Callable[[str, Mapping[str, Any]], None]:
        """`notify` bound to one channel (what a push's pipeline holds)."""
        if bucket not in self.hooks:
            return _ignore

        def notify(event: str, fields: Mapping[str, Any]) -> None:
            self.notify(bucket, event, {"channel": channel, **fields})

        return notify

    def _drop(self, count: int, why: str) -> None:
        self._dropped_since_log += count
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            log.warning("webhook notifications dropped: %d (%s)", self._dropped_since_log, why,
                        extra={"reason": why})  # fmt: skip
            self._dropped_since_log, self._last_drop_log = 0, now

    async def _send_loop(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._deliver(item)
            finally:
                self._queue.task_done()

    async def _deliver(self, item: _Pending) -> None:
        delay_s = RETRY_FIRST_DELAY_S
        while True:
            try:
                status, _ = await self._post(item)
                if 200 <= status < 300:
                    metrics.WEBHOOKS.labels(item.event, "delivered").inc()
                    return
                failure = f"HTTP {status}"
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                failure = f"{type(e).__name__}: {e}"
            metrics.WEBHOOKS.labels(item.event, "failed").inc()
            if time.monotonic() + delay_s - item.first_try > item.hook.retry_for_s:
                metrics.WEBHOOKS.labels(item.event, "dropped").inc()
                self._drop(1, f"{item.event} to {item.hook.url}: {failure}, retried "
                           f"{item.hook.retry_for_s:g} s")  # fmt: skip
                return
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_DELAY_S)


def _ignore(event: str, fields: Mapping[str, Any]) -> None:
    """The notifier of a bucket without hooks."""
