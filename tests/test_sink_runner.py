"""The sink worker is woken for clip frames a few at a time (fewer wake-ups and GIL
hand-offs on the capture thread), yet a lone frame is written all the same, and the
start and end of an event are handed over at once."""

from __future__ import annotations

import threading
import time

import numpy as np

from motionwatch.config import EventsConfig
from motionwatch.events import EventFrame, EventStarted, EventTracker
from motionwatch.model import Detection, Frame
from motionwatch.sinks.runner import BATCH_WAIT_S, Sink, SinkRunner

IMG = np.zeros((4, 4, 3), np.uint8)


class Log(Sink):
    def __init__(self):
        self.seen: list[tuple[str, float]] = []
        self.cond = threading.Condition()

    def handle(self, signal) -> None:
        with self.cond:
            self.seen.append((type(signal).__name__, time.monotonic()))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.seen) >= n, timeout)


def test_a_lone_clip_frame_is_written_and_an_event_start_at_once():
    tr = EventTracker("cam", EventsConfig(), trigger_fraction=0.01, min_frames=1, fps=10, clip=True)
    started = tr.feed(Frame(IMG, 0, 0.0, 1000.0), Detection(0.1, [(0, 0, 2, 2)], None))
    ev = started[0].event
    assert isinstance(started[0], EventStarted)
    sink = Log()
    runner = SinkRunner([sink])
    try:
        time.sleep(0.05)             # the worker is asleep
        t0 = time.monotonic()
        runner.put(started[0])
        assert sink.wait_for(1, 5)
        assert sink.seen[0][1] - t0 < BATCH_WAIT_S   # woken for it, not found by the poll
        runner.put(EventFrame(ev, Frame(IMG, 1, 0.1, 1000.1)))    # one frame, fewer than a batch
        assert sink.wait_for(2, 5) and sink.seen[1][0] == "EventFrame"
    finally:
        assert runner.close(10)


def test_between_events_the_worker_sleeps_until_it_is_woken(monkeypatch):
    """Nothing comes unannounced between events, so the worker waits without a timeout
    (a poll five times a second was 2 % of a live camera's CPU); while an event is open
    a batch of clip frames may be short, and it looks every BATCH_WAIT_S."""
    import types

    import motionwatch.sinks.runner as runner_module
    from motionwatch.events import EventEnded

    timeouts: list = []

    class Counting(threading.Condition):
        def wait(self, timeout=None):
            timeouts.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(runner_module, "threading", types.SimpleNamespace(Condition=Counting, Thread=threading.Thread))
    tr = EventTracker("cam", EventsConfig(), trigger_fraction=0.01, min_frames=1, fps=10, clip=True)
    started = tr.feed(Frame(IMG, 0, 0.0, 1000.0), Detection(0.1, [(0, 0, 2, 2)], None))[0]
    sink = Log()
    runner = SinkRunner([sink])
    try:
        time.sleep(3 * BATCH_WAIT_S)
        assert timeouts == [None]                      # asleep, not polling
        runner.put(started)
        assert sink.wait_for(1, 5)
        time.sleep(3 * BATCH_WAIT_S)
        assert timeouts[-1] == BATCH_WAIT_S and len(timeouts) >= 3   # an event is open
        runner.put(EventEnded(started.event, started.event.record(), "gap"))
        assert sink.wait_for(2, 5)
        # The worker may still finish a BATCH_WAIT_S wait it was in when the event
        # ended (on a busy machine later than 0.05 s): wait until it has gone back to
        # sleep, then it must stay asleep.
        deadline = time.monotonic() + 5
        while timeouts[-1] is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        n = len(timeouts)
        time.sleep(3 * BATCH_WAIT_S)
        assert timeouts[-1] is None and len(timeouts) == n
    finally:
        assert runner.close(10)
