"""TsMuxer: packet syntax, PSI, PES framing, timestamps, PCR cadence, continuity counters."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.media.frames import AudioConfig, AudioFrame, VideoFrame
from livechannel.media.mpegts import (
    AUDIO_FRAMES_PER_PES,
    AUDIO_PID,
    PCR_LEAD_90K,
    PMT_PID,
    STREAM_TYPE_AAC_ADTS,
    STREAM_TYPE_H264,
    VIDEO_PID,
    TsMuxer,
    crc32_mpeg2,
)
from livechannel.media.timestamps import TS_TIME_OFFSET_90K, ts_clock_90k, ts_diff_90k

from .ts_reader import read_ts


def test_crc32_mpeg2_check_value() -> None:
    # The catalogued check value of CRC-32/MPEG-2 over the ASCII digits 1..9.
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7


def test_pat_pmt_bytes() -> None:
    m = TsMuxer(has_video=True, has_audio=True)
    psi = m.start_segment()
    assert len(psi) == 2 * 188
    pat, pmt = psi[:188], psi[188:]
    # PID 0, PUSI, payload only, CC 0; pointer 0; table 0, length 13, TSID 1, v0 current;
    # program 1 -> PMT PID 0x1000; CRC.
    assert pat[:17].hex() == "474000100000b00d0001c100000001f000"
    assert pat[21:] == b"\xff" * (188 - 21)
    # PMT: program 1, PCR PID 0x100, H.264 on 0x100, AAC/ADTS on 0x101.
    assert pmt[:27].hex() == "4750001000" + "02b0170001c10000e100f0001be100f0000fe101f000"
    contents = read_ts(psi)
    assert contents.pat_pmt_pid == PMT_PID
    assert contents.pcr_pid == VIDEO_PID
    assert contents.streams == {VIDEO_PID: STREAM_TYPE_H264, AUDIO_PID: STREAM_TYPE_AAC_ADTS}


def test_audio_only_pmt_puts_pcr_on_audio() -> None:
    contents = read_ts(TsMuxer(has_video=False, has_audio=True).start_segment())
    assert contents.pcr_pid == AUDIO_PID
    assert contents.streams == {AUDIO_PID: STREAM_TYPE_AAC_ADTS}


def test_needs_a_stream() -> None:
    with pytest.raises(ValueError):
        TsMuxer(has_video=False, has_audio=False)


def test_video_pes_fields() -> None:
    m = TsMuxer(has_video=True, has_audio=False)
    data = b"\x00\x00\x00\x01\x09\xf0" + bytes(range(256)) * 20
    frame = VideoFrame(dts_ms=1000, pts_ms=1080, keyframe=True, data=data)
    ts = m.start_segment() + m.video(frame)
    c = read_ts(ts)
    (pes,) = c.pes
    assert pes.stream_id == 0xE0
    assert pes.payload == data
    assert pes.dts_90k == 1000 * 90 + TS_TIME_OFFSET_90K
    assert pes.pts_90k == 1080 * 90 + TS_TIME_OFFSET_90K
    assert pes.random_access
    assert pes.pcr_90k == pes.dts_90k - PCR_LEAD_90K
    assert not c.cc_errors


def test_pts_only_when_pts_equals_dts() -> None:
    m = TsMuxer(has_video=True, has_audio=False)
    c = read_ts(m.video(VideoFrame(dts_ms=40, pts_ms=40, keyframe=False, data=b"x" * 10)))
    assert c.pes[0].dts_90k is None
    assert c.pes[0].pts_90k == ts_clock_90k(40)


def test_timestamps_wrap_at_33_bits() -> None:
    wrap_ms = ((1 << 33) - TS_TIME_OFFSET_90K) // 90  # the ms at which the TS clock wraps
    m = TsMuxer(has_video=True, has_audio=False)
    frames = [VideoFrame(t, t + 40, False, b"abc") for t in (wrap_ms - 40, wrap_ms + 40)]
    c = read_ts(b"".join(m.video(f) for f in frames))
    a, b = c.pes
    assert b.dts_90k is not None and a.dts_90k is not None
    assert b.dts_90k < a.dts_90k  # wrapped...
    assert ts_diff_90k(b.dts_90k, a.dts_90k) == 80 * 90  # ...but only 80 ms later


def test_pcr_cadence_with_sparse_video_and_audio() -> None:
    """5 fps video: the audio path slips PCR-only packets in so PCRs stay <= 100 ms apart."""
    m = TsMuxer(has_video=True, has_audio=True)
    out = [m.start_segment()]
    for t_ms in range(0, 2000, 200):
        out.append(m.video(VideoFrame(t_ms, t_ms, t_ms == 0, b"v" * 500)))
        for a_ms in range(t_ms, t_ms + 200, 21):
            out.append(m.audio(AudioFrame(a_ms, b"\xff\xf1" + b"a" * 300)))
    c = read_ts(b"".join(out))
    pcrs = [pcr for _, pcr in c.pcrs]
    gaps_ms = [(b - a) / 90 for a, b in itertools.pairwise(pcrs)]
    assert max(gaps_ms) <= 100
    assert min(gaps_ms) > 0  # monotonic
    assert not c.cc_errors
    assert len([p for p in c.pes if p.pid == VIDEO_PID]) == 10
    assert len([p for p in c.pes if p.pid == AUDIO_PID]) == 10 * 10


def test_pcr_not_on_every_frame_but_on_every_keyframe() -> None:
    m = TsMuxer(has_video=True, has_audio=False)
    frames = [VideoFrame(t * 33, t * 33, t % 30 == 0, b"v" * 50) for t in range(90)]
    c = read_ts(b"".join(m.video(f) for f in frames))
    with_pcr = [i for i, p in enumerate(c.pes) if p.pcr_90k is not None]
    assert {0, 30, 60} <= set(with_pcr)
    assert 20 < len(with_pcr) < 90


def test_continuity_counters_continue_across_segments() -> None:
    m = TsMuxer(has_video=True, has_audio=True)
    cc_state: dict[int, int] = {}
    for segment in range(3):
        ts = m.start_segment()
        for i in range(20):
            t = segment * 1000 + i * 50
            ts += m.video(VideoFrame(t, t, i == 0, bytes(1000 + 37 * i)))
            ts += m.audio(AudioFrame(t, bytes(200 + i)))
        c = read_ts(ts, cc_state)
        assert not c.cc_errors
        assert c.pes[0].random_access


def test_audio_only_frames_are_random_access_with_pcr() -> None:
    m = TsMuxer(has_video=False, has_audio=True)
    ts = m.start_segment() + b"".join(m.audio(AudioFrame(t, b"a" * 100)) for t in range(0, 500, 23))
    c = read_ts(ts)
    assert all(p.random_access for p in c.pes)
    assert c.pes[0].pcr_90k == ts_clock_90k(0) - PCR_LEAD_90K
    pcrs = [pcr for _, pcr in c.pcrs]
    assert max(b - a for a, b in itertools.pairwise(pcrs)) <= 100 * 90


def test_wrong_stream_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        TsMuxer(has_video=False, has_audio=True).video(VideoFrame(0, 0, True, b"x"))
    with pytest.raises(ValueError):
        TsMuxer(has_video=True, has_audio=False).audio(AudioFrame(0, b"x"))


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=1200), min_size=1, max_size=8),
    keyframes=st.lists(st.booleans(), min_size=8, max_size=8),
    audio_sizes=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_sizes_round_trip(
    sizes: list[int], keyframes: list[bool], audio_sizes: list[int]
) -> None:
    """Every PES size hits a different packet boundary (stuffing of 0, 1, 2, n bytes)."""
    m = TsMuxer(has_video=True, has_audio=True)
    ts = m.start_segment()
    videos = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    audios = [bytes([(i + 7) % 251]) * n for i, n in enumerate(audio_sizes)]
    for i, data in enumerate(videos):
        ts += m.video(VideoFrame(i * 40, i * 40 + 80, keyframes[i], data))
        if i < len(audios):
            ts += m.audio(AudioFrame(i * 40, audios[i]))
    c = read_ts(ts)
    assert not c.cc_errors
    assert [p.payload for p in c.pes if p.pid == VIDEO_PID] == videos
    assert [p.payload for p in c.pes if p.pid == AUDIO_PID] == audios[: len(videos)]
    video = [p for p in c.pes if p.pid == VIDEO_PID]
    assert [p.random_access for p in video] == keyframes[: len(videos)]
    assert all(p.pcr_90k is not None for p, k in zip(video, keyframes, strict=False) if k)


AAC_44K = AudioConfig("AAC", 2, 44_100, 2, 4)


def aac_ms(i: int) -> int:
    """Frame i's time as an RTMP publisher sends it: 1024 samples at 44.1 kHz, rounded to ms."""
    return round(i * 1024 * 1000 / 44_100)


def test_consecutive_audio_frames_share_a_pes() -> None:
    m = TsMuxer(has_video=True, has_audio=True, audio_config=AAC_44K)
    frames = [AudioFrame(aac_ms(i), bytes([i]) * (100 + i)) for i in range(12)]
    out = m.start_segment()
    for t_ms in range(0, aac_ms(12), 33):  # 30 fps video keeps the PCRs coming itself
        out += m.video(VideoFrame(t_ms, t_ms, t_ms == 0, b"v" * 100))
        out += b"".join(m.audio(f) for f in frames if t_ms <= f.pts_ms < t_ms + 33)
    assert m.buffered_bytes == len(frames[11].data)  # held, counted
    out += b"".join(m.end_fragment(None))
    assert m.buffered_bytes == 0
    pes = [p for p in read_ts(out).pes if p.pid == AUDIO_PID]
    # The segment's first frame alone (ffmpeg's HLS demuxer), then runs of the most there may be.
    groups = [frames[:1]] + [
        frames[i : i + AUDIO_FRAMES_PER_PES] for i in range(1, 12, AUDIO_FRAMES_PER_PES)
    ]
    assert [p.pts_90k for p in pes] == [ts_clock_90k(g[0].pts_ms) for g in groups]
    assert [p.payload for p in pes] == [b"".join(f.data for f in g) for g in groups]


def test_an_audio_gap_or_a_jittery_clock_starts_a_new_pes() -> None:
    m = TsMuxer(has_video=True, has_audio=True, audio_config=AAC_44K)
    times = [aac_ms(0), aac_ms(1), aac_ms(2) + 20, aac_ms(3) + 20, aac_ms(4) + 23]
    out = m.start_segment() + m.video(VideoFrame(0, 0, True, b"v" * 100))
    out += m.video(VideoFrame(60, 60, False, b"v" * 100))  # a PCR: none due from audio
    out += b"".join(m.audio(AudioFrame(t, b"a" * 50)) for t in times)
    out += b"".join(m.end_fragment(None))
    pes = [p for p in read_ts(out).pes if p.pid == AUDIO_PID]
    starts = (times[0], times[1], times[2], times[4])  # the first alone, then the gaps
    assert [p.pts_90k for p in pes] == [ts_clock_90k(t) for t in starts]


def test_pcr_cadence_with_sparse_video_and_shared_audio_pes() -> None:
    """Held audio must not take the PCR back: PCRs stay monotonic and <= 100 ms apart."""
    m = TsMuxer(has_video=True, has_audio=True, audio_config=AAC_44K)
    out = [m.start_segment()]
    i = 0
    for t_ms in range(0, 3000, 250):  # 4 fps video
        out.append(m.video(VideoFrame(t_ms, t_ms, t_ms == 0, b"v" * 500)))
        while aac_ms(i) < t_ms + 250:
            out.append(m.audio(AudioFrame(aac_ms(i), b"a" * 300)))
            i += 1
    out += m.end_fragment(None)
    c = read_ts(b"".join(out))
    gaps_ms = [(b - a) / 90 for a, b in itertools.pairwise(pcr for _, pcr in c.pcrs)]
    assert max(gaps_ms) <= 100 + 1000 * 1024 / 44_100  # the audio PES cadence, at worst
    assert min(gaps_ms) > 0
    assert not c.cc_errors
    audio = [p for p in c.pes if p.pid == AUDIO_PID]
    assert sum(len(p.payload) for p in audio) == 300 * i
