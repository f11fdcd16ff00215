"""The metadata store: buckets, channels, pushes (history + the live registry), segment index.

Every process of a deployment (one or several ingest workers, on one or several machines)
shares one store; "one publisher per channel" and "disable kicks the publisher" are decided
here, never in process memory. Times are integer milliseconds since the Unix epoch (`_ms`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Acl(StrEnum):
    PRIVATE = "private"
    PUBLIC_READ = "public-read"
    PUBLIC_READ_WRITE = "public-read-write"


class SegmentFormat(StrEnum):
    """The container of a channel's HLS segments (RFC 8216bis §3): MPEG-TS, or fragmented MP4
    with an init section (EXT-X-MAP)."""

    TS = "ts"
    FMP4 = "fmp4"

    @property
    def extension(self) -> str:
        return ".ts" if self is SegmentFormat.TS else ".m4s"


class ChannelStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    acl: Acl
    created_ms: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    role_name: str
    dest_bucket: str
    notify_topic: str
    interval_s: int


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """What PutLiveChannel carries (OSS API reference, PutLiveChannel), validated."""

    description: str = ""
    status: ChannelStatus = ChannelStatus.ENABLED
    frag_duration_s: int = 5
    frag_count: int = 3
    playlist_name: str = "playlist.m3u8"
    snapshot: Snapshot | None = None
    # Our extension (docs/api.md, "SegmentFormat"): None follows the bucket's [hls] table.
    segment_format: SegmentFormat | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    bucket: str
    name: str
    config: ChannelConfig
    last_modified_ms: int


@dataclass(frozen=True, slots=True)
class Push:
    """One publish session. `end_ms` is None while it runs."""

    push_id: int
    bucket: str
    channel: str
    remote_addr: str  # "ip:port"
    start_ms: int
    end_ms: int | None
    worker: str  # which ingest process owns it ("host:pid")
    heartbeat_ms: int  # last time the owner said it is alive (also: last media received)
    kick: bool  # set by the API (disable); the owner disconnects the publisher
    stats_json: str  # the owner's latest live figures (video/audio/health), JSON
    # Where players reach the owner's node for LL-HLS (its `advertise_url`); "" if not set.
    owner_url: str = ""


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment object in the segment index. `seq` is the channel's media sequence number."""

    bucket: str
    channel: str
    seq: int
    key: str  # "<channel>/<unix ms>.ts" or "<channel>/<unix ms>.m4s"
    start_ms: int  # wall clock when the segment's first frame arrived
    duration_ms: int
    size: int
    push_id: int
    discontinuity: bool  # first segment of a push, or a timestamp jump / track change
    init_key: str = ""  # fMP4: its init section's key (EXT-X-MAP), "<channel>/<unix ms>.mp4"


class MetadataStore(Protocol):
    # --- buckets ------------------------------------------------------------------------
    async def ensure_bucket(self, name: str, acl: Acl, now_ms: int) -> Bucket:
        """Create the bucket if missing (keep an existing bucket's ACL); return it."""
        ...

    async def get_bucket(self, name: str) -> Bucket | None: ...

    async def list_buckets(self) -> list[Bucket]: ...

    async def set_bucket_acl(self, name: str, acl: Acl) -> None: ...

    # --- channels -----------------------------------------------------------------------
    async def put_channel(
        self, bucket: str, name: str, config: ChannelConfig, now_ms: int
    ) -> Channel:
        """Create or replace. Raises ChannelStillLive if a push is running on it."""
        ...

    async def get_channel(self, bucket: str, name: str) -> Channel | None: ...

    async def list_channels(
        self, bucket: str, prefix: str, marker: str, limit: int
    ) -> list[Channel]:
        """Names > marker (exclusive) starting with prefix, sorted by name, at most `limit`."""
        ...

    async def set_channel_status(
        self, bucket: str, name: str, status: ChannelStatus, now_ms: int
    ) -> None:
        """Raises NoSuchLiveChannel. Disabling sets `kick` on the channel's running push."""
        ...

    async def delete_channel(self, bucket: str, name: str) -> None:
        """Raises NoSuchLiveChannel, or ChannelStillLive while a push runs. Keeps segments."""
        ...

    # --- pushes (history and the live registry) -----------------------------------------
    async def start_push(
        self, bucket: str, channel: str, remote_addr: str, worker: str, now_ms: int,
        owner_url: str = "",
    ) -> Push:  # fmt: skip
        """Atomically: the channel exists and is enabled and has no running push.

        Raises NoSuchLiveChannel, LiveChannelDisabled, or ChannelStillLive.
        """
        ...

    async def heartbeat(self, push_id: int, now_ms: int, stats_json: str) -> Push | None:
        """Refresh a running push; return it (its `kick` flag tells the owner to stop)."""
        ...

    async def heartbeat_many(
        self, beats: Sequence[tuple[int, str]], now_ms: int
    ) -> dict[int, Push]:
        """`heartbeat` for many pushes in one transaction: push_id -> the refreshed push, for
        those still running. One write per process per tick, however many publishers."""
        ...

    async def running_pushes(self, push_ids: Sequence[int]) -> dict[int, bool]:
        """push_id -> its `kick` flag, for those of `push_ids` still running: a read-only
        check, cheap enough to make several times a second for all of a process's pushes."""
        ...

    async def end_push(self, push_id: int, end_ms: int) -> None: ...

    async def live_push(self, bucket: str, channel: str) -> Push | None: ...

    async def history(self, bucket: str, channel: str, limit: int) -> list[Push]:
        """Ended pushes, most recent first."""
        ...

    async def running_workers(self) -> dict[str, int]:
        """Every worker with running pushes -> the latest heartbeat among them."""
        ...

    async def close_stale_pushes(
        self, stale_before_ms: int, workers: Collection[str]
    ) -> list[Push]:
        """End the running pushes of `workers` whose heartbeat is older than that (end = last
        heartbeat). The caller names the workers it judged dead (livechannel.fleet.liveness): a
        slow worker's pushes are alive, however late their heartbeats."""
        ...

    async def close_worker_pushes(self, worker: str) -> list[Push]:
        """End every running push owned by `worker` (a restart of that worker)."""
        ...

    # --- segment index ------------------------------------------------------------------
    async def add_segment(self, segment: Segment) -> None: ...

    async def last_segments(self, bucket: str, channel: str, count: int) -> list[Segment]:
        """The `count` highest-seq segments, in ascending seq order."""
        ...

    async def segments_between(
        self, bucket: str, channel: str, start_ms: int, end_ms: int
    ) -> list[Segment]:
        """Segments with start_ms in [start_ms, end_ms], ascending."""
        ...

    async def discontinuities_before(self, bucket: str, channel: str, seq: int) -> int:
        """How many segments with seq < `seq` carry a discontinuity
        (EXT-X-DISCONTINUITY-SEQUENCE)."""
        ...

    async def delete_segments(self, bucket: str, channel: str, seqs: Sequence[int]) -> int:
        """Drop these segments from the index (retention); return how many were there.

        The index must never name a missing object, so callers drop entries before deleting
        the objects. Removed discontinuities still count in `discontinuities_before`: a live
        playlist's EXT-X-DISCONTINUITY-SEQUENCE never goes back (RFC 8216 6.2.2).
        """
        ...

    async def close(self) -> None: ...
