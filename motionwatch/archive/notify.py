"""Hooks, webhooks and MQTT for the events an archive scan writes.

Workers scan into private folders and have no notifiers; the client that writes
each event into the recordings tells the configured notifiers about it as a
single-file scan's sinks would: an EventStarted, then an EventEnded with its
event.json already written. So a folder, split or cluster scan notifies like
`scan FILE` does, each event once, when its file's events are written; and
once across runs: a rerun after an interrupted one does not tell the same
events again (Sent).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from motionwatch.archive.ledger import Ledger
from motionwatch.archive.task import FoundEvent
from motionwatch.config import Config
from motionwatch.events import EventEnded, EventStarted, OpenEvent
from motionwatch.index.database import EVENT_JSON, EventIndex
from motionwatch.model import Event, Frame
from motionwatch.pipeline.runtime import build_sinks
from motionwatch.sinks import Sink, SinkRunner
from motionwatch.sinks.notify.build import integration_sinks

log = logging.getLogger("motionwatch")


class Sent:
    """Which of one file's events the notifiers were told of (start, end), kept in the
    index: a run that scans the file again after an interrupted one (Ctrl-C, a killed
    worker or client) finds the same events, and each is told once. Forgotten when the
    file is scanned anew (--rescan, a changed file or settings: ledger.begin)."""

    def __init__(self, ledger: Ledger, path: Path, camera: str):
        self.index, self.key, self.camera = ledger.index, Ledger.key(path), camera
        self.told = ledger.index.notified(self.key, camera)

    def before(self, start_frame: int, state: str) -> bool:
        # A frame apart is the same event: rows written by versions that split long files
        # into segments could put its start a frame off.
        return any((f, state) in self.told for f in (start_frame - 1, start_frame, start_frame + 1))

    def add(self, start_frame: int, state: str) -> None:
        self.told.add((start_frame, state))
        self.index.set_notified(self.key, self.camera, start_frame, state)


class Notifiers(Sink):
    """The notifying sinks as one, telling each event's start and end once (`Sent`);
    other signals go to them as they are."""

    name = "notifiers"

    def __init__(self, sinks: list[Sink], sent: Sent | None = None):
        self.sinks = sinks
        self.sent = sent

    def handle(self, signal) -> None:
        self.tell(signal, self.sent)

    def tell(self, signal, sent: Sent | None) -> None:
        once = _once(signal)
        if once is not None and sent is not None and sent.before(*once):
            return
        for sink in self.sinks:
            try:
                sink.handle(signal)
            except Exception:   # noqa: BLE001  (a notifier's bug must not stop the scan or the others)
                log.exception("%s failed on %s", sink.name, type(signal).__name__)
        if once is not None and sent is not None:
            sent.add(*once)

    def close(self) -> None:
        """Let queued hooks and webhooks go out (each sink bounds its own wait)."""
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:   # noqa: BLE001
                log.exception("closing %s failed", sink.name)


def _once(signal) -> tuple[int, str] | None:
    """(start frame, state) of an event's start or end, the signals told once."""
    if isinstance(signal, EventStarted):
        return signal.event.first.index, "start"
    if isinstance(signal, EventEnded):
        return signal.record.start_frame, "end"
    return None


def scan_sinks(cfg: Config, index: EventIndex, sent: Sent) -> SinkRunner:
    """A single-file scan's sinks, the notifiers telling each event once across an
    interrupted run and its resumption."""
    return build_sinks(cfg, index, scan=True, notifiers=[Notifiers(integration_sinks(cfg), sent)])


class Notifier:
    """The archive scan's notifiers, told of each event as its file's events are written."""

    def __init__(self, cfg: Config):
        self.root = Path(cfg.recordings.path)
        self.group = Notifiers(integration_sinks(cfg))

    def saved(self, ev: FoundEvent, sent: Sent | None = None) -> None:
        """Tell every notifier about an event just written into the recordings."""
        if not self.group.sinks:
            return
        for signal in replay(ev, self.root):
            self.group.tell(signal, sent)

    def close(self) -> None:
        self.group.close()


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


def folder_of(files: dict[str, bytes]) -> Path:
    """An event's folder (relative to the recordings root) from its files' paths."""
    return next(Path(rel).parent for rel in files if Path(rel).name == EVENT_JSON)
