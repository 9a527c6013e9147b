"""Event tracker: tables of fraction sequences and the events they must give."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from motionwatch.config import EventsConfig
from motionwatch.events import EventEnded, EventFrame, EventStarted, EventTracker
from motionwatch.model import Detection, Frame

IMG = np.zeros((4, 4, 3), np.uint8)


@dataclass
class Case:
    name: str
    fractions: str            # one char per frame at 10 fps: '.' quiet, 'x' motion, 'X' big motion
    expected: list[tuple[int, int]]  # (start_frame, end_frame) of each event
    min_frames: int = 3
    gap: float = 1.0


CASES = [
    Case("nothing", "." * 50, []),
    Case("one visit", "....xxxxxxxx......................", [(4, 11)]),
    Case("short blip is ignored", "...xx......x.x.x.....", []),
    Case("gap shorter than gap_seconds joins", "..xxxxx.....xxxxx...............", [(2, 16)]),
    Case("gap longer than gap_seconds splits", "..xxxx..............xxxx..............", [(2, 5), (20, 23)]),
    Case("min_frames 1 takes one frame", "...x..............", [(3, 3)], min_frames=1),
    Case("open at the end is flushed", "......xxxxxxx", [(6, 12)]),
]


def run_case(case: Case) -> tuple[list, list]:
    cfg = EventsConfig(gap_seconds=case.gap, post_roll_seconds=0.5, pre_roll_seconds=0.5, clip=True)
    tr = EventTracker("cam", cfg, trigger_fraction=0.01, min_frames=case.min_frames, fps=10)
    signals = []
    for i, c in enumerate(case.fractions):
        frac = {".": 0.0, "x": 0.05, "X": 0.3}[c]
        box = [(i, 0, 2, 2)] if frac else []
        signals += tr.feed(Frame(IMG, i, i / 10, 1000 + i / 10), Detection(frac, box, None))
    signals += tr.flush("source ended")
    ended = [s for s in signals if isinstance(s, EventEnded)]
    return signals, ended


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_event_table(case):
    _, ended = run_case(case)
    assert [(e.record.start_frame, e.record.end_frame) for e in ended] == case.expected


def test_record_fields_and_best_frame():
    case = Case("peak", "...xxXxx..............", [(3, 7)])
    signals, ended = run_case(case)
    rec = ended[0].record
    assert rec.peak_fraction == pytest.approx(0.3)
    assert rec.boxes == [[5, 0, 2, 2]]          # boxes of the best frame
    assert rec.frames_with_motion == 5
    assert rec.start_offset_s == pytest.approx(0.3) and rec.end_offset_s == pytest.approx(0.7)
    assert rec.start.endswith("+00:00") or "+" in rec.start[-6:] or "-" in rec.start[-6:]


def test_preroll_and_clip_frames():
    signals, _ = run_case(Case("clip", "..........xxxxx..............", [(10, 14)]))
    started = [s for s in signals if isinstance(s, EventStarted)][0]
    pre = [f.index for f in started.preroll]
    assert pre[0] == 5 and pre[-1] == 12        # 0.5 s before the first motion frame, up to the trigger
    clip = [s.frame.index for s in signals if isinstance(s, EventFrame)]
    assert clip[0] == 13 and clip[-1] == 19     # to 0.5 s after the last motion


def test_not_ready_frames_never_start_events():
    cfg = EventsConfig()
    tr = EventTracker("cam", cfg, 0.01, 1, 10)
    out = []
    for i in range(20):
        out += tr.feed(Frame(IMG, i, i / 10, i / 10), Detection(0.5, [], None, ready=False))
    assert out == []


@pytest.mark.parametrize("pattern, started", [("..x......", False), ("..xx.....", True), ("..x.x.x..", False)])
def test_min_frames_counts_source_frames_at_a_lower_analysis_rate(pattern, started):
    """A 25 fps source analysed every third frame (detection.fps 10): min_frames 3 is
    3 source frames, so two analysed frames in a row start an event (a car crossing
    a small watched area in 9 frames was missed), while one frame, a glitch, still
    starts nothing."""
    tr = EventTracker("cam", EventsConfig(), 0.01, min_frames=3, fps=25 / 3, clip_fps=25)
    signals = []
    for k, c in enumerate(pattern):
        i = 3 * k
        signals += tr.feed(Frame(IMG, i, i / 25, 1000 + i / 25), Detection(0.05 if c == "x" else 0.0, [], None))
    assert any(isinstance(s, EventStarted) for s in signals) == started
