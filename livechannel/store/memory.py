"""An in-memory MetadataStore with the SQLite store's behaviour, for unit tests of the core.

One process only: it has no way to share "one running push per channel" across processes.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Collection, Sequence

from livechannel.errors import (
    LiveChannelDisabled,
    no_bucket,
    no_channel,
    still_live,
)
from livechannel.store.base import (
    Acl,
    Bucket,
    Channel,
    ChannelConfig,
    ChannelStatus,
    Push,
    Segment,
)
from livechannel.store.conflicts import SegmentConflict

INITIAL_STATS_JSON = "{}"  # a push's figures before its first heartbeat: valid, empty JSON


class MemoryStore:
    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._channels: dict[tuple[str, str], Channel] = {}
        self._pushes: dict[int, Push] = {}  # insertion order = push_id order
        self._live: dict[tuple[str, str], int] = {}  # (bucket, channel) -> running push_id
        self._next_push_id = 1
        # per channel: segments by seq, plus a sorted seq list for ranges
        self._segments: dict[tuple[str, str], dict[int, Segment]] = {}
        self._seqs: dict[tuple[str, str], list[int]] = {}
        self._segment_keys: dict[tuple[str, str], Segment] = {}  # (bucket, key) -> segment
        # seqs of deleted segments that carried a discontinuity (see delete_segments)
        self._removed_discontinuities: dict[tuple[str, str], set[int]] = {}

    @classmethod
    async def open(cls) -> MemoryStore:
        return cls()

    # --- buckets ------------------------------------------------------------------------
    async def ensure_bucket(self, name: str, acl: Acl, now_ms: int) -> Bucket:
        return self._buckets.setdefault(name, Bucket(name=name, acl=acl, created_ms=now_ms))

    async def get_bucket(self, name: str) -> Bucket | None:
        return self._buckets.get(name)

    async def list_buckets(self) -> list[Bucket]:
        return [self._buckets[name] for name in sorted(self._buckets)]

    async def set_bucket_acl(self, name: str, acl: Acl) -> None:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise no_bucket(name)
        self._buckets[name] = dataclasses.replace(bucket, acl=acl)

    # --- channels -----------------------------------------------------------------------
    async def put_channel(
        self, bucket: str, name: str, config: ChannelConfig, now_ms: int
    ) -> Channel:
        if bucket not in self._buckets:
            raise no_bucket(bucket)
        if (bucket, name) in self._live:
            raise still_live(name)
        channel = Channel(bucket=bucket, name=name, config=config, last_modified_ms=now_ms)
        self._channels[(bucket, name)] = channel
        return channel

    async def get_channel(self, bucket: str, name: str) -> Channel | None:
        return self._channels.get((bucket, name))

    async def list_channels(
        self, bucket: str, prefix: str, marker: str, limit: int
    ) -> list[Channel]:
        if bucket not in self._buckets:
            raise no_bucket(bucket)
        names = sorted(
            name
            for (b, name) in self._channels
            if b == bucket and name.startswith(prefix) and name > marker
        )
        return [self._channels[(bucket, name)] for name in names[: max(limit, 0)]]

    async def set_channel_status(
        self, bucket: str, name: str, status: ChannelStatus, now_ms: int
    ) -> None:
        channel = self._channel(bucket, name)
        config = dataclasses.replace(channel.config, status=status)
        self._channels[(bucket, name)] = dataclasses.replace(
            channel, config=config, last_modified_ms=now_ms
        )
        push_id = self._live.get((bucket, name))
        if status is ChannelStatus.DISABLED and push_id is not None:
            self._pushes[push_id] = dataclasses.replace(self._pushes[push_id], kick=True)

    async def delete_channel(self, bucket: str, name: str) -> None:
        self._channel(bucket, name)
        if (bucket, name) in self._live:
            raise still_live(name)
        del self._channels[(bucket, name)]
        # its history goes with it (a re-created channel starts afresh); segments stay
        for push in list(self._pushes.values()):
            if (push.bucket, push.channel) == (bucket, name):
                del self._pushes[push.push_id]

    def _channel(self, bucket: str, name: str) -> Channel:
        channel = self._channels.get((bucket, name))
        if channel is None:
            raise no_channel(name)
        return channel

    # --- pushes -------------------------------------------------------------------------
    async def start_push(
        self, bucket: str, channel: str, remote_addr: str, worker: str, now_ms: int,
        owner_url: str = "",
    ) -> Push:  # fmt: skip
        if self._channel(bucket, channel).config.status is ChannelStatus.DISABLED:
            raise LiveChannelDisabled("the live channel is disabled", ChannelName=channel)
        if (bucket, channel) in self._live:
            raise still_live(channel)
        push = Push(
            push_id=self._next_push_id,
            bucket=bucket,
            channel=channel,
            remote_addr=remote_addr,
            start_ms=now_ms,
            end_ms=None,
            worker=worker,
            heartbeat_ms=now_ms,
            kick=False,
            stats_json=INITIAL_STATS_JSON,
            owner_url=owner_url,
        )
        self._next_push_id += 1
        self._pushes[push.push_id] = push
        self._live[(bucket, channel)] = push.push_id
        return push

    async def heartbeat(self, push_id: int, now_ms: int, stats_json: str) -> Push | None:
        push = self._pushes.get(push_id)
        if push is None or push.end_ms is not None:
            return None
        push = dataclasses.replace(push, heartbeat_ms=now_ms, stats_json=stats_json)
        self._pushes[push_id] = push
        return push

    async def heartbeat_many(
        self, beats: Sequence[tuple[int, str]], now_ms: int
    ) -> dict[int, Push]:
        out: dict[int, Push] = {}
        for push_id, stats_json in beats:
            push = await self.heartbeat(push_id, now_ms, stats_json)
            if push is not None:
                out[push_id] = push
        return out

    async def running_pushes(self, push_ids: Sequence[int]) -> dict[int, bool]:
        pushes = (self._pushes.get(i) for i in push_ids)
        return {p.push_id: p.kick for p in pushes if p is not None and p.end_ms is None}

    async def end_push(self, push_id: int, end_ms: int) -> None:
        push = self._pushes.get(push_id)
        if push is not None and push.end_ms is None:
            self._end(push, max(end_ms, push.start_ms))

    def _end(self, push: Push, end_ms: int) -> Push:
        ended = dataclasses.replace(push, end_ms=end_ms)
        self._pushes[push.push_id] = ended
        del self._live[(push.bucket, push.channel)]
        return ended

    async def live_push(self, bucket: str, channel: str) -> Push | None:
        push_id = self._live.get((bucket, channel))
        return self._pushes[push_id] if push_id is not None else None

    async def history(self, bucket: str, channel: str, limit: int) -> list[Push]:
        ended = [
            p
            for p in self._pushes.values()
            if p.bucket == bucket and p.channel == channel and p.end_ms is not None
        ]
        ended.sort(key=lambda p: (p.start_ms, p.push_id), reverse=True)
        return ended[: max(limit, 0)]

    async def running_workers(self) -> dict[str, int]:
        latest: dict[str, int] = {}
        for push_id in self._live.values():
            push = self._pushes[push_id]
            latest[push.worker] = max(latest.get(push.worker, push.heartbeat_ms), push.heartbeat_ms)
        return latest

    async def close_stale_pushes(
        self, stale_before_ms: int, workers: Collection[str]
    ) -> list[Push]:
        live = [self._pushes[i] for i in sorted(self._live.values())]
        stale = [p for p in live if p.heartbeat_ms < stale_before_ms and p.worker in workers]
        return [self._end(p, p.heartbeat_ms) for p in stale]

    async def close_worker_pushes(self, worker: str) -> list[Push]:
        owned = [self._pushes[i] for i in sorted(self._live.values())]
        return [self._end(p, p.heartbeat_ms) for p in owned if p.worker == worker]

    # --- segment index ------------------------------------------------------------------
    async def add_segment(self, segment: Segment) -> None:
        channel = (segment.bucket, segment.channel)
        by_seq = self._segments.setdefault(channel, {})
        same_seq = by_seq.get(segment.seq)
        same_key = self._segment_keys.get((segment.bucket, segment.key))
        if same_seq is None and same_key is None:
            by_seq[segment.seq] = segment
            bisect.insort(self._seqs.setdefault(channel, []), segment.seq)
            self._segment_keys[(segment.bucket, segment.key)] = segment
        elif same_seq != segment or same_key != segment:
            raise SegmentConflict(f"seq {segment.seq} or key {segment.key!r} is taken")

    async def last_segments(self, bucket: str, channel: str, count: int) -> list[Segment]:
        if count <= 0:
            return []
        by_seq = self._segments.get((bucket, channel), {})
        return [by_seq[seq] for seq in self._seqs.get((bucket, channel), [])[-count:]]

    async def segments_between(
        self, bucket: str, channel: str, start_ms: int, end_ms: int
    ) -> list[Segment]:
        found = [
            s
            for s in self._segments.get((bucket, channel), {}).values()
            if start_ms <= s.start_ms <= end_ms
        ]
        found.sort(key=lambda s: (s.start_ms, s.seq))
        return found

    async def discontinuities_before(self, bucket: str, channel: str, seq: int) -> int:
        by_seq = self._segments.get((bucket, channel), {})
        removed = self._removed_discontinuities.get((bucket, channel), set())
        return sum(1 for s in by_seq.values() if s.seq < seq and s.discontinuity) + sum(
            1 for r in removed if r < seq
        )

    async def delete_segments(self, bucket: str, channel: str, seqs: Sequence[int]) -> int:
        by_seq = self._segments.get((bucket, channel), {})
        removed = 0
        for seq in set(seqs):
            segment = by_seq.pop(seq, None)
            if segment is None:
                continue
            removed += 1
            self._seqs[(bucket, channel)].remove(seq)
            del self._segment_keys[(bucket, segment.key)]
            if segment.discontinuity:
                self._removed_discontinuities.setdefault((bucket, channel), set()).add(seq)
        return removed

    async def close(self) -> None:
        return None
