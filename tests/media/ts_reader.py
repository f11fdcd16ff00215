"""A deliberately plain MPEG-TS reader for tests: it checks structure as it goes, so a test
that reads our muxer's output with it also checks packet syntax, CCs and PSI CRCs."""

from __future__ import annotations

from dataclasses import dataclass, field

from livechannel.media.mpegts import crc32_mpeg2


@dataclass
class Pes:
    pid: int
    stream_id: int
    pts_90k: int | None
    dts_90k: int | None
    payload: bytes
    random_access: bool
    pcr_90k: int | None  # PCR in the first packet of this PES, if any


@dataclass
class TsContents:
    pat_pmt_pid: int | None = None
    pcr_pid: int | None = None
    streams: dict[int, int] = field(default_factory=dict)  # pid -> stream_type
    pes: list[Pes] = field(default_factory=list)
    pcrs: list[tuple[int, int]] = field(default_factory=list)  # (packet index, pcr_90k)
    cc_errors: list[str] = field(default_factory=list)
    packets: int = 0


def _timestamp(b: bytes) -> int:
    assert b[0] & 1 and b[2] & 1 and b[4] & 1, "marker bits"
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _section(payload: bytes) -> bytes:
    pointer = payload[0]
    sec = payload[1 + pointer :]
    length = ((sec[1] & 0x0F) << 8) | sec[2]
    sec = sec[: 3 + length]
    assert crc32_mpeg2(sec[:-4]) == int.from_bytes(sec[-4:], "big"), "PSI CRC"
    return sec


def read_ts(data: bytes, cc_state: dict[int, int] | None = None) -> TsContents:
    """Parse a whole TS; `cc_state` carries continuity counters across segments."""
    assert len(data) % 188 == 0, "whole packets"
    out = TsContents()
    cc_state = {} if cc_state is None else cc_state
    current: dict[int, tuple[bytearray, bool, int | None]] = {}
    pending: list[tuple[int, bytearray, bool, int | None]] = []
    for index in range(len(data) // 188):
        pkt = data[index * 188 : (index + 1) * 188]
        assert pkt[0] == 0x47, "sync byte"
        pusi = bool(pkt[1] & 0x40)
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        afc = (pkt[3] >> 4) & 0x3
        cc = pkt[3] & 0x0F
        assert afc != 0, "reserved adaptation_field_control"
        pos = 4
        random_access = False
        pcr = None
        if afc & 0x2:
            af_len = pkt[4]
            assert af_len <= (182 if afc == 0x3 else 183)
            if afc == 0x2:
                assert af_len == 183, "adaptation-only packet fills the packet"
            if af_len:
                flags = pkt[5]
                random_access = bool(flags & 0x40)
                if flags & 0x10:
                    b = pkt[6:12]
                    pcr = (int.from_bytes(b[:4], "big") << 1) | (b[4] >> 7)
                    assert b[4] & 0x7E == 0x7E, "PCR reserved bits"
                    out.pcrs.append((index, pcr))
                assert all(x == 0xFF for x in pkt[6 + (6 if flags & 0x10 else 0) : 5 + af_len])
            pos = 5 + af_len
        if afc & 0x1:
            if pid in cc_state and cc != (cc_state[pid] + 1) & 0xF:
                out.cc_errors.append(f"pid {pid:#x} packet {index}: {cc_state[pid]} -> {cc}")
            cc_state[pid] = cc
        payload = pkt[pos:] if afc & 0x1 else b""
        out.packets += 1
        if pid == 0:
            sec = _section(payload)
            assert sec[0] == 0
            out.pat_pmt_pid = ((sec[10] & 0x1F) << 8) | sec[11]
            continue
        if pid == out.pat_pmt_pid:
            sec = _section(payload)
            assert sec[0] == 2
            out.pcr_pid = ((sec[8] & 0x1F) << 8) | sec[9]
            pos = 12 + (((sec[10] & 0x0F) << 8) | sec[11])
            while pos < len(sec) - 4:
                stream_type = sec[pos]
                es_pid = ((sec[pos + 1] & 0x1F) << 8) | sec[pos + 2]
                out.streams[es_pid] = stream_type
                pos += 5 + (((sec[pos + 3] & 0x0F) << 8) | sec[pos + 4])
            continue
        if pusi:
            if pid in current:
                buf, ra, p = current.pop(pid)
                pending.append((pid, buf, ra, p))
            current[pid] = (bytearray(payload), random_access, pcr)
        elif payload:
            assert pid in current, "continuation without a start"
            current[pid][0].extend(payload)
    pending.extend((pid, buf, ra, p) for pid, (buf, ra, p) in current.items())
    for pid, buf, ra, p in pending:
        out.pes.append(_parse_pes(pid, bytes(buf), ra, p))
    return out


def _parse_pes(pid: int, buf: bytes, random_access: bool, pcr: int | None) -> Pes:
    assert buf[:3] == b"\x00\x00\x01", "PES start code"
    stream_id = buf[3]
    length = int.from_bytes(buf[4:6], "big")
    flags = buf[7]
    header_len = buf[8]
    pts = dts = None
    if flags & 0x80:
        pts = _timestamp(buf[9:14])
        assert buf[9] >> 4 == (0x3 if flags & 0x40 else 0x2)
    if flags & 0x40:
        dts = _timestamp(buf[14:19])
        assert buf[14] >> 4 == 0x1
    payload = buf[9 + header_len :]
    if length:
        assert length == len(buf) - 6, "PES_packet_length"
    return Pes(pid, stream_id, pts, dts, payload, random_access, pcr)
