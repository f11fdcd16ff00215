"""Cuts a push's access units into keyframe-aligned segments (sans-IO, no clock); a muxer
per format (MPEG-TS, fMP4) turns them into bytes.

Rules (OSS API reference, PutLiveChannel; docs/hls.md, Segments):

* Once the current segment's media reaches FragDuration it is closed at the next keyframe
  (KEYFRAME). With no keyframe it is cut anyway when it reaches `max_segment_ms`, by default
  max(2·FragDuration, 60 s) (FORCED); that bound is also the playlist's TARGETDURATION
  (`playlist.target_duration_s`), and no segment's rounded duration ever exceeds it.
* Nothing is emitted before the first keyframe (earlier video and audio are dropped), so
  every segment starts with a keyframe, except the one after a FORCED or SIZE cut: there the
  frames are kept (a player that was already playing still holds their references) rather
  than dropping up to a whole GOP. A DISCONTINUITY cut on a non-key frame waits for the next
  keyframe like the start of a push: after EXT-X-DISCONTINUITY players reset (MSE drops
  frames until a random access point after a timestamp jump) and joining players start
  there, so that segment must decode on its own.
* Audio is written to the open segment as it arrives: RTMP interleaves by time, so audio that
  arrives after the cutting keyframe belongs to the new segment. Audio more than
  `MAX_DTS_GAP_MS` away from the segment's video is off the timeline and dropped.
* Timestamps never break the output. A video DTS stepping back by `MAX_DTS_FIXUP_MS` or
  more, or forward by more than `MAX_DTS_GAP_MS` beyond the expected next frame, cuts at once
  and marks the next segment as a discontinuity (nothing is rebased: TS decoders follow
  EXT-X-DISCONTINUITY). Smaller steps back and duplicates are bumped to last + 1 ms, so each
  track reaches the muxer strictly increasing.
* A changed VideoConfig/AudioConfig cuts at the next keyframe with a discontinuity (CONFIG);
  audio whose config arrives after video started joins there too (TRACKS: the PMT changes).
  Until then, audio of the new config and video frames before the new keyframe are dropped.
* A segment that reached `max_segment_bytes` is cut before the next video frame (SIZE).
* fMP4 muxers (RFC 8216bis §3.1.2) hold a fragment's samples until it ends (its moof
  gives their sizes) and need the decoder configuration in an init section (EXT-X-MAP): a
  new VideoConfig or AudioConfig makes a new muxer, hence a new init section, and always
  comes with a discontinuity. Without parts, a fragment ends before the video frame that
  finds FMP4_FRAGMENT_BYTES held, so a segment is several moof/mdat fragments (ISO/IEC
  14496-12 8.8; CMAF allows any number per segment) and can be handed out as it grows, as
  TS is, instead of being held whole until the cut.
* LL-HLS (RFC 8216bis 4.4.4.9): with `part_duration_ms`, the open segment is also cut into
  partial segments, each one fMP4 fragment, available as `take_parts()` as soon as it is
  complete. A part ends before the video frame that would take it past the part target
  (measured by the frame interval), and at every segment cut; it is INDEPENDENT when it
  starts with a keyframe. A segment's bytes are exactly its parts' bytes, in order. (The
  late-audio re-mux of a push's first segment is off then: its parts are already out.)
* Without parts, the open segment's bytes can be taken as they are muxed (`take_open`), so
  that storage writes the segment as it grows instead of it being held here until the cut;
  a SegmentReady then carries only the bytes not taken yet. Every SegmentReady closes the
  segment that was open, so whatever took its bytes knows which segment they belonged to.
  Nothing is handed out while the first segment may still be muxed again (TRACK_PROBE_MS),
  nor with parts (their chunks are shared with the segment's, and LL-HLS serves them from
  memory anyway).
* `duration_ms` is the next segment's first DTS minus this one's. Where that is not known or
  not meaningful (flush, end of stream, discontinuity) it is estimated as
  last DTS - first DTS + one frame interval; a stall that would push a segment past the
  TARGETDURATION bound also makes the next segment a discontinuity, with the estimate.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field, replace

from livechannel.hls.playlist import forced_cut_bound_s
from livechannel.hls.segments import CutReason, MuxerFactory, PartReady, SegmentMuxer, SegmentReady
from livechannel.hls.stats import PushStats
from livechannel.media.demux import EndOfStream, MediaEvent
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.mpegts import TsMuxer

# A segment is cut at this size at the latest (SIZE): what a store that holds a segment until
# it is cut (S3) may hold per push; 64 MiB holds 10 s of 50 Mbit/s video.
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
# Without parts, an fMP4 fragment ends before the video frame that finds this much held by
# the muxer: what a push holds of an fMP4 segment before it can go to storage (the pipeline
# hands out what was muxed every STREAM_FLUSH_BYTES, 128 KiB: the same figure, so each hand
# over is about one fragment). A fragment costs ~100 bytes of moof beyond its samples' rows.
FMP4_FRAGMENT_BYTES = 128 * 1024
# OSS API reference, PutLiveChannel: with no keyframe, the segment is forced closed after
# max(2·FragDuration, 60 s).
FORCED_CUT_FLOOR_MS = 60_000
# A DTS step back this large is a restarted clock, not jitter or a B-frame reordering slip.
MAX_DTS_FIXUP_MS = 1_000
# A gap this far beyond the expected next frame is a clock jump, not a network stall.
MAX_DTS_GAP_MS = 10_000
# Frame interval assumed before two frames were seen (25 fps, the commonest encoder default).
DEFAULT_FRAME_INTERVAL_MS = 40
# Slideshow-like streams still get a plausible last-segment estimate, jumps do not inflate it.
MAX_FRAME_INTERVAL_MS = 1_000
# Recent frame deltas whose median estimates the frame interval (robust to jitter).
FRAME_INTERVAL_HISTORY = 16
# A rounded EXTINF equals TARGETDURATION up to just below the next half second.
ROUNDING_SLACK_MS = 499
# Some publishers announce a track only with its first frame (the nginx-rtmp relay sends the
# AAC header just after the first keyframe, and no @setDataFrame). Audio whose config arrives
# within this much media of a push's first segment is folded into that segment (its video is
# re-muxed with the audio track in the PMT) instead of joining one segment later with a track
# change that MSE players (hls.js) cannot follow from the start. Bounds the frames kept.
TRACK_PROBE_MS = 1_000


def default_max_segment_ms(frag_duration_ms: int) -> int:
    """OSS API reference, PutLiveChannel's forced-cut bound, max(2·FragDuration, 60 s)."""
    return max(2 * frag_duration_ms, FORCED_CUT_FLOOR_MS)


@dataclass(slots=True)
class _OpenSegment:
    muxer: SegmentMuxer
    first_dts_ms: int
    last_dts_ms: int
    arrival_ms: int
    discontinuity: bool
    video_config: VideoConfig | None
    audio_config: AudioConfig | None  # None: the PMT has no audio track
    chunks: list[bytes] = field(default_factory=list)  # not taken yet (take_open)
    size: int = 0  # all bytes, taken or not
    untaken: int = 0  # bytes in chunks
    # LL-HLS: where the open part starts (in chunks, and in media time), and its number.
    part_chunk: int = 0
    part_size: int = 0
    part_first_dts_ms: int = 0
    part_independent: bool = True
    parts: int = 0

    def write(self, data: bytes) -> None:
        if data:  # fMP4 muxers hold samples until a fragment ends: nothing to keep per frame
            self.chunks.append(data)
            self.size += len(data)
            self.untaken += len(data)


class Segmenter:
    def __init__(
        self,
        frag_duration_ms: int,
        *,
        max_segment_ms: int | None = None,
        max_segment_bytes: int = MAX_SEGMENT_BYTES,
        muxer_factory: MuxerFactory = TsMuxer,
        part_duration_ms: int = 0,
        stats: PushStats | None = None,
    ) -> None:
        if frag_duration_ms <= 0 or (max_segment_ms is not None and max_segment_ms <= 0):
            raise ValueError("FragDuration and max_segment_ms must be positive")
        if max_segment_bytes <= 0:
            raise ValueError("max_segment_bytes must be positive")
        if part_duration_ms < 0 or part_duration_ms > frag_duration_ms:
            raise ValueError("the part duration must be within 0..FragDuration")
        self.part_duration_ms = part_duration_ms
        self._parts: list[PartReady] = []
        self.frag_duration_ms = frag_duration_ms
        self.max_segment_ms = max_segment_ms or default_max_segment_ms(frag_duration_ms)
        self.max_segment_bytes = max_segment_bytes
        # Longest duration whose rounded EXTINF still fits the forced-cut bound.
        self._duration_limit_ms = forced_cut_bound_s(self.max_segment_ms) * 1000 + ROUNDING_SLACK_MS
        # What only the segmenter sees (forced cuts, dropped frames, fixed timestamps,
        # discontinuities) goes into the push's live figures, shared with the pipeline.
        self.stats = stats if stats is not None else PushStats()
        self._muxer_factory = muxer_factory
        self._muxer: SegmentMuxer | None = None
        self._muxer_audio: AudioConfig | None = None
        self._muxer_video: VideoConfig | None = None
        self._video_config: VideoConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._open: _OpenSegment | None = None
        self._pending_cut: CutReason | None = None  # cut at the next keyframe, whatever FD
        self._next_discontinuity = False
        self._last_audio_pts_ms: int | None = None
        self._frame_deltas_ms: deque[int] = deque(maxlen=FRAME_INTERVAL_HISTORY)
        self._last_key_dts_ms: int | None = None  # the latest keyframe's DTS
        self._gop_ms = 0  # ... and the interval before it (0: not known yet)
        # Video of a push's first segment while a late track may still join (TRACK_PROBE_MS);
        # None once the window passed.
        self._probe: list[VideoFrame] | None = None if part_duration_ms else []

    # --- input -------------------------------------------------------------------------

    def push(self, event: MediaEvent, now_ms: int) -> list[SegmentReady]:
        if isinstance(event, VideoFrame):
            return self.push_video(event, now_ms)
        if isinstance(event, AudioFrame):
            self.push_audio(event)
            return []
        if isinstance(event, VideoConfig):
            self._on_video_config(event)
        elif isinstance(event, AudioConfig):
            self._on_audio_config(event)
        elif isinstance(event, EndOfStream):
            return self.flush(now_ms)
        return []  # UnsupportedVideo/UnsupportedAudio: policy belongs to the pipeline

    @property
    def open_untaken_bytes(self) -> int:
        """Bytes of the open segment that `take_open` would hand out now."""
        seg = self._open
        if seg is None or self._probe is not None or self.part_duration_ms:
            return 0
        return seg.untaken

    def due_in_ms(self) -> int | None:
        """Media ms from the latest video frame to the frame expected to end what is open
        (None: nothing is): with parts, the first frame that ends the open part
        (`push_video`'s rule; <= 0: the next frame does); without, the keyframe that will cut
        the segment, the first at or past FragDuration, guessed from the last keyframe and
        the interval between the last two (past it, <= 0, while the keyframe is late). A
        reader that batches reads aims at this moment (ingest/reads.py)."""
        seg = self._open
        if seg is None:
            return None
        if self.part_duration_ms:
            return self._part_end_dts_ms(seg) - seg.last_dts_ms
        due = seg.first_dts_ms + self.frag_duration_ms
        key, gop = self._last_key_dts_ms, self._gop_ms
        if key is not None and gop and key < due:
            due = key + -(-(due - key) // gop) * gop
        return due - seg.last_dts_ms

    def _keyframe(self, dts_ms: int) -> None:
        """Note a keyframe's time, for `due_in_ms`'s guess at the next one."""
        last = self._last_key_dts_ms
        if last is not None and dts_ms > last:
            self._gop_ms = dts_ms - last
        self._last_key_dts_ms = dts_ms

    def _part_end_dts_ms(self, seg: _OpenSegment) -> int:
        """LL-HLS: a video frame past this DTS would carry the open part past its target
        duration, so it ends the part and starts the next one."""
        return seg.part_first_dts_ms + self.part_duration_ms - self._frame_interval_ms()

    def open_segment(self) -> tuple[int, bytes | None, bool]:
        """The open segment's (arrival_ms, init section, discontinuity): what its
        SegmentReady will carry, known from its start."""
        seg = self._open
        assert seg is not None, "no segment is open"
        return seg.arrival_ms, seg.muxer.init_section, seg.discontinuity

    def take_open(self) -> list[bytes]:
        """The open segment's bytes muxed since the last call (its first ones the first
        time), no longer held here; [] while none can be handed out (module docstring)."""
        if not self.open_untaken_bytes:
            return []
        seg = self._open
        assert seg is not None
        chunks, seg.chunks, seg.untaken = seg.chunks, [], 0
        return chunks

    def flush(self, now_ms: int) -> list[SegmentReady]:
        """Close the partial segment (end of the push). A later keyframe starts afresh."""
        del now_ms  # the last segment's duration is estimated from media time
        if self._open is None:
            return []
        ready = self._close(CutReason.END, next_dts_ms=None)
        self._next_discontinuity = True
        self._last_audio_pts_ms = None
        # What starts after a flush is a new push: its tracks are new too.
        self._probe = None if self.part_duration_ms else []
        return [ready]

    # --- configs -----------------------------------------------------------------------

    def _on_video_config(self, config: VideoConfig) -> None:
        self._video_config = config
        seg = self._open
        if seg is None:
            return
        if seg.video_config is None:
            seg.video_config = config  # learnt late; the frames carry SPS/PPS in-band anyway
        elif seg.video_config != config:
            self._pending_cut = CutReason.CONFIG

    def _on_audio_config(self, config: AudioConfig) -> None:
        self._audio_config = config
        seg = self._open
        if seg is None or seg.audio_config == config:
            return
        if seg.audio_config is None and self._probe is not None:
            self._reopen_with_audio(seg)
            return
        # A new track or a new config: either way the PMT/decoder setup changes at a keyframe.
        if self._pending_cut is None:
            self._pending_cut = CutReason.TRACKS if seg.audio_config is None else CutReason.CONFIG

    # --- video -------------------------------------------------------------------------

    def push_video(self, frame: VideoFrame, now_ms: int) -> list[SegmentReady]:
        """One video frame (what `push` does for it; the ingest hot path calls it directly)."""
        if frame.keyframe:
            self._keyframe(frame.dts_ms)
        seg = self._open
        if seg is None:
            if not frame.keyframe:
                self.stats.dropped_video += 1
                return []
            self._start(frame, now_ms)
            return []
        # The current config first: `in` tries identity before ==, and a segment nearly always
        # holds the very config object in force (None first would call VideoConfig.__eq__).
        if not frame.keyframe and seg.video_config not in (self._video_config, None):
            self.stats.dropped_video += 1  # new SPS: undecodable until its keyframe
            return []

        delta_ms = frame.dts_ms - seg.last_dts_ms
        # The frame interval is at least 1 ms, so its median (a sort per frame) only matters
        # for a step beyond MAX_DTS_GAP_MS + 1.
        if -delta_ms >= MAX_DTS_FIXUP_MS or (
            delta_ms > MAX_DTS_GAP_MS + 1 and delta_ms > self._frame_interval_ms() + MAX_DTS_GAP_MS
        ):
            return self._cut(frame, now_ms, CutReason.DISCONTINUITY, discontinuity=True)
        if delta_ms <= 0:
            self.stats.fixed_timestamps += 1
            dts_ms = seg.last_dts_ms + 1
            frame = replace(frame, dts_ms=dts_ms, pts_ms=max(frame.pts_ms, dts_ms))
        else:
            self._frame_deltas_ms.append(delta_ms)

        span_ms = frame.dts_ms - seg.first_dts_ms
        reason: CutReason | None = None
        if frame.keyframe and self._pending_cut is not None:
            reason = self._pending_cut
        elif frame.keyframe and span_ms >= self.frag_duration_ms:
            reason = CutReason.KEYFRAME
        elif span_ms >= self.max_segment_ms:
            reason = CutReason.FORCED
        elif seg.size + seg.muxer.buffered_bytes >= self.max_segment_bytes:
            reason = CutReason.SIZE
        if reason is None:
            if self.part_duration_ms and frame.dts_ms > self._part_end_dts_ms(seg):
                self._end_part(seg, frame.dts_ms)
                seg.part_independent = frame.keyframe
            self._write_video(seg, frame)
            return []
        # CONFIG and TRACKS change what a decoder must set up: tell the player.
        discontinuity = reason in (CutReason.CONFIG, CutReason.TRACKS)
        return self._cut(frame, now_ms, reason, discontinuity=discontinuity)

    def _cut(
        self, frame: VideoFrame, now_ms: int, reason: CutReason, *, discontinuity: bool
    ) -> list[SegmentReady]:
        """Close the open segment before `frame` and start the next one with it (after a
        clock jump: only if it is a keyframe)."""
        seg = self._open
        assert seg is not None
        # Whatever the reason, a segment whose tracks or configs differ from its
        # predecessor's (say a FORCED cut while audio waited to join) is a discontinuity.
        if seg.audio_config != self._audio_config or seg.video_config not in (
            None,
            self._video_config,
        ):
            discontinuity = True
        next_dts_ms: int | None = frame.dts_ms
        if reason is CutReason.DISCONTINUITY:
            next_dts_ms = None  # the clock broke: the gap is not this segment's length
        ready = self._close(reason, next_dts_ms)
        self._next_discontinuity = self._next_discontinuity or discontinuity
        if reason is CutReason.DISCONTINUITY:
            self._last_audio_pts_ms = None
            self._frame_deltas_ms.clear()
            if not frame.keyframe:
                self.stats.dropped_video += 1  # undecodable on its own: wait for a keyframe
                return [ready]
        self._start(frame, now_ms)
        return [ready]

    def _close(self, reason: CutReason, next_dts_ms: int | None) -> SegmentReady:
        seg = self._open
        assert seg is not None
        self._open = None
        self._probe = None
        if self.part_duration_ms:
            self._end_part(seg, next_dts_ms)
        else:
            for chunk in seg.muxer.end_fragment(next_dts_ms):
                seg.write(chunk)
        duration_ms = -1 if next_dts_ms is None else next_dts_ms - seg.first_dts_ms
        if not 0 <= duration_ms <= self._duration_limit_ms:
            if duration_ms > self._duration_limit_ms:
                self._next_discontinuity = True  # a stall: the playlist must not stretch
            estimate_ms = seg.last_dts_ms - seg.first_dts_ms + self._frame_interval_ms()
            duration_ms = min(estimate_ms, self._duration_limit_ms)
        self.stats.discontinuities += seg.discontinuity
        self.stats.forced_cuts += reason is CutReason.FORCED
        return SegmentReady(
            chunks=seg.chunks,
            size=seg.size,
            first_dts_ms=seg.first_dts_ms,
            duration_ms=duration_ms,
            arrival_ms=seg.arrival_ms,
            discontinuity=seg.discontinuity,
            reason=reason,
            init=seg.muxer.init_section,
        )

    def take_parts(self) -> list[PartReady]:
        """LL-HLS parts completed since the last call, oldest first."""
        parts, self._parts = self._parts, []
        return parts

    def _end_part(self, seg: _OpenSegment, next_dts_ms: int | None) -> None:
        for chunk in seg.muxer.end_fragment(next_dts_ms):
            seg.write(chunk)
        if len(seg.chunks) == seg.part_chunk:
            return  # nothing was muxed since the last part
        if next_dts_ms is not None and next_dts_ms > seg.part_first_dts_ms:
            duration_ms = next_dts_ms - seg.part_first_dts_ms
        else:
            duration_ms = seg.last_dts_ms - seg.part_first_dts_ms + self._frame_interval_ms()
        self._parts.append(
            PartReady(
                chunks=seg.chunks[seg.part_chunk :],
                size=seg.size - seg.part_size,
                index=seg.parts,
                first_dts_ms=seg.part_first_dts_ms,
                duration_ms=duration_ms,
                independent=seg.part_independent,
                segment_arrival_ms=seg.arrival_ms,
                discontinuity=seg.discontinuity,
                init=seg.muxer.init_section,
            )
        )
        seg.parts += 1
        seg.part_chunk, seg.part_size = len(seg.chunks), seg.size
        if next_dts_ms is not None:
            seg.part_first_dts_ms = next_dts_ms

    def _start(self, frame: VideoFrame, now_ms: int) -> None:
        audio, video = self._audio_config, self._video_config
        if self._muxer is None or self._muxer_audio != audio or self._muxer_video != video:
            self._muxer = self._muxer_factory(True, audio is not None, audio, video_config=video)
            self._muxer_audio, self._muxer_video = audio, video
        seg = _OpenSegment(
            muxer=self._muxer,
            first_dts_ms=frame.dts_ms,
            last_dts_ms=frame.dts_ms,
            arrival_ms=now_ms,
            discontinuity=self._next_discontinuity,
            video_config=self._video_config,
            audio_config=audio,
            part_first_dts_ms=frame.dts_ms,
            part_independent=frame.keyframe,
        )
        self._open = seg
        self._next_discontinuity = False
        self._pending_cut = None
        if self._probe is not None:
            self._probe = []
        seg.write(seg.muxer.start_segment())
        self._write_video(seg, frame)

    def _write_video(self, seg: _OpenSegment, frame: VideoFrame) -> None:
        muxer = seg.muxer
        if muxer.buffered_bytes >= FMP4_FRAGMENT_BYTES and not self.part_duration_ms:
            for chunk in muxer.end_fragment(frame.dts_ms):
                seg.write(chunk)
        seg.write(muxer.video(frame))
        seg.last_dts_ms = frame.dts_ms
        if self._probe is not None:
            if frame.dts_ms - seg.first_dts_ms <= TRACK_PROBE_MS:
                self._probe.append(frame)
            else:
                self._probe = None

    def _reopen_with_audio(self, seg: _OpenSegment) -> None:
        """The first segment's audio track arrived late but within TRACK_PROBE_MS: start the
        segment again with audio in its PMT and re-mux the video it holds."""
        frames, self._probe = self._probe or [], []
        self._next_discontinuity = seg.discontinuity
        self._open = None
        self._start(frames[0], seg.arrival_ms)
        reopened = self._open
        assert reopened is not None
        for frame in frames[1:]:
            self._write_video(reopened, frame)

    def _frame_interval_ms(self) -> int:
        if not self._frame_deltas_ms:
            return DEFAULT_FRAME_INTERVAL_MS
        median = int(statistics.median_low(self._frame_deltas_ms))
        return max(1, min(median, MAX_FRAME_INTERVAL_MS))

    # --- audio -------------------------------------------------------------------------

    def push_audio(self, frame: AudioFrame) -> None:
        """One audio frame, which never closes a segment (the hot path calls it directly)."""
        seg = self._open
        if (
            seg is None
            or seg.audio_config is None
            or (
                seg.audio_config is not self._audio_config
                and seg.audio_config != self._audio_config
            )
            or abs(frame.pts_ms - seg.last_dts_ms) > MAX_DTS_GAP_MS
        ):
            self.stats.dropped_audio += 1
            return
        last = self._last_audio_pts_ms
        if last is not None and frame.pts_ms <= last:
            if last - frame.pts_ms >= MAX_DTS_FIXUP_MS:
                self.stats.dropped_audio += 1  # a restarted clock; the video decides the cut
                return
            self.stats.fixed_timestamps += 1
            frame = replace(frame, pts_ms=last + 1)
        seg.write(seg.muxer.audio(frame))
        self._last_audio_pts_ms = frame.pts_ms
