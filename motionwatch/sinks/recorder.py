"""Writes each event's folder: snapshot JPEG(s), thumbnail, event.json, index row.

Every file is written under a temporary name and renamed, and event.json is
written last, so a folder with an event.json always holds a whole event.
A failed write is logged once per event and never stops detection.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from motionwatch.config import EventsConfig, RecordingsConfig
from motionwatch.events import EventEnded, EventStarted
from motionwatch.model import Frame, iso
from motionwatch.sinks.runner import Sink
from motionwatch.store import EVENT_JSON, EventIndex, event_folder, write_atomic, write_json_atomic

log = logging.getLogger("motionwatch.recorder")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def annotate(image: np.ndarray, boxes, wall: float, camera: str) -> np.ndarray:
    """A copy of the frame with motion boxes and the time drawn on it."""
    out = image.copy()
    scale = max(1, out.shape[1] // 640)
    for x, y, w, h in boxes:
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 0, 255), 2 * scale)
    text = f"{camera}  {iso(wall)[:19].replace('T', ' ')}"
    cv2.putText(out, text, (10, 28 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 0, 0), 4 * scale)
    cv2.putText(out, text, (10, 28 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255), 1 * scale)
    return out


class Recorder(Sink):
    name = "recorder"

    def __init__(self, rec: RecordingsConfig, ev: EventsConfig, index: EventIndex | None = None,
                 extra: dict | None = None):
        self.root = Path(rec.path)
        self.rec = rec
        self.ev = ev
        self.index = index
        self.extra = extra or {}   # per-camera facts for event.json (fps, size, source)
        self.folders: dict[str, Path] = {}
        self.failed: set[str] = set()
        self.saved = 0

    def handle(self, signal) -> None:
        if isinstance(signal, EventStarted):
            self._started(signal)
        elif isinstance(signal, EventEnded):
            self._ended(signal)

    def _started(self, s: EventStarted) -> None:
        ev = s.event
        folder = event_folder(self.root, ev.camera, ev.first.wall, ev.id)
        self.folders[ev.id] = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if self.ev.snapshot in ("first", "both"):
                self._jpeg(folder / "first.jpg", ev.first.image)
        except OSError as e:
            self._fail(ev.id, folder, e)

    def _ended(self, s: EventEnded) -> None:
        ev, rec = s.event, s.record.to_dict()
        folder = self.folders.pop(ev.id, None) or event_folder(self.root, ev.camera, ev.first.wall, ev.id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            rec.update(self._snapshots(folder, ev))
            rec.update(self.extra.get(ev.camera, {}))
            rec.setdefault("clip", None)
            rec["kept"] = False
            write_json_atomic(folder / EVENT_JSON, rec)
        except OSError as e:
            self._fail(ev.id, folder, e)
            return
        finally:
            self.failed.discard(ev.id)
        s.saved, s.folder = rec, str(folder)
        if self.index is not None:
            try:
                self.index.add(rec, folder)
            except Exception as e:  # the index is rebuildable from event.json
                log.error("could not add event %s to %s: %s (run `motionwatch events --reindex`)",
                          ev.id, self.index.root / "events.db", e)
        self.saved += 1
        log.info("%s: event %s ended: %.1f s, peak %.1f%%, %s", ev.camera, ev.id,
                 rec["end_offset_s"] - rec["start_offset_s"], 100 * rec["peak_fraction"],
                 folder / Path(rec["snapshot"]).name if rec.get("snapshot") else folder)

    def _snapshots(self, folder: Path, ev) -> dict:
        rel = lambda p: str(p.relative_to(self.root))  # noqa: E731
        out: dict = {}
        primary: Frame = ev.first if self.ev.snapshot == "first" else ev.best
        boxes = ev.first_boxes if self.ev.snapshot == "first" else ev.best_boxes
        snap = folder / ("first.jpg" if self.ev.snapshot == "first" else "snapshot.jpg")
        if not snap.exists():
            self._jpeg(snap, primary.image)
        out["snapshot"] = rel(snap)
        out["boxes"] = [list(b) for b in boxes]
        if self.ev.snapshot == "both":
            out["snapshot_first"] = rel(folder / "first.jpg")
            out["boxes_first"] = [list(b) for b in ev.first_boxes]
        h, w = primary.image.shape[:2]
        tw = min(self.ev.thumbnail_width, w)
        thumb = cv2.resize(primary.image, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA)
        self._jpeg(folder / "thumb.jpg", thumb, quality=80)
        out["thumbnail"] = rel(folder / "thumb.jpg")
        out["frame_size"] = [w, h]
        if self.ev.annotate:
            self._jpeg(folder / "annotated.jpg", annotate(primary.image, boxes, primary.wall, ev.camera))
            out["annotated"] = rel(folder / "annotated.jpg")
        return out

    def _jpeg(self, path: Path, image: np.ndarray, quality: int | None = None) -> None:
        write_atomic(path, encode_jpeg(image, quality or self.rec.jpeg_quality))

    def _fail(self, event_id: str, folder: Path, err: OSError) -> None:
        if event_id not in self.failed:
            self.failed.add(event_id)
            log.error("cannot write event %s to %s: %s; detection goes on", event_id, folder,
                      err.strerror or err)
