"""AAC in FLV (AudioSpecificConfig + raw frames) to AAC in MPEG-TS (ADTS frames).

AudioSpecificConfig is ISO 14496-3 1.6.2.1; ADTS is 14496-3 1.A.2 (13818-7 6.2).
"""

from __future__ import annotations

from livechannel.media.bits import BitReader
from livechannel.media.errors import MediaError
from livechannel.media.frames import AudioConfig

# samplingFrequencyIndex -> Hz (14496-3 Table 1.18); 13 and 14 are reserved, 15 is "explicit".
SAMPLING_FREQUENCIES_HZ = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)  # fmt: skip
EXPLICIT_FREQUENCY_INDEX = 0xF
AOT_ESCAPE = 31  # audioObjectType 31 means "32 + the next 6 bits" (1.6.2.1)
AOT_SBR = 5  # HE-AAC explicit signalling: the real object type follows the extension rate
AOT_PS = 29  # HE-AAC v2, signalled like SBR
# channelConfiguration -> channel count (14496-3 Table 1.19 + amendments); 0 = from a PCE.
CHANNELS_BY_CONFIGURATION = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 14: 8}
# ADTS has a 2-bit profile (object type - 1), so only Main, LC, SSR and LTP fit (1.A.2.2.1).
ADTS_OBJECT_TYPES = (1, 2, 3, 4)
# ADTS has a 3-bit channel_configuration: 1..7, where 7 means 8 channels (7.1).
ADTS_CHANNEL_CONFIGURATION = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7}
ADTS_HEADER_BYTES = 7  # protection_absent = 1, so no CRC
# aac_frame_length is 13 bits and counts the header too.
MAX_ADTS_PAYLOAD_BYTES = (1 << 13) - 1 - ADTS_HEADER_BYTES
# aac_frame_length's place in the header read as one 56-bit number: 13 bits, followed by the
# 11-bit buffer fullness and the 2-bit frame count.
_FRAME_LENGTH_SHIFT = 13
_FRAME_LENGTH_FIELD = 0x1FFF << _FRAME_LENGTH_SHIFT


def _object_type(r: BitReader) -> int:
    aot = r.u(5)
    return 32 + r.u(6) if aot == AOT_ESCAPE else aot


def _sampling(r: BitReader) -> tuple[int, int]:
    """(samplingFrequencyIndex, Hz); an explicit rate that is in the table gets its index."""
    index = r.u(4)
    if index == EXPLICIT_FREQUENCY_INDEX:
        rate = r.u(24)
        if rate == 0:
            raise MediaError("AudioSpecificConfig has an explicit sampling rate of 0 Hz")
        if rate in SAMPLING_FREQUENCIES_HZ:
            return SAMPLING_FREQUENCIES_HZ.index(rate), rate
        return EXPLICIT_FREQUENCY_INDEX, rate
    if index >= len(SAMPLING_FREQUENCIES_HZ):
        raise MediaError(f"reserved samplingFrequencyIndex {index}")
    return index, SAMPLING_FREQUENCIES_HZ[index]


def parse_audio_specific_config(data: bytes) -> AudioConfig:
    """The AAC sequence header -> AudioConfig.

    For explicitly signalled HE-AAC (object type 5 or 29) `object_type` and `sampling_index`
    are the core AAC ones (what ADTS must carry: the decoder finds SBR implicitly) and
    `sample_rate` is the output rate after SBR.
    """
    r = BitReader(bytes(data))
    object_type = _object_type(r)
    sampling_index, sample_rate = _sampling(r)
    channel_configuration = r.u(4)
    if channel_configuration not in CHANNELS_BY_CONFIGURATION:
        raise MediaError(f"reserved channelConfiguration {channel_configuration}")
    if object_type in (AOT_SBR, AOT_PS):
        _, sample_rate = _sampling(r)  # extensionSamplingFrequencyIndex
        object_type = _object_type(r)
    if object_type == 0:
        raise MediaError("AudioSpecificConfig has the null object type 0")
    return AudioConfig(
        codec="AAC",
        object_type=object_type,
        sample_rate=sample_rate,
        channels=CHANNELS_BY_CONFIGURATION[channel_configuration],
        sampling_index=sampling_index,
    )


def adts_unsupported_reason(config: AudioConfig) -> str | None:
    """Why this configuration cannot be framed as ADTS, or None if it can."""
    if config.object_type not in ADTS_OBJECT_TYPES:
        return f"AAC object type {config.object_type}"
    if config.sampling_index >= len(SAMPLING_FREQUENCIES_HZ):
        return f"AAC at {config.sample_rate} Hz"
    if config.channels not in ADTS_CHANNEL_CONFIGURATION:
        return f"AAC with {config.channels or 'PCE-defined'} channels"
    return None


def adts_header(config: AudioConfig, payload_len: int) -> bytes:
    """The 7-byte ADTS header (no CRC) for one raw AAC frame of `payload_len` bytes."""
    reason = adts_unsupported_reason(config)
    if reason is not None:
        raise MediaError(f"{reason} cannot be carried in ADTS")
    if not 0 <= payload_len <= MAX_ADTS_PAYLOAD_BYTES:
        raise MediaError(f"AAC frame of {payload_len} bytes is too large for ADTS")
    frame_len = payload_len + ADTS_HEADER_BYTES
    channel_configuration = ADTS_CHANNEL_CONFIGURATION[config.channels]
    # syncword 0xFFF, MPEG-4, layer 0, protection_absent 1 | profile, rate, private 0,
    # channels (3 bits straddling a byte), originality/home/copyright 0, 13-bit length,
    # buffer fullness 0x7FF (VBR), one raw data block per frame.
    return bytes(
        (
            0xFF,
            0xF1,
            ((config.object_type - 1) << 6)
            | (config.sampling_index << 2)
            | (channel_configuration >> 2),
            ((channel_configuration & 0x3) << 6) | (frame_len >> 11),
            (frame_len >> 3) & 0xFF,
            ((frame_len & 0x7) << 5) | 0x1F,
            0xFC,
        )
    )


class AdtsFramer:
    """ADTS framing for one AudioConfig: the fixed header bits are computed once, only the
    frame length per frame (the ingest hot path frames ~43 AAC frames a second per stream)."""

    __slots__ = ("_fixed",)

    def __init__(self, config: AudioConfig) -> None:
        template = adts_header(config, 0)  # raises MediaError for what ADTS cannot carry
        # The 7-byte header as one number without its aac_frame_length: a frame's header is
        # then one OR and one to_bytes.
        self._fixed = int.from_bytes(template, "big") & ~_FRAME_LENGTH_FIELD

    def header(self, payload_len: int) -> bytes:
        """Equal to `adts_header(config, payload_len)`."""
        if not 0 <= payload_len <= MAX_ADTS_PAYLOAD_BYTES:
            raise MediaError(f"AAC frame of {payload_len} bytes is too large for ADTS")
        n = payload_len + ADTS_HEADER_BYTES
        return (self._fixed | n << _FRAME_LENGTH_SHIFT).to_bytes(ADTS_HEADER_BYTES, "big")

    def frame(self, raw: bytes | memoryview) -> bytes:
        """One raw AAC frame behind its ADTS header, in one copy."""
        return self.header(len(raw)) + raw
