"""Every limit the edges enforce, each a named setting ([limits] in TOML) with the reason for
its default next to it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit the edges enforce, each with the reason for its default."""

    # Both ports together. A busy box serves hundreds of publishers; beyond this a new
    # connection is closed at once (logged) rather than starving the process of descriptors.
    max_connections: int = 2000
    # One address rarely needs more than a handful of encoders; stops one host hogging slots.
    max_connections_per_ip: int = 64
    # Real clients finish the handshake in milliseconds; a port scanner never does. Also the
    # wait for the first byte on the shared HTTP/RTMP port.
    handshake_timeout_s: float = 10.0
    # ffmpeg/OBS publish within a second of connecting; idle sockets before publish are junk.
    publish_timeout_s: float = 30.0
    # No media for this long means the encoder died without closing (half-open TCP).
    idle_timeout_s: float = 30.0
    # Segments waiting for storage per publish before we stop reading that publisher's socket.
    upload_queue_segments: int = 8
    # Segments waiting for storage across all publishers of one worker, in bytes: ~30 s of a
    # storage stall at 400 publishers of 2.6 Mbit/s. Past it, publishers holding queued
    # segments are paused too (hls/upload_budget.py), so a stall cannot take the box's memory.
    max_upload_queue_bytes: int = 512 * 1024 * 1024
    # Segment-index rows one push holds while the metadata store is unreachable (they are
    # written when it is back; segments and playlists go on meanwhile): 256 rows are 8.5 min
    # of 2 s segments at ~300 bytes each, ~75 KB per push. Past it the push waits (its
    # publisher is paused) instead of growing memory.
    max_pending_index_segments: int = 256
    # A segment over this is cut early (a 50 Mbit/s stream makes ~31 MB per 5 s).
    max_segment_bytes: int = 64 * 1024 * 1024
    # The floor of the forced cut when keyframes never come (max(2·FD, 60 s): OSS API
    # reference, PutLiveChannel); see `forced_cut_s`.
    max_segment_s: int = 60
    # Largest RTMP message we reassemble (a 1080p high-bitrate keyframe is ~1-2 MB).
    max_rtmp_message_bytes: int = 8 * 1024 * 1024
    # Largest Set Chunk Size a publisher may ask for: the 24-bit message length can never fill
    # a bigger chunk; real clients use 128..65536.
    max_rtmp_chunk_size: int = 0xFFFFFF
    # Largest video/audio frame (one FLV tag body); one frame is at most one RTMP message.
    max_access_unit_bytes: int = 8 * 1024 * 1024
    # A new publish is refused ("server busy") while this worker's heartbeat rounds finish
    # this late (event loop and metadata store together): the worker is overloaded (at 5 s of
    # silence a worker on another host would sweep its pushes; livechannel/fleet/liveness.py), and a
    # newcomer would push every stream on it further behind.
    max_heartbeat_lag_s: float = 1.0
    # Snapshots (OSS API reference, PutLiveChannel, Snapshot) in flight in this process, being
    # encoded (~5 ms of a core each at 720p) or waiting for a snapshot thread. Each holds its
    # keyframe (~100-300 KB at 2-4 Mbit/s; at worst max_access_unit_bytes, so 16 x 8 MiB): 16
    # absorb the bursts of many channels' keyframes arriving together; a snapshot due beyond
    # this is skipped and counted, so a box short of CPU sheds snapshots, not ingest.
    max_snapshot_jobs: int = 16
    # Per-channel metric series (metrics_per_channel): each live channel adds 3 series; 500
    # channels keep a scrape under ~150 KB and a Prometheus server's load per node modest.
    # Channels beyond it are left out (and counted), never an unbounded label set.
    max_metric_channels: int = 500
    # Webhook notifications waiting to be sent, per process: ~a minute of every event of 200
    # publishers with 5 s segments (3 events each per segment) when the receiver is down for
    # less than retry_for_s. Past it new ones are dropped (counted, logged): never memory.
    max_webhook_queue_events: int = 10_000
    # Concurrent HTTP requests in flight; beyond this we answer 503 at once instead of queueing.
    max_http_requests: int = 1024
    # In flight from one client address: an eighth of the slots, so a few hosts that stop
    # reading (or trickle bodies) cannot take the API from everyone. Behind a proxy without
    # the PROXY protocol every request shares the proxy's address: raise it to
    # max_http_requests there.
    max_http_requests_per_ip: int = 128
    # A request body (XML, < 64 KiB) must arrive whole within this; a trickled body holds a
    # request slot, so it is answered 400 RequestTimeout and the connection closed.
    http_body_timeout_s: float = 10.0
    # A response body (a segment, a snapshot) is sent in 64 KiB pieces; a client that takes
    # none of a piece for this long (it stopped reading: ~3 KiB/s is the floor) is cut off,
    # freeing its request slot.
    http_send_stall_timeout_s: float = 20.0
    # LiveChannel XML bodies are < 1 KiB; anything this big is not a client of ours.
    max_xml_body_bytes: int = 64 * 1024
    # An HTTP connection idle (or stuck mid-request, slowloris) this long is closed.
    http_idle_timeout_s: float = 75.0
    # A browser console left alone this long is signed out: a forgotten tab or a stolen
    # cookie is worth little. Activity renews it, up to 12 h after sign-in.
    console_session_idle_s: float = 1800.0

    def forced_cut_s(self, frag_duration_s: int) -> int:
        """A segment with no keyframe is cut after max(2·FragDuration, 60 s); the 60 s is
        `max_segment_s` (OSS API reference, PutLiveChannel)."""
        return max(self.max_segment_s, 2 * frag_duration_s)
