"""What the notifying sinks share: a bounded background worker, and the event
record they send.

Hooks, webhooks and MQTT must never hold up the sink worker (which writes the
recordings) nor the capture loop: each has its own thread behind a bounded
queue; when the queue is full, new jobs are dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from motionwatch.events import EventEnded, EventStarted
from motionwatch.index.database import event_folder

log = logging.getLogger("motionwatch.sinks")

_STOP = object()


class Worker:
    """One daemon thread running `handler(job)` for each submitted job, in order."""

    def __init__(self, name: str, handler: Callable[[Any], None], maxsize: int = 100):
        self.name = name
        self.handler = handler
        self.dropped = 0
        self.accepted = 0
        self.done = 0
        self._q: queue.Queue = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> bool:
        """Queue a job without ever blocking; False (and counted) when the queue is full."""
        try:
            self._q.put_nowait(job)
            self.accepted += 1
            return True
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("%s: queue full (%d waiting); %d job(s) dropped so far",
                            self.name, self._q.maxsize, self.dropped)
            return False

    def _work(self) -> None:
        while True:
            job = self._q.get()
            if job is _STOP:
                return
            try:
                self.handler(job)
            except Exception:  # a bad job must not kill the worker
                log.exception("%s failed", self.name)
            self.done += 1

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished yet (queued or running)."""
        return self.accepted - self.done

    def close(self, timeout: float) -> bool:
        """Finish the queued jobs (within `timeout` in all); True when all were done."""
        end = time.monotonic() + timeout
        try:
            self._q.put(_STOP, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(max(0.0, end - time.monotonic()))
        return not self._thread.is_alive()


def event_record(signal, root: Path) -> dict:
    """The event as hooks, webhooks and MQTT send it: event.json's fields plus
    `state` (start/end), `folder` (relative to the recordings root) and, at the
    end, `reason`. At the start the snapshot is not written yet (null)."""
    if isinstance(signal, EventStarted):
        ev = signal.event
        rec = ev.record().to_dict()
        folder = event_folder(root, ev.camera, ev.first.wall, ev.id)
        first = folder / "first.jpg"   # written by the recorder, which runs first, when snapshot is first/both
        rec.update(state="start", folder=_rel(folder, root), snapshot=_rel(first, root) if first.exists() else None)
        return rec
    if isinstance(signal, EventEnded):
        rec = dict(signal.saved) if signal.saved else signal.record.to_dict()
        folder = Path(signal.folder) if signal.folder else event_folder(
            root, signal.event.camera, signal.event.first.wall, signal.event.id)
        rec.update(state="end", reason=signal.reason, folder=_rel(folder, root))
        return rec
    raise TypeError(f"not an event signal: {type(signal).__name__}")


def _rel(path: Path, root: Path) -> str:
    # Resolved: the recorder may name folders from a relative root, the notifiers from an absolute one.
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)
