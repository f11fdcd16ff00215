"""MPEG-TS muxer (ISO/IEC 13818-1) for HLS segments: one program, H.264 + AAC (ADTS).

Fast by construction: per-PID headers for all 16 continuity counter values are built once,
a PES is cut into packets by one struct call per 64 packets (no object per packet but the
payload piece itself) and joined once, and the last packet's stuffing comes from a
precomputed table. No per-byte Python loops.

Times: PTS/DTS = ms * 90 + TS_TIME_OFFSET_90K, mod 2**33 (`timestamps.ts_clock_90k`).
The PCR runs PCR_LEAD_90K behind the DTS (the buffer model needs data to arrive before it
is decoded: 2.4.2.3), lives on the video PID when there is video, and is sent at least every
PCR_INTERVAL_MS of media time (2.7.2 asks for at most 100 ms between PCRs).

Audio with video: up to AUDIO_FRAMES_PER_PES consecutive ADTS frames share one PES, as
ffmpeg's and nginx-rtmp's muxers do (an AAC PES may carry several frames, 2.4.3.7: its PTS is
the first's, and each next one starts 1024 samples later). A PES per frame (three packets for
~370 bytes) cost 7 % more of the ingest path (docs/performance.md). A frame whose time is not
the one its samples imply (a gap, a publisher's jittery clock) starts a new PES, so no frame
is played more than AUDIO_PTS_SLACK_MS from its own timestamp; the muxer holds the frames
until then, and `end_fragment` (a segment's end) writes what it holds. A segment's first
audio frame is a PES of its own: ffmpeg's HLS demuxer (5.1), meeting a segment's first audio
in a PES of several frames, handed that frame on twice (two packets with one timestamp).
"""

from __future__ import annotations

import struct

from livechannel.media.aac import SAMPLING_FREQUENCIES_HZ
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.timestamps import TS_CLOCK_MASK, ts_clock_90k

TS_PACKET_BYTES = 188  # 2.4.3.2
TS_PAYLOAD_BYTES = 184  # after the 4-byte header
SYNC_BYTE = 0x47
PAT_PID = 0x0000
PMT_PID = 0x1000
VIDEO_PID = 0x100
AUDIO_PID = 0x101
PROGRAM_NUMBER = 1
TRANSPORT_STREAM_ID = 1
STREAM_TYPE_H264 = 0x1B  # Table 2-34: AVC video (ITU-T H.264)
STREAM_TYPE_AAC_ADTS = 0x0F  # Table 2-34: 13818-7 audio with ADTS transport syntax
STREAM_ID_VIDEO = 0xE0  # Table 2-22: first video stream
STREAM_ID_AUDIO = 0xC0  # Table 2-22: first audio stream
MAX_PES_PACKET_LENGTH = 0xFFFF  # 16-bit field; video may write 0 = unbounded (2.4.3.7)
# Media time between PCRs: 60 ms plus at most one ~40 ms frame gap stays within 2.7.2's 100 ms.
PCR_INTERVAL_MS = 60
# With video, this many consecutive AAC frames at most go into one PES: ~116 ms at 44.1 kHz,
# well inside PCR_LEAD_90K, and ~5 x 370 bytes in 11 packets instead of 15.
AUDIO_FRAMES_PER_PES = 5
# RTMP timestamps are whole milliseconds, rounded from the encoder's sample clock: a frame
# within this much of where its PES's samples put it continues that PES.
AUDIO_PTS_SLACK_MS = 1
# With video, an audio frame this far past the last PCR brings a PCR (on the video PID) before
# it: the next frame, at most ~32 ms later (AAC at 32 kHz and up), is then still within the
# 100 ms of 2.7.2. Video at 30 fps sends one every 66 ms itself, so audio seldom needs to.
AUDIO_PCR_DUE_MS = 64
AUDIO_PES_HEADER_BYTES = 8  # after PES_packet_length: flags, header length, PTS
MAX_AUDIO_PES_DATA_BYTES = MAX_PES_PACKET_LENGTH - AUDIO_PES_HEADER_BYTES
AAC_FRAME_SAMPLES = 1024  # samples per AAC frame (ISO/IEC 14496-3, 1024-sample frames)
# The PCR is set 0.7 s before the DTS so a frame is "in the buffer" well before it decodes and
# audio interleaved up to 0.7 s early still arrives after the PCR (libavformat uses 0.7 s too).
PCR_LEAD_90K = 63_000
AF_RANDOM_ACCESS = 0x40  # adaptation field flags (2.4.3.5)
AF_PCR = 0x10
PES_FLAGS_ALIGNED = 0x84  # '10' marker, data_alignment_indicator: the PES starts an AU
PTS_ONLY, PTS_AND_DTS = 0x80, 0xC0  # PTS_DTS_flags
_PES_START_VIDEO = bytes((0, 0, 1, STREAM_ID_VIDEO))  # packet_start_code_prefix + stream_id
_PES_START_AUDIO = bytes((0, 0, 1, STREAM_ID_AUDIO))
# PES flags and PES_header_data_length: a PTS (5 bytes), or a PTS and a DTS (10 bytes).
_PTS_ONLY_FLAGS = bytes((PES_FLAGS_ALIGNED, PTS_ONLY, 5))
_PTS_DTS_FLAGS = bytes((PES_FLAGS_ALIGNED, PTS_AND_DTS, 10))


def _crc32_mpeg2_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc32_mpeg2_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 of PSI sections (Annex A): polynomial 0x04C11DB7, no reflection."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _adaptation_stuffing(size: int) -> bytes:
    """An adaptation field of exactly `size` bytes with nothing but stuffing (2.4.3.5)."""
    if size == 1:
        return b"\x00"  # adaptation_field_length 0: the single byte is the length itself
    return bytes((size - 1, 0x00)) + b"\xff" * (size - 2)


UNPACK_BLOCK = 64  # packets cut per struct call (one compiled Struct per count up to this)
# _UNPACK[k](buffer, offset) -> k consecutive 184-byte payloads as bytes, cut in C.
_UNPACK = tuple(
    struct.Struct(f"{TS_PAYLOAD_BYTES}s" * k).unpack_from for k in range(UNPACK_BLOCK + 1)
)
_EMPTY = [b""]  # placeholder slots, overwritten at once


def _payload_chunks(data: bytes | memoryview, start: int, count: int) -> tuple[bytes, ...]:
    """`count` 184-byte pieces of `data` from `start`."""
    if count <= UNPACK_BLOCK:
        return _UNPACK[count](data, start)
    chunks: tuple[bytes, ...] = ()
    block = UNPACK_BLOCK * TS_PAYLOAD_BYTES
    for offset in range(start, start + count * TS_PAYLOAD_BYTES, block):
        left = (start + count * TS_PAYLOAD_BYTES - offset) // TS_PAYLOAD_BYTES
        chunks += _UNPACK[min(left, UNPACK_BLOCK)](data, offset)
    return chunks


# _STUFFING[n]: adaptation field filling n bytes; index 0 unused (no field at all).
_STUFFING = (b"", *(_adaptation_stuffing(n) for n in range(1, TS_PAYLOAD_BYTES + 1)))


def _timestamp_field(prefix: int, time_90k: int) -> bytes:
    """PTS or DTS: 4-bit prefix, 33 bits in 3/15/15 pieces, each followed by a marker bit."""
    return bytes(
        (
            (prefix << 4) | ((time_90k >> 29) & 0x0E) | 1,
            (time_90k >> 22) & 0xFF,
            ((time_90k >> 14) & 0xFE) | 1,
            (time_90k >> 7) & 0xFF,
            ((time_90k << 1) & 0xFE) | 1,
        )
    )


def _pcr_field(pcr_90k: int) -> bytes:
    """program_clock_reference_base (33 bits), 6 reserved 1-bits, extension 0 (27 MHz part)."""
    return bytes(
        (
            (pcr_90k >> 25) & 0xFF,
            (pcr_90k >> 17) & 0xFF,
            (pcr_90k >> 9) & 0xFF,
            (pcr_90k >> 1) & 0xFF,
            ((pcr_90k & 1) << 7) | 0x7E,
            0x00,
        )
    )


class _Stream:
    """One PID: its continuity counter and its precomputed packet headers."""

    __slots__ = ("cc", "first_heads", "heads", "pid", "rotated_heads", "tail_heads")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cc = 0  # continues across segments: a segment is a cut of one transport stream
        hi, lo = pid >> 8, pid & 0xFF
        # heads[cc]: continuation packet, payload only. first_heads[af][cc]: payload start.
        self.heads = tuple(bytes((SYNC_BYTE, hi, lo, 0x10 | cc)) for cc in range(16))
        self.first_heads = tuple(
            tuple(bytes((SYNC_BYTE, 0x40 | hi, lo, flags | cc)) for cc in range(16))
            for flags in (0x10, 0x30)
        )
        # rotated_heads[cc]: the 16 continuation headers in the order they follow cc.
        self.rotated_heads = tuple(self.heads[cc:] + self.heads[:cc] for cc in range(16))
        # tail_heads[cc]: a last, short packet, filled up by its adaptation field.
        self.tail_heads = tuple(bytes((SYNC_BYTE, hi, lo, 0x30 | cc)) for cc in range(16))

    def packetize(self, head: bytes, payload: bytes | memoryview, af_body: bytes) -> bytes:
        """Cut one PES, `head` (its header, shorter than a packet) then `payload`, into
        packets. `af_body` is the first packet's adaptation field content after its length
        byte (flags, PCR), or empty for none. The full middle packets are cut and laid out by
        C code (struct, extended-slice assignment), with no Python step per packet."""
        n = len(head) + len(payload)
        cc = self.cc
        af_bytes = len(af_body) + 1 if af_body else 0
        cap = TS_PAYLOAD_BYTES - af_bytes
        if n <= cap:  # one packet: stuffing goes into the (maybe new) adaptation field
            stuff = cap - n
            if af_body:
                af = bytes((af_bytes - 1 + stuff,)) + af_body + b"\xff" * stuff
            else:
                af = _STUFFING[stuff]
            self.cc = (cc + 1) & 0xF
            return b"".join((self.first_heads[1 if af else 0][cc], af, head, payload))
        first = (
            self.first_heads[1][cc] + bytes((af_bytes - 1,)) + af_body
            if af_body
            else self.first_heads[0][cc]
        )
        lead = cap - len(head)  # payload bytes in the first packet
        full, tail = divmod(n - cap, TS_PAYLOAD_BYTES)
        cc = (cc + 1) & 0xF
        # [first, head, lead] then header/chunk pairs: the pairs are filled by two extended-
        # slice assignments, the chunks cut by one struct call per UNPACK_BLOCK packets.
        # The first and last pieces are slices of at most a packet: copying them costs less
        # than a memoryview (an object with a buffer export to set up and release).
        parts: list[bytes | memoryview] = [first, head, payload[:lead]]
        parts += _EMPTY * (2 * full)
        heads = self.rotated_heads[cc]
        if full > len(heads):
            heads *= full // len(heads) + 1
        parts[3::2] = heads[:full]
        parts[4::2] = _payload_chunks(payload, lead, full)
        cc = (cc + full) & 0xF
        if tail:
            parts += (
                self.tail_heads[cc],
                _STUFFING[TS_PAYLOAD_BYTES - tail],
                payload[len(payload) - tail :],
            )
            cc = (cc + 1) & 0xF
        self.cc = cc
        return b"".join(parts)

    def adaptation_only(self, af_body: bytes) -> bytes:
        """A packet with no payload (adaptation_field_control '10'); the CC does not advance."""
        size = TS_PACKET_BYTES - 4
        af = bytes((size - 1,)) + af_body + b"\xff" * (size - 1 - len(af_body))
        return bytes((SYNC_BYTE, self.pid >> 8, self.pid & 0xFF, 0x20 | self.cc)) + af


def _psi_packet(stream: _Stream, section: bytes) -> bytes:
    """A section in one packet: pointer_field 0, the section with its CRC, 0xFF filling."""
    section += crc32_mpeg2(section).to_bytes(4, "big")
    body = b"\x00" + section
    return stream.packetize(b"", body + b"\xff" * (TS_PAYLOAD_BYTES - len(body)), b"")


def _section(table_id: int, table_id_extension: int, body: bytes) -> bytes:
    """Long-form section header (2.4.4.3): syntax indicator 1, version 0, current, section 0/0."""
    length = 5 + len(body) + 4  # after the length field, through the CRC
    return (
        bytes((table_id, 0xB0 | (length >> 8), length & 0xFF))
        + table_id_extension.to_bytes(2, "big")
        + b"\xc1\x00\x00"
        + body
    )


class TsMuxer:
    """One transport stream, cut into segments by the caller with `start_segment()`.

    `audio_config` is accepted for the PMT's sake but the ADTS headers already describe the
    audio fully, so the PMT carries no audio descriptor.
    """

    init_section: bytes | None = None  # every segment is self-contained: PAT/PMT first
    buffered_bytes: int = 0  # the held audio frames' bytes (a few KiB at most)

    def __init__(
        self,
        has_video: bool,
        has_audio: bool,
        audio_config: AudioConfig | None = None,
        *,
        video_config: VideoConfig | None = None,
    ) -> None:
        del video_config  # the PMT names H.264; SPS/PPS travel in-band
        if not (has_video or has_audio):
            raise ValueError("a transport stream needs video or audio")
        self.has_video = has_video
        self.has_audio = has_audio
        self.audio_config = audio_config
        self._pat = _Stream(PAT_PID)
        self._pmt = _Stream(PMT_PID)
        self._video = _Stream(VIDEO_PID)
        self._audio = _Stream(AUDIO_PID)
        self._last_pcr_ms: int | None = None
        # Audio frames held for one PES (module docstring): their data, the first's time, and
        # the ms one frame lasts; 0 (no configuration known, or no video): a PES per frame.
        self._held: list[bytes] = []
        self._held_pts_ms = 0
        self._frame_ms = 0.0
        self._segment_has_audio = False  # its first audio frame goes alone (module docstring)
        index = audio_config.sampling_index if audio_config is not None else -1
        if has_video and 0 <= index < len(SAMPLING_FREQUENCIES_HZ):
            self._frame_ms = AAC_FRAME_SAMPLES * 1000 / SAMPLING_FREQUENCIES_HZ[index]
        pcr_pid = VIDEO_PID if has_video else AUDIO_PID
        streams = b""
        if has_video:
            streams += bytes((STREAM_TYPE_H264, 0xE0 | (VIDEO_PID >> 8), VIDEO_PID & 0xFF, 0xF0, 0))
        if has_audio:
            streams += bytes(
                (STREAM_TYPE_AAC_ADTS, 0xE0 | (AUDIO_PID >> 8), AUDIO_PID & 0xFF, 0xF0, 0)
            )
        self._pat_section = _section(
            0x00,
            TRANSPORT_STREAM_ID,
            PROGRAM_NUMBER.to_bytes(2, "big") + bytes((0xE0 | (PMT_PID >> 8), PMT_PID & 0xFF)),
        )
        self._pmt_section = _section(
            0x02, PROGRAM_NUMBER, bytes((0xE0 | (pcr_pid >> 8), pcr_pid & 0xFF, 0xF0, 0)) + streams
        )

    def start_segment(self) -> bytes:
        """PAT + PMT, to begin a segment (each segment must be playable on its own)."""
        self._segment_has_audio = False
        return _psi_packet(self._pat, self._pat_section) + _psi_packet(self._pmt, self._pmt_section)

    def _pcr_due(self, time_ms: int) -> bool:
        last = self._last_pcr_ms
        return last is None or not 0 <= time_ms - last < PCR_INTERVAL_MS

    def _pcr(self, time_ms: int) -> bytes:
        self._last_pcr_ms = time_ms
        return _pcr_field((ts_clock_90k(time_ms) - PCR_LEAD_90K) & TS_CLOCK_MASK)

    def video(self, frame: VideoFrame) -> bytes:
        """One access unit as one PES; PCR on keyframes and whenever one is due."""
        if not self.has_video:
            raise ValueError("this muxer was created without video")
        dts_90k = ts_clock_90k(frame.dts_ms)
        pts_90k = ts_clock_90k(frame.pts_ms)
        if pts_90k == dts_90k:
            header = _PTS_ONLY_FLAGS + _timestamp_field(0x2, pts_90k)
        else:
            header = (
                _PTS_DTS_FLAGS + _timestamp_field(0x3, pts_90k) + _timestamp_field(0x1, dts_90k)
            )
        length = len(header) + len(frame.data)
        head = (
            _PES_START_VIDEO
            + (length if length <= MAX_PES_PACKET_LENGTH else 0).to_bytes(2, "big")
            + header
        )
        af_body = b""
        if frame.keyframe or self._pcr_due(frame.dts_ms):
            af_body = bytes((AF_PCR | (AF_RANDOM_ACCESS if frame.keyframe else 0),))
            af_body += self._pcr(frame.dts_ms)
        return self._video.packetize(head, frame.data, af_body)

    def audio(self, frame: AudioFrame) -> bytes:
        """An ADTS frame: held for the PES of the frames that follow it (module docstring),
        or one PES of its own. Returns the bytes it completed, if any. With video, a PCR-only
        packet goes on the video PID before a frame AUDIO_PCR_DUE_MS past the last PCR, so
        PCRs stay within 100 ms while video is sparse."""
        if not self.has_audio:
            raise ValueError("this muxer was created without audio")
        if len(frame.data) > MAX_AUDIO_PES_DATA_BYTES:
            raise ValueError(f"audio frame of {len(frame.data)} bytes does not fit one PES")
        if not self.has_video:
            return self._audio_pes(frame.pts_ms, frame.data)
        last_pcr = self._last_pcr_ms
        pcr_due = last_pcr is not None and frame.pts_ms - last_pcr >= AUDIO_PCR_DUE_MS
        held = self._held
        if held and not pcr_due and self._continues(frame):
            held.append(frame.data)
            self.buffered_bytes += len(frame.data)
            return b""
        out = self._flush_audio() if held else b""
        if pcr_due:
            out += self._video.adaptation_only(bytes((AF_PCR,)) + self._pcr(frame.pts_ms))
        if not self._frame_ms or not self._segment_has_audio:
            self._segment_has_audio = True
            return out + self._audio_pes(frame.pts_ms, frame.data)
        self._held = [frame.data]
        self._held_pts_ms = frame.pts_ms
        self.buffered_bytes = len(frame.data)
        return out

    def _continues(self, frame: AudioFrame) -> bool:
        """`frame` may join the held frames' PES."""
        held = self._held
        return (
            len(held) < AUDIO_FRAMES_PER_PES
            and abs(frame.pts_ms - self._held_pts_ms - len(held) * self._frame_ms)
            <= AUDIO_PTS_SLACK_MS
            and self.buffered_bytes + len(frame.data) <= MAX_AUDIO_PES_DATA_BYTES
        )

    def _flush_audio(self) -> bytes:
        held, self._held, self.buffered_bytes = self._held, [], 0
        return self._audio_pes(self._held_pts_ms, held[0] if len(held) == 1 else b"".join(held))

    def _audio_pes(self, pts_ms: int, data: bytes) -> bytes:
        """One PES of ADTS frames, the first at `pts_ms`. Audio-only, every one is a random
        access point and carries the PCR when one is due."""
        head = (
            _PES_START_AUDIO
            + (AUDIO_PES_HEADER_BYTES + len(data)).to_bytes(2, "big")
            + _PTS_ONLY_FLAGS
            + _timestamp_field(0x2, ts_clock_90k(pts_ms))
        )
        if self.has_video:
            return self._audio.packetize(head, data, b"")
        af_body = bytes((AF_RANDOM_ACCESS,))
        if self._pcr_due(pts_ms):
            af_body = bytes((AF_RANDOM_ACCESS | AF_PCR,)) + self._pcr(pts_ms)
        return self._audio.packetize(head, data, af_body)

    def end_fragment(self, next_video_dts_ms: int | None) -> list[bytes]:
        """The held audio frames' PES (a segment ends: they belong to it)."""
        del next_video_dts_ms
        return [self._flush_audio()] if self._held else []
