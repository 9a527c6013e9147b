"""Hooks, webhooks and MQTT for the events an archive scan writes.

Workers scan into private folders and have no notifiers; the client that writes
each event into the recordings tells the configured notifiers about it as a
single-file scan's sinks would: an EventStarted, then an EventEnded with its
event.json already written. So a folder, split or cluster scan notifies like
`scan FILE` does, each event once, when its file's events are written.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from motionwatch.archive.join import folder_of
from motionwatch.archive.task import FoundEvent
from motionwatch.config import Config
from motionwatch.events import EventEnded, EventStarted, OpenEvent
from motionwatch.model import Event, Frame
from motionwatch.sinks.notify.build import integration_sinks

log = logging.getLogger("motionwatch")


class Notifier:
    def __init__(self, cfg: Config):
        self.root = Path(cfg.recordings.path)
        self.sinks = integration_sinks(cfg)

    def saved(self, ev: FoundEvent) -> None:
        """Tell every notifier about an event just written into the recordings."""
        if not self.sinks:
            return
        for signal in replay(ev, self.root):
            for sink in self.sinks:
                try:
                    sink.handle(signal)
                except Exception:   # noqa: BLE001  (a notifier's bug must not stop the scan)
                    log.exception("%s: notifying event %s failed", sink.name, ev.record["id"])

    def close(self) -> None:
        """Let queued hooks and webhooks go out (each sink bounds its own wait)."""
        for sink in self.sinks:
            sink.close()


def replay(ev: FoundEvent, root: Path) -> tuple[EventStarted, EventEnded]:
    """The start and end signals of a written event, as its scan's tracker emitted them."""
    rec = ev.record
    folder = root / folder_of(ev.files)
    image = _snapshot(ev, root)   # MQTT sends the picture with the start
    wall = ev.wall if ev.wall is not None else datetime.fromisoformat(rec["start"]).timestamp()
    first = Frame(image, rec["start_frame"], rec["start_offset_s"], wall)
    last = Frame(image, rec["end_frame"], rec["end_offset_s"], wall + rec["end_offset_s"] - rec["start_offset_s"])
    boxes = [tuple(b) for b in rec.get("boxes") or []]
    opened = OpenEvent(rec["id"], rec["camera"], first, boxes, first, first, boxes, rec["peak_fraction"], 1)
    ended = replace(opened, last_motion=last, frames_with_motion=rec["frames_with_motion"])
    return (EventStarted(opened, []),
            EventEnded(ended, Event.from_dict(rec), ev.reason or "source ended", saved=rec, folder=str(folder)))


def _snapshot(ev: FoundEvent, root: Path) -> np.ndarray:
    """The event's snapshot decoded, or a black pixel when it has none. Its bytes are
    the ones just written (`ev.files`), read back from disk only when not among them."""
    image, name = None, ev.record.get("snapshot")
    if name:
        blob = ev.files.get(name)
        data = np.frombuffer(blob, np.uint8) if blob is not None else np.fromfile(root / name, np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return image if image is not None else np.zeros((1, 1, 3), np.uint8)
