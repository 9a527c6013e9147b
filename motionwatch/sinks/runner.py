"""A worker thread that feeds tracker signals to the sinks behind a bounded queue.

The capture loop only appends to the queue and never waits: when too many
clip frames are waiting (a slow disk), new ones are dropped and counted.
Start/part/end signals are never dropped; they are few and small.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from motionwatch.events import EventEnded, EventFrame, EventStarted
from motionwatch.sinks.heap import give_back_free_memory

log = logging.getLogger(__name__)

# Clip frames queued before the worker is woken, and how long a smaller batch waits
# while an event is open. Between events nothing comes unannounced and the worker
# sleeps until woken: a poll five times a second was 2 % of a live camera's CPU.
WAKE_BATCH = 4
BATCH_WAIT_S = 0.2


class Sink:
    """One consumer of signals. `handle` runs on the sink worker thread."""

    name = "sink"

    def handle(self, signal) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SinkRunner:
    """`max_frames` and `max_bytes` bound the clip frames waiting (120 frames is
    ~5 s at 25 fps, several times an encoder hiccup; 256 MiB caps it at ~90
    1280x720 or ~40 1920x1080 frames). `wait_for_room` is for `scan`, where
    nothing is live: the reader waits for the encoder instead of dropping."""

    def __init__(self, sinks: list[Sink], max_frames: int = 120, max_bytes: int = 256 * 2**20,
                 wait_for_room: bool = False):
        self.sinks = list(sinks)
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.wait_for_room = wait_for_room
        self._q: deque = deque()
        self._frames = 0
        self._bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._work, name="sinks", daemon=True)
        self._thread.start()

    def put(self, signal) -> bool:
        """Queue a signal without ever blocking; False when a frame was dropped."""
        with self._cond:
            if isinstance(signal, EventFrame):
                size = signal.frame.nbytes
                while self.wait_for_room and self._full(size) and self._thread.is_alive():
                    self._cond.wait(0.5)
                if self._full(size):
                    self.dropped += 1
                    return False
                self._frames += 1
                self._bytes += size
            else:
                size = 0
            # The size is kept with the signal: a lazy frame decoded meanwhile (the
            # live view asked for its colour) must be taken off the budget as counted.
            self._q.append((signal, size))
            # Clip frames wake the worker a few at a time: a wake-up (and GIL
            # hand-off) per frame was a large share of an MJPEG camera's capture thread.
            if size == 0 or len(self._q) >= WAKE_BATCH:
                self._cond.notify()
        return True

    def _full(self, size: int) -> bool:
        return self._frames >= self.max_frames or (self._frames > 0 and self._bytes + size > self.max_bytes)

    def _work(self) -> None:
        open_events: set[int] = set()   # while any is open, clip frames may wait unannounced (fewer than a batch)
        while True:
            with self._cond:
                while not self._q and not self._closing:
                    # fewer frames than a batch are written this late
                    self._cond.wait(BATCH_WAIT_S if open_events else None)
                if not self._q and self._closing:
                    return
                signal, size = self._q.popleft()
                if isinstance(signal, EventFrame):
                    self._frames -= 1
                    self._bytes -= size
                    self._cond.notify_all()
            for sink in self.sinks:
                try:
                    sink.handle(signal)
                except Exception:  # one broken sink must not stop the others or capture
                    log.exception("%s failed on %s", sink.name, type(signal).__name__)
            ended = isinstance(signal, EventEnded)
            if ended:
                open_events.discard(id(signal.event))
            elif isinstance(signal, (EventStarted, EventFrame)):
                open_events.add(id(signal.event))
            # Let go of it before waiting: an EventEnded holds the event's first and best
            # pictures (3 MB each at 1080p, the snapshot's BGR 6 MB more) until the next signal.
            signal = None
            if ended:
                give_back_free_memory()

    def close(self, timeout: float = 30.0) -> bool:
        """Finish what is queued, then close the sinks; True if all was written."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing %s failed", sink.name)
        return done
