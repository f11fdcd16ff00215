"""RFC 6381 codec strings for CODECS= (RFC 8216bis 4.4.6.2), multivariant-playlist ready:
built from the decoder configurations the publisher sent.

- H.264: `avc1.PPCCLL` (profile_idc, constraint flags, level_idc of the SPS; RFC 6381 3.3).
- HEVC: `hvc1.<profile space+idc>.<compat flags reversed, hex>.<tier><level>.<constraint
  bytes>` (ISO 14496-15 E.3), from the hvcC header.
- AV1: `av01.<profile>.<level><tier>.<bit depth>` (AV1 ISOBMFF binding, Codecs Parameter
  String), from the av1C header.
- VP9: `vp09.<profile>.<level>.<bit depth>` (VP9 ISOBMFF binding), from vpcC.
- AAC: `mp4a.40.<audio object type>`.
"""

from __future__ import annotations

from livechannel.media.frames import AudioConfig, VideoConfig


def video_codec_string(config: VideoConfig) -> str:
    if config.codec == "H264":
        sps = config.sps[0]
        return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"
    record = config.record
    if config.codec == "HEVC" and len(record) >= 13:
        space, tier, profile = record[1] >> 6, (record[1] >> 5) & 1, record[1] & 0x1F
        compat = int.from_bytes(record[2:6], "big")
        compat_reversed = int(f"{compat:032b}"[::-1], 2)
        constraints = bytes(record[6:12]).rstrip(b"\x00")
        parts = [
            "hvc1",
            ("", "A", "B", "C")[space] + str(profile),
            f"{compat_reversed:X}",
            ("H" if tier else "L") + str(record[12]),
            *(f"{b:X}" for b in constraints),
        ]
        return ".".join(parts)
    if config.codec == "AV1" and len(record) >= 3:
        profile, level = record[1] >> 5, record[1] & 0x1F
        tier_letter = "H" if record[2] & 0x80 else "M"
        high, twelve = record[2] & 0x40, record[2] & 0x20
        depth = 12 if high and twelve else 10 if high else 8
        return f"av01.{profile}.{level:02d}{tier_letter}.{depth:02d}"
    if config.codec == "VP9" and len(record) >= 7:
        profile, level, depth = record[4], record[5], record[6] >> 4
        return f"vp09.{profile:02d}.{level:02d}.{depth:02d}"
    return config.codec.lower()


def audio_codec_string(config: AudioConfig) -> str:
    return "opus" if config.codec == "Opus" else f"mp4a.40.{config.object_type}"


def codecs_attribute(video: VideoConfig | None, audio: AudioConfig | None) -> str:
    """The CODECS attribute value of a variant carrying these tracks."""
    names = [video_codec_string(video)] if video else []
    names += [audio_codec_string(audio)] if audio else []
    return ",".join(names)
