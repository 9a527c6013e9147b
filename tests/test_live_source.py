"""LiveSource, the reader thread every live camera shares: a frame the capture loop
will not analyse waits to be taken with the next one instead of waking the loop,
and is neither lost nor reordered; a source with small frames hands them out in
batches."""

from __future__ import annotations

import queue
import time

import pytest

from conftest import wait_until
from motionwatch.sources.base import MAX_HELD, LiveSource, SourceOptions


class Fed(LiveSource):
    """A camera whose frames the test hands in; it counts the wake-ups of readers."""

    kind = "camera"

    def __init__(self, analysed=None):
        super().__init__("fed", SourceOptions(analysed=analysed))
        self.feed: queue.Queue = queue.Queue()
        self.wakeups = 0
        notify_all = self._cond.notify_all

        def counted() -> None:
            self.wakeups += 1
            notify_all()
        self._cond.notify_all = counted

    def _connect(self):
        return None

    def _grab(self):
        return self.feed.get()

    def put(self, *names: str) -> None:
        """Hand frames in and wait until the reader has them all."""
        want = self._seq + len(names)
        for name in names:
            self.feed.put(name)
        wait_until(lambda: self._seq == want, what=f"the reader to grab {names}")

    def end(self) -> None:
        self.feed.put(None)
        self.close()


@pytest.fixture
def every_other():
    src = Fed(analysed=lambda index, ts, arrived: index % 2 == 0)
    src.open()
    yield src
    src.end()


def test_a_frame_the_loop_will_not_analyse_goes_with_the_next_one(every_other):
    src = every_other
    src.put("f0")
    assert src.read(5).image == "f0"
    woken = src.wakeups
    src.put("f1", "f2")     # f1 is not analysed: kept, not dropped, and no wake-up for it
    got = [src.read(1), src.read(1)]
    assert [(f.image, f.index) for f in got if f is not None] == [("f1", 1), ("f2", 2)]
    assert src.wakeups == woken + 1
    assert src.stats().dropped == 0
    assert got[1].ts >= got[0].ts


def test_a_frame_the_loop_will_analyse_is_still_dropped_for_a_newer_one(every_other):
    """The newest frame wins as before, so the loop never falls behind the camera."""
    src = every_other
    src.put("f0")
    src.read(5)
    src.put("f1", "f2", "f3")   # f2 (analysed) is overtaken by f3 before it is taken
    got = [src.read(1), src.read(1)]
    assert [f.image for f in got if f is not None] == ["f1", "f3"]
    assert src.stats().dropped == 1


def test_without_a_schedule_only_the_newest_frame_is_handed_out():
    src = Fed()
    src.open()
    try:
        src.put("f0")
        src.read(5)
        src.put("f1", "f2")
        assert src.read(5).image == "f2"
        assert src.stats().dropped == 1
    finally:
        src.end()


@pytest.fixture
def batching():
    src = Fed(analysed=lambda index, ts, arrived: True)
    src.open()
    yield src
    src.end()


def test_a_batch_waits_for_its_oldest_frame_to_be_due_and_goes_out_whole(batching):
    """Small frames (JPEG bytes) wait for the loop even when it analyses them all,
    until the oldest has waited batch_s: the loop takes them in one go, in order, and
    none is dropped for a newer one."""
    src = batching
    src.batch_s = 0.4
    src.put("f0")
    assert src.read(5).image == "f0"
    t0 = time.monotonic()
    src.put("f1", "f2", "f3")
    got = [src.read(5) for _ in range(3)]
    waited = time.monotonic() - t0
    assert [(f.image, f.index) for f in got] == [("f1", 1), ("f2", 2), ("f3", 3)]
    assert 0.35 <= waited < 2.0
    assert src.stats().dropped == 0


def test_a_full_batch_goes_out_at_once(batching):
    """A batch does not wait past BATCH_HELD frames: a slow loop is not made slower."""
    src = batching
    src.batch_s = 30.0
    names = [f"f{i}" for i in range(MAX_HELD + 1)]
    t0 = time.monotonic()
    src.put(*names)
    got = [src.read(5) for _ in names]
    assert [f.image for f in got] == names
    assert time.monotonic() - t0 < 5.0
    assert src.stats().dropped == 0
