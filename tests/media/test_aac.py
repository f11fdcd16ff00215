"""AudioSpecificConfig -> AudioConfig -> ADTS header: one table drives both directions."""

from __future__ import annotations

import pytest

from livechannel.media.aac import (
    adts_header,
    adts_unsupported_reason,
    parse_audio_specific_config,
)
from livechannel.media.errors import MediaError
from livechannel.media.frames import AudioConfig

# (case, ASC hex, object type, rate, channels, sampling index, ADTS header for 100-byte payload)
ASC_TABLE = [
    ("ffmpeg aac 44.1 kHz stereo (with SBR sync extension)", "121056e500",
     2, 44100, 2, 4, "fff150800d7ffc"),
    ("ffmpeg aac 48 kHz mono", "1188", 2, 48000, 1, 3, "fff14c400d7ffc"),
    ("48 kHz stereo", "1190", 2, 48000, 2, 3, "fff14c800d7ffc"),
    ("OBS 44.1 kHz stereo", "1210", 2, 44100, 2, 4, "fff150800d7ffc"),
    ("22.05 kHz mono", "1388", 2, 22050, 1, 7, "fff15c400d7ffc"),
    ("8 kHz 5.1", "15b0", 2, 8000, 6, 11, "fff16d800d7ffc"),
    ("7.1 (configuration 7 = 8 channels)", "11b8", 2, 48000, 8, 3, "fff14dc00d7ffc"),
    ("AAC Main 44.1 stereo", "0a10", 1, 44100, 2, 4, "fff110800d7ffc"),
    ("explicit 44100 Hz -> index 4", "17805622" "10", 2, 44100, 2, 4, "fff150800d7ffc"),
    ("HE-AAC explicit: core 24 kHz, output 48 kHz", "2b098800", 2, 48000, 1, 6,
     "fff158400d7ffc"),
    ("HE-AACv2 (PS) explicit: mono core at 24 kHz, output 48 kHz", "eb098800", 2, 48000, 1, 6,
     "fff158400d7ffc"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "asc", "aot", "rate", "channels", "index", "adts"), ASC_TABLE)
def test_asc_to_adts(
    case: str, asc: str, aot: int, rate: int, channels: int, index: int, adts: str
) -> None:
    config = parse_audio_specific_config(bytes.fromhex(asc))
    assert config == AudioConfig("AAC", aot, rate, channels, index), case
    assert adts_unsupported_reason(config) is None
    assert adts_header(config, 100).hex() == adts


def test_adts_frame_length_field() -> None:
    config = parse_audio_specific_config(bytes.fromhex("1210"))
    for payload in (0, 1, 255, 256, 2048, 8184):
        h = adts_header(config, payload)
        assert len(h) == 7
        assert ((h[3] & 0x3) << 11) | (h[4] << 3) | (h[5] >> 5) == payload + 7
    with pytest.raises(MediaError):
        adts_header(config, 8185)


@pytest.mark.parametrize(
    ("case", "asc", "reason_has"),
    [
        ("USAC via escape 31 (31 + 6 bits = 42)", "f9446000", "object type 42"),
        ("AAC-ELD via escape (39)", "f8e62000", "object type 39"),
        ("ER AAC LD (23)", "b9880000", "object type 23"),
        ("non-table explicit rate 50000 Hz", "178061a810", "50000 Hz"),
        ("PCE-defined channels", "1200", "PCE"),
        ("6.1 (configuration 11)", "11d8", "7 channels"),
    ],
)
def test_valid_asc_that_adts_cannot_carry(case: str, asc: str, reason_has: str) -> None:
    config = parse_audio_specific_config(bytes.fromhex(asc))
    reason = adts_unsupported_reason(config)
    assert reason is not None and reason_has in reason, case
    with pytest.raises(MediaError):
        adts_header(config, 10)


@pytest.mark.parametrize(
    "asc",
    ["", "12", "1680", "1678", "0010", "1780000000", "1278", "2b0f"],
)
def test_malformed_asc(asc: str) -> None:
    """Truncated, reserved sampling index 13/14, reserved channel config, null object type,
    explicit 0 Hz, and HE-AAC cut inside its extension."""
    with pytest.raises(MediaError):
        parse_audio_specific_config(bytes.fromhex(asc))
