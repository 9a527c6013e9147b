"""Decoded pictures are let go as soon as nothing needs them: each one held keeps a
buffer of the decoder's pool busy (3 MB at 1080p, and the pool never shrinks), so
what the tracker and the sink thread hold is what a live camera's memory peaks at."""

from __future__ import annotations

import gc
import platform
import threading
import weakref

import numpy as np
import pytest

from motionwatch.config import EventsConfig
from motionwatch.events import EventEnded, EventStarted, EventTracker
from motionwatch.model import Detection, Frame
from motionwatch.sinks.heap import give_back_free_memory
from motionwatch.sinks.runner import Sink, SinkRunner

IMG = np.zeros((4, 4, 3), np.uint8)


class Pic(Frame):
    """A Frame that a test can watch die (Frame has slots and no weak references)."""

    __slots__ = ("__weakref__",)


def alive(refs: list) -> list[int]:
    gc.collect()
    return [i for i, r in enumerate(refs) if r() is not None]


@pytest.mark.parametrize("snapshot, kept_at_5, kept_from_7", [
    ("best", [3], [7]),            # the default: only the best so far may be saved
    ("first", [2, 3], [2, 7]),     # the first is saved too
    ("both", [2, 3], [2, 7]),
])
def test_an_event_holds_only_the_pictures_it_may_save(snapshot, kept_at_5, kept_from_7):
    """A copied-clip camera (the tracker keeps no clip frames): while a streak
    builds up and while the event is open, only the frames that may become a
    snapshot (the best so far, and the first where events.snapshot saves it) are
    held, not the last one with motion."""
    tr = EventTracker("cam", EventsConfig(snapshot=snapshot), trigger_fraction=0.01, min_frames=5, fps=10,
                      clip=False)
    fractions = [0.0, 0.0, 0.02, 0.05, 0.03, 0.04, 0.02, 0.2, 0.1, 0.1, 0.1, 0.1, 0.0]
    refs, signals = [], []
    for i, frac in enumerate(fractions):
        frame = Pic(IMG, i, i / 10, 1000 + i / 10)
        refs.append(weakref.ref(frame))
        signals += tr.feed(frame, Detection(frac, [(0, 0, 2, 2)] if frac else [], None))
        del frame
        held = alive(refs)
        if i == 5:
            assert held == kept_at_5       # 4 and 5 are not kept
        if i >= 7:
            assert held == kept_from_7     # the event's new best
    ev = next(s for s in signals if isinstance(s, EventStarted)).event
    assert (ev.first.index, ev.best.index, ev.last_motion.index) == (2, 7, 11)
    assert (ev.first.ts, ev.first.wall) == (0.2, 1000.2)   # the event's start, picture or not
    ended = tr.flush("source ended")[0]
    assert (ended.record.start_frame, ended.record.end_frame) == (2, 11)
    assert ended.record.peak_fraction == 0.2


def test_a_first_frame_that_is_the_best_keeps_its_picture():
    tr = EventTracker("cam", EventsConfig(), trigger_fraction=0.01, min_frames=3, fps=10, clip=False)
    refs, signals = [], []
    for i, frac in enumerate([0.3, 0.1, 0.1, 0.1, 0.0]):
        frame = Pic(IMG, i, i / 10, 1000 + i / 10)
        refs.append(weakref.ref(frame))
        signals += tr.feed(frame, Detection(frac, [(0, 0, 2, 2)] if frac else [], None))
        del frame
        assert alive(refs) == [0]
    ev = next(s for s in signals if isinstance(s, EventStarted)).event
    assert ev.first is ev.best and ev.best.image is IMG


class Seen(Sink):
    def __init__(self):
        self.done = threading.Event()

    def handle(self, signal) -> None:
        if isinstance(signal, EventEnded):
            self.done.set()


def test_the_sink_thread_lets_go_of_an_ended_event():
    """Between events the sink thread holds nothing of the last one (its snapshot
    pictures were kept until the next event began)."""
    tr = EventTracker("cam", EventsConfig(), trigger_fraction=0.01, min_frames=1, fps=10, clip=False)
    sink = Seen()
    runner = SinkRunner([sink])
    refs = []
    for i, frac in enumerate([0.1, 0.2, 0.1]):
        frame = Pic(IMG.copy(), i, i / 10, 1000 + i / 10)
        refs.append(weakref.ref(frame))
        for s in tr.feed(frame, Detection(frac, [(0, 0, 2, 2)], None)):
            runner.put(s)
        del frame
    for s in tr.flush("camera lost"):
        runner.put(s)
    del s
    try:
        assert sink.done.wait(10)
        for _ in range(50):    # the worker drops its reference right after the last sink returns
            if not alive(refs):
                break
            threading.Event().wait(0.05)
        assert alive(refs) == []
    finally:
        runner.close()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's; other C libraries have nothing to fix")
def test_freed_memory_can_be_given_back_to_the_system():
    """The sink thread trims glibc's heap after each event (see sinks/heap.py): the call must reach glibc."""
    assert give_back_free_memory()
