"""Fragmented MP4 muxer (ISO/IEC 14496-12, ISO BMFF) for HLS fMP4 segments (RFC 8216bis
§3.1.2 and §4.4.4.5 EXT-X-MAP): an init section (ftyp + moov with mvex) per configuration,
then moof/mdat fragments: one per LL-HLS part, or (without parts) one per ~128 KiB of a
segment (`hls/segmenter.py`, FMP4_FRAGMENT_BYTES), so a segment can be stored as it grows.

One track per kind: video is track 1 (timescale 90 kHz, as MPEG-TS, so durations of 1 ms
steps stay exact), audio track 2 (timescale = the AAC sample rate, each AAC frame 1024
samples). Both tracks' decode times come from the same publisher clock in ms, so A/V sync
is what the publisher sent. A fragment holds one traf per track with samples; its mdat holds
the video samples, then the audio samples (each trun's samples must be contiguous).

Sample forms: H.264 arrives as the segmenter's Annex B access units with 4-byte start codes
(`media/h264.py`) and becomes length-prefixed NAL units (4-byte lengths, the same size: a
start code is replaced by the NAL's length; the AUD is dropped, MP4 has no use for it); HEVC,
AV1 and VP9 arrive already in their MP4 sample form (length-prefixed NAL units / OBUs / VP9
frames, as Enhanced RTMP carries them). AAC arrives behind a 7-byte ADTS header (no CRC,
`media/aac.py`), which is stripped.

The last sample of a fragment has no successor to measure its duration against: the caller
passes the next video DTS when it knows it (a cut before the next keyframe or part),
otherwise the previous sample's duration is used.
"""

from __future__ import annotations

import struct

from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.opus import OPUS_RATE, dops_payload, packet_samples

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
VIDEO_TIMESCALE = 90_000  # 90 kHz, as MPEG-TS: 1 ms = 90 ticks exactly
MOVIE_TIMESCALE = 1_000
AAC_FRAME_SAMPLES = 1024  # ISO 14496-3: one AAC (LC/HE core) frame decodes to 1024 samples
ADTS_HEADER_BYTES = 7  # protection_absent = 1: the header we write has no CRC
START_CODE = b"\x00\x00\x00\x01"
H264_NAL_AUD = 9
DEFAULT_FRAME_90K = 3_600  # 40 ms: a lone frame's duration (25 fps, the commonest default)
# ISO 14496-12 8.8.3.1 sample_flags: sample_depends_on = 2 (a sync sample) or 1 with
# sample_is_non_sync_sample set.
SYNC_SAMPLE_FLAGS = 0x02000000
NON_SYNC_SAMPLE_FLAGS = 0x01010000
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
TRUN_DATA_OFFSET = 0x000001
TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS = 0x000100, 0x000200, 0x000400, 0x000800
UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
LANGUAGE_UND = 0x55C4  # ISO 639-2 "und", packed 5 bits a letter (8.4.2.3)
# Sample entry FourCC and the child box carrying each codec's decoder configuration.
VIDEO_SAMPLE_ENTRIES = {"H264": b"avc1", "HEVC": b"hvc1", "AV1": b"av01", "VP9": b"vp09"}
VIDEO_CONFIG_BOXES = {"H264": b"avcC", "HEVC": b"hvcC", "AV1": b"av1C", "VP9": b"vpcC"}


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def avc_decoder_config(config: VideoConfig) -> bytes:
    """AVCDecoderConfigurationRecord (ISO 14496-15 5.3.3.1) with 4-byte NAL lengths."""
    sps = config.sps[0]
    out = [bytes((1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | len(config.sps)))]
    out += [struct.pack(">H", len(s)) + s for s in config.sps]
    out.append(bytes((len(config.pps),)))
    out += [struct.pack(">H", len(p)) + p for p in config.pps]
    return b"".join(out)


def audio_specific_config(config: AudioConfig) -> bytes:
    """The 2-byte AudioSpecificConfig (ISO 14496-3 1.6.2.1) ADTS-compatible AAC needs."""
    value = (config.object_type << 11) | (config.sampling_index << 7) | (config.channels << 3)
    return struct.pack(">H", value)


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 descriptor (ISO 14496-1 8.3.3) with a 4-byte expandable size."""
    n = len(body)
    size = bytes(
        (0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F, n & 0x7F)
    )
    return bytes((tag,)) + size + body


def _esds(config: AudioConfig) -> bytes:
    decoder_specific = _descriptor(0x05, audio_specific_config(config))
    # objectTypeIndication 0x40 (MPEG-4 audio), streamType 5 (audio) << 2 | upStream 0 | 1.
    decoder_config = _descriptor(0x04, bytes((0x40, 0x15)) + bytes(11) + decoder_specific)
    sl_config = _descriptor(0x06, b"\x02")  # predefined: MP4 file
    es = _descriptor(0x03, struct.pack(">HB", AUDIO_TRACK_ID, 0) + decoder_config + sl_config)
    return full_box(b"esds", 0, 0, es)


def _video_sample_entry(config: VideoConfig) -> bytes:
    record = avc_decoder_config(config) if config.codec == "H264" else config.record
    entry = VIDEO_SAMPLE_ENTRIES[config.codec]
    child_kind = VIDEO_CONFIG_BOXES[config.codec]
    child = box(child_kind, record)  # vpcC: the record starts with its version and flags
    return box(
        entry,
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),  # pre_defined, reserved, pre_defined[3]
        struct.pack(">HH", config.width, config.height),
        struct.pack(">II", 0x00480000, 0x00480000),  # 72 dpi
        bytes(4),
        struct.pack(">H", 1),  # frame_count
        bytes(32),  # compressorname
        struct.pack(">Hh", 0x0018, -1),  # depth, pre_defined
        child,
    )


def _audio_sample_entry(config: AudioConfig) -> bytes:
    if config.codec == "Opus":
        return box(
            b"Opus",
            bytes(6),
            struct.pack(">H", 1),
            bytes(8),
            struct.pack(">HH", config.channels, 16),
            bytes(4),
            struct.pack(">I", OPUS_RATE << 16),
            box(b"dOps", dops_payload(config)),
        )
    return box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HH", config.channels or 2, 16),
        bytes(4),
        struct.pack(">I", (config.sample_rate & 0xFFFF) << 16),
        _esds(config),
    )


def _trak(track_id: int, timescale: int, handler: bytes, header: bytes, entry: bytes,
          width: int = 0, height: int = 0) -> bytes:  # fmt: skip
    volume = 0x0100 if handler == b"soun" else 0
    tkhd = full_box(
        b"tkhd", 0, 0x000003,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, track_id, 0, 0), bytes(8),
        struct.pack(">hhhH", 0, 0, volume, 0), UNITY_MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )  # fmt: skip
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, LANGUAGE_UND, 0))
    name = b"VideoHandler\0" if handler == b"vide" else b"SoundHandler\0"
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12), name)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    minf = box(b"minf", header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def init_section(video: VideoConfig | None, audio: AudioConfig | None) -> bytes:
    """ftyp + moov for these tracks: what EXT-X-MAP names."""
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"isom", b"mp41")
    mvhd = full_box(
        b"mvhd", 0, 0,
        struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, 0), struct.pack(">IH", 0x00010000, 0x0100),
        bytes(10), UNITY_MATRIX, bytes(24), struct.pack(">I", AUDIO_TRACK_ID + 1),
    )  # fmt: skip
    traks, trexs = [], []
    if video is not None:
        vmhd = full_box(b"vmhd", 0, 1, bytes(8))
        traks.append(
            _trak(
                VIDEO_TRACK_ID,
                VIDEO_TIMESCALE,
                b"vide",
                vmhd,
                _video_sample_entry(video),
                video.width,
                video.height,
            )
        )
        trexs.append(full_box(b"trex", 0, 0, struct.pack(">IIIII", VIDEO_TRACK_ID, 1, 0, 0, 0)))
    if audio is not None:
        smhd = full_box(b"smhd", 0, 0, bytes(4))
        traks.append(
            _trak(AUDIO_TRACK_ID, audio.sample_rate, b"soun", smhd, _audio_sample_entry(audio))
        )
        trexs.append(full_box(b"trex", 0, 0, struct.pack(">IIIII", AUDIO_TRACK_ID, 1, 0, 0, 0)))
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


def annexb_to_mp4_sample(data: bytes) -> bytes:
    """Annex B with 4-byte start codes -> 4-byte length-prefixed NAL units, AUDs dropped.
    Emulation prevention keeps 00 00 00 01 out of NAL payloads, so the split is exact."""
    nals = [nal for nal in data.split(START_CODE) if nal and nal[0] & 0x1F != H264_NAL_AUD]
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


class Fmp4Muxer:
    """Muxes one configuration's access units into fragments (same calls as `TsMuxer`, plus
    `end_fragment`). `init_section` is what every fragment of this muxer needs first."""

    init_section: bytes | None  # always set: the SegmentMuxer protocol allows None (TS)

    def __init__(
        self,
        has_video: bool,
        has_audio: bool,
        audio_config: AudioConfig | None = None,
        *,
        video_config: VideoConfig | None = None,
    ) -> None:
        if has_video and video_config is None:
            raise ValueError("an fMP4 video track needs its VideoConfig")
        if has_audio and audio_config is None:
            raise ValueError("an fMP4 audio track needs its AudioConfig")
        self.video_config = video_config if has_video else None
        self.audio_config = audio_config if has_audio else None
        self.init_section = init_section(self.video_config, self.audio_config)
        self._h264 = self.video_config is not None and self.video_config.codec == "H264"
        self._opus = self.audio_config is not None and self.audio_config.codec == "Opus"
        self._audio_header_bytes = 0 if self._opus else ADTS_HEADER_BYTES
        self._sequence = 0  # mfhd sequence_number, 1 for the first fragment
        self._video: list[tuple[int, int, bool, bytes]] = []  # dts_90k, cts_90k, key, sample
        self._audio: list[bytes] = []
        self._audio_first_pts_ms = 0
        self.buffered_bytes = 0  # media bytes waiting for end_fragment (segment size limit)
        self._last_video_duration_90k = DEFAULT_FRAME_90K

    def start_segment(self) -> bytes:
        return b""  # the init section is stored once, apart (EXT-X-MAP)

    def video(self, frame: VideoFrame) -> bytes:
        sample = annexb_to_mp4_sample(frame.data) if self._h264 else frame.data
        self._video.append(
            (frame.dts_ms * 90, (frame.pts_ms - frame.dts_ms) * 90, frame.keyframe, sample)
        )
        self.buffered_bytes += len(sample)
        return b""

    def audio(self, frame: AudioFrame) -> bytes:
        if not self._audio:
            self._audio_first_pts_ms = frame.pts_ms
        self._audio.append(frame.data[self._audio_header_bytes :])
        self.buffered_bytes += len(frame.data) - self._audio_header_bytes
        return b""

    def end_fragment(self, next_video_dts_ms: int | None) -> list[bytes]:
        """The moof + mdat of everything muxed since the last call (none if nothing was)."""
        video, audio = self._video, self._audio
        if not video and not audio:
            return []
        self._video, self._audio, self.buffered_bytes = [], [], 0
        self._sequence += 1
        video_bytes = sum(len(s[3]) for s in video)
        # moof = header + mfhd (16) + per traf: header, tfhd (16), tfdt (20), trun (20 + rows)
        moof_size = 8 + 16
        if video:
            moof_size += 8 + 16 + 20 + 20 + 16 * len(video)
        if audio:
            moof_size += 8 + 16 + 20 + 20 + 8 * len(audio)
        moof = self._moof(video, audio, next_video_dts_ms, moof_size + 8, video_bytes)
        assert len(moof) == moof_size
        samples = [s[3] for s in video] + audio
        mdat_size = 8 + video_bytes + sum(len(a) for a in audio)
        return [moof, struct.pack(">I4s", mdat_size, b"mdat"), *samples]

    def _moof(
        self,
        video: list[tuple[int, int, bool, bytes]],
        audio: list[bytes],
        next_video_dts_ms: int | None,
        data_offset: int,
        video_bytes: int,
    ) -> bytes:
        trafs = []
        if video:
            trafs.append(self._video_traf(video, next_video_dts_ms, data_offset))
        if audio:
            trafs.append(self._audio_traf(audio, data_offset + video_bytes))
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", self._sequence)), *trafs)

    def _video_traf(
        self, video: list[tuple[int, int, bool, bytes]], next_dts_ms: int | None, offset: int
    ) -> bytes:
        rows = []
        for i, (dts, cts, key, sample) in enumerate(video):
            if i + 1 < len(video):
                duration = video[i + 1][0] - dts
            elif next_dts_ms is not None and next_dts_ms * 90 > dts:
                duration = next_dts_ms * 90 - dts
            else:
                duration = self._last_video_duration_90k
            self._last_video_duration_90k = max(duration, 1)
            flags = SYNC_SAMPLE_FLAGS if key else NON_SYNC_SAMPLE_FLAGS
            rows.append(struct.pack(">IIIi", duration, len(sample), flags, cts))
        trun_flags = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_CTS
        trun = full_box(b"trun", 1, trun_flags, struct.pack(">Ii", len(video), offset), *rows)
        return box(
            b"traf",
            full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", VIDEO_TRACK_ID)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", max(video[0][0], 0))),
            trun,
        )

    def _audio_traf(self, audio: list[bytes], offset: int) -> bytes:
        assert self.audio_config is not None
        rate = self.audio_config.sample_rate
        base = max(self._audio_first_pts_ms, 0) * rate // 1000
        if self._opus:
            rows = [struct.pack(">II", packet_samples(a), len(a)) for a in audio]
        else:
            rows = [struct.pack(">II", AAC_FRAME_SAMPLES, len(a)) for a in audio]
        trun = full_box(
            b"trun", 0, TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE,
            struct.pack(">Ii", len(audio), offset), *rows,
        )  # fmt: skip
        return box(
            b"traf",
            full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", AUDIO_TRACK_ID)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", base)),
            trun,
        )
