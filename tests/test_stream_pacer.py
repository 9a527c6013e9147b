"""`media.clock.StreamPacer`: a stream that arrives a segment at a time (HLS) is
handed on at the pace of its timestamps, while a stream that arrives steadily
is never held back by more than its own jitter, and no frame is held longer
than the bound (a clock that jumped, or a camera clock running slow)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from motionwatch.media.clock import StreamPacer

TB = Fraction(1, 90000)   # MPEG-TS ticks
FRAME = 3600              # 1/25 s


def test_a_burst_is_spread_over_the_time_its_timestamps_span():
    pacer = StreamPacer(TB, 40.0)
    now = 100.0
    holds = [pacer.delay(i * FRAME, now + i * 0.001) for i in range(50)]   # 2 s of frames within 50 ms
    assert holds[0] == 0.0
    for i in range(1, 50):
        assert holds[i] == pytest.approx(i * 0.04 - i * 0.001)


def test_a_steady_stream_is_held_only_by_its_jitter_and_late_frames_move_the_schedule():
    pacer = StreamPacer(TB, 40.0)
    jitter = [0.0, 0.012, -0.008, 0.02, -0.015, 0.005, 0.03, 0.0]
    holds = [pacer.delay(i * FRAME, 50.0 + i * 0.04 + j) for i, j in enumerate(jitter)]
    assert max(holds) <= 0.05
    # The next segment comes two seconds late: no hold, and it is the new anchor.
    assert pacer.delay(8 * FRAME, 50.0 + 8 * 0.04 + 2.0) == 0.0
    assert pacer.delay(9 * FRAME, 50.0 + 8 * 0.04 + 2.0) == pytest.approx(0.04)


def test_no_frame_is_held_past_the_bound_and_frames_without_a_time_are_not_held():
    pacer = StreamPacer(TB, 5.0)
    assert pacer.delay(0, 10.0) == 0.0
    assert pacer.delay(60 * 90000, 10.0) == 0.0          # the clock jumped a minute ahead: anchored anew
    assert pacer.delay(60 * 90000 + FRAME, 10.0) == pytest.approx(0.04)
    assert pacer.delay(None, 10.0) == 0.0
