"""Writes each event's folder: snapshot JPEG(s), thumbnail, clip parts,
event.json, index row.

Every file is written under a temporary name and renamed, and event.json is
written last, so a folder with an event.json always holds a whole event and a
folder without one is never shown as an event. A failed write (disk full,
read-only or removed folder) is logged once, saying "disk full" when that is the
cause, never stops detection, and what could not be written is retried on later
signals: when writing works again the event is completed (late events are not
re-announced to hooks or MQTT). "Works again" is said only once a whole event,
clip included, was written and the disk is not full.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from motionwatch.config import EventsConfig, RecordingsConfig
from motionwatch.index.diskspace import disk_full, write_problem
from motionwatch.events import ClipPackets, ClipPart, EventEnded, EventFrame, EventStarted, OpenEvent
from motionwatch.media.frames import widened
from motionwatch.model import Frame, iso
from motionwatch.sinks.clip import EventClip, choose_format
from motionwatch.sinks.clip_decode import PacketEncodeClip
from motionwatch.sinks.clip_remux import PacketClip
from motionwatch.sinks.runner import Sink
from motionwatch.index.database import EVENT_JSON, EventIndex, event_folder, write_atomic, write_json_atomic

log = logging.getLogger("motionwatch.recorder")

RETRY_EVERY_S = 5.0     # how often unfinished events are retried (wall clock)
MAX_PENDING = 20        # unfinished events kept in memory for a retry (~1 MB each)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return buf.tobytes()


def shown(frame: Frame, picture: np.ndarray) -> np.ndarray:
    """A frame's picture as a player shows it: non-square pixels (Frame.sar) widened."""
    return widened(picture, frame.sar, frame.rotation)


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


@dataclass
class Finish:
    """What an ended event still needs on disk; kept until it is all written."""

    event_id: str
    camera: str
    folder: Path
    record: dict
    jpegs: dict[str, bytes]                       # file name -> encoded bytes
    clip: EventClip | PacketClip | None = None


class Recorder(Sink):
    name = "recorder"

    def __init__(self, rec: RecordingsConfig, ev: EventsConfig, index: EventIndex | None = None,
                 extra: dict | None = None):
        self.root = Path(rec.path)
        self.rec = rec
        self.ev = ev
        self.index = index
        self.extra = extra or {}   # per-camera facts for event.json (fps, size, source)
        self._fmt = choose_format(ev.clip_codec)
        self.folders: dict[str, Path] = {}
        self.clips: dict[str, EventClip | PacketClip] = {}
        self.pending: list[Finish] = []
        self.broken: str | None = None    # the error being reported, until writing works again
        self._next_retry = 0.0

    # -- signals ------------------------------------------------------------------

    def handle(self, signal) -> None:
        if isinstance(signal, EventFrame):
            clip = self.clips.get(signal.event.id)
            if clip is not None:
                clip.add(signal.frame, signal.cut)
                self._clip_trouble(signal.event.id, clip)
            return
        if isinstance(signal, ClipPackets):
            self._packets(signal)
            return
        if self.pending and time.monotonic() >= self._next_retry:
            self._retry()
        if isinstance(signal, EventStarted):
            self._started(signal)
        elif isinstance(signal, ClipPart):
            clip = self.clips.get(signal.event.id)
            if clip is not None:
                clip.split()
        elif isinstance(signal, EventEnded):
            self._ended(signal)

    def close(self) -> None:
        for clip in self.clips.values():
            clip.finish()
        if self.pending:
            self._retry()
        for task in self.pending:
            log.error("event %s could not be saved to %s before exit; its files stay hidden "
                      "and retention removes them", task.event_id, task.folder)

    def _started(self, s: EventStarted) -> None:
        ev = s.event
        folder = event_folder(self.root, ev.camera, ev.first.wall, ev.id)
        self.folders[ev.id] = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if self.ev.snapshot in ("first", "both"):
                # Written now so a crash mid-event still leaves the moment it began.
                write_atomic(folder / "first.jpg", encode_jpeg(ev.first.image, self.rec.jpeg_quality))
        except OSError as e:
            self._fail(ev.id, folder, e)
        if self.ev.clip and s.preroll:
            clip = EventClip(folder, self._fmt, ev.clip_fps)
            for f in s.preroll:
                clip.add(f)
            self.clips[ev.id] = clip

    def _packets(self, s: ClipPackets) -> None:
        """A clip made from the source's packets (copied or encoded): the first batch
        opens the clip, the last ends it."""
        ev = s.event
        clip = self.clips.get(ev.id)
        if clip is None:
            if not self.ev.clip or ev.id not in self.folders:
                return
            folder = self.folders[ev.id]
            if s.copy:
                clip = PacketClip(folder, ev, s.template, s.time_base, ev.clip_fps, self.ev.max_seconds, s.first)
            else:
                clip = PacketEncodeClip(folder, ev, s.template, s.time_base, self._fmt, ev.clip_fps,
                                        (self.ev.pre_roll_seconds, self.ev.post_roll_seconds), self.ev.clip_width,
                                        self.ev.max_seconds, s.first)
            self.clips[ev.id] = clip
        if not isinstance(clip, (PacketClip, PacketEncodeClip)):
            return
        clip.packets(s.packets, s.upto)
        if s.end is not None:
            clip.end(s.end, s.at_eof)
        self._clip_trouble(ev.id, clip)

    def _clip_trouble(self, event_id: str, clip) -> None:
        """Report what went wrong with a clip since the last call: a write failure
        puts the recorder in its broken state; a source the clip cannot be made of
        (or not all of) is a warning: the disk is fine."""
        if len(clip.errors) > clip.reported:
            clip.reported = len(clip.errors)
            self._fail(event_id, clip.folder, OSError(0, clip.errors[-1]))
        while clip.refused:
            log.warning("event %s: %s", event_id, clip.refused.pop(0))

    def _ended(self, s: EventEnded) -> None:
        ev = s.event
        folder = self.folders.pop(ev.id, None) or event_folder(self.root, ev.camera, ev.first.wall, ev.id)
        clip = self.clips.pop(ev.id, None)
        if clip is not None:
            clip.finish()
        rec = s.record.to_dict()
        rec.update(self.extra.get(ev.camera, {}))
        try:
            jpegs = self._snapshots(rec, folder, ev)
        except OSError as e:   # encoding only: nothing on disk yet
            self._fail(ev.id, folder, e)
            return
        task = Finish(ev.id, ev.camera, folder, rec, jpegs, clip)
        if self._complete(task):
            s.saved, s.folder = task.record, str(folder)
        else:
            self._keep(task)

    # -- writing ------------------------------------------------------------------

    def _snapshots(self, rec: dict, folder: Path, ev: OpenEvent) -> dict[str, bytes]:
        """Encode the snapshot JPEGs and fill in their fields; returns name -> bytes."""
        rel = lambda name: str((folder / name).relative_to(self.root))  # noqa: E731
        q = self.rec.jpeg_quality
        first = self.ev.snapshot == "first"
        primary = ev.first if first else ev.best
        boxes = ev.first_boxes if first else ev.best_boxes
        name = "first.jpg" if first else "snapshot.jpg"
        jpegs: dict[str, bytes] = {}
        if self.ev.snapshot in ("first", "both") and not (folder / "first.jpg").exists():
            jpegs["first.jpg"] = encode_jpeg(shown(ev.first, ev.first.image), q)
        if not first:
            jpegs["snapshot.jpg"] = encode_jpeg(shown(ev.best, ev.best.image), q)
        rec["snapshot"] = rel(name)
        rec["boxes"] = [list(b) for b in boxes]
        if self.ev.snapshot == "both":
            rec["snapshot_first"] = rel("first.jpg")
            rec["boxes_first"] = [list(b) for b in ev.first_boxes]
        h, w = primary.image.shape[:2]
        rec["frame_size"] = [w, h]   # stored pixels, as the boxes
        if primary.sar is not None:
            rec["pixel_aspect"] = [primary.sar.numerator, primary.sar.denominator]
        picture = shown(primary, primary.image)
        sh, sw = picture.shape[:2]
        tw = min(self.ev.thumbnail_width, sw)
        thumb = cv2.resize(picture, (tw, max(1, round(sh * tw / sw))), interpolation=cv2.INTER_AREA)
        jpegs["thumb.jpg"] = encode_jpeg(thumb, 80)
        rec["thumbnail"] = rel("thumb.jpg")
        if self.ev.annotate:
            drawn = annotate(primary.image, boxes, primary.wall, ev.camera)
            jpegs["annotated.jpg"] = encode_jpeg(shown(primary, drawn), q)
            rec["annotated"] = rel("annotated.jpg")
        rec["kept"] = False
        return jpegs

    def _complete(self, task: Finish) -> bool:
        """Write what the event still lacks, event.json last; False if it must wait."""
        folder, rec = task.folder, task.record
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in list(task.jpegs.items()):
                write_atomic(folder / name, data)
                del task.jpegs[name]
            rec.update(self._clip_fields(task))
            write_json_atomic(folder / EVENT_JSON, rec)
        except OSError as e:
            self._fail(task.event_id, folder, e)
            return False
        clip = task.clip
        if clip is not None and len(clip.errors) > clip.reported:
            what = write_problem(OSError(0, "; ".join(dict.fromkeys(clip.errors[clip.reported:]))), self.root)
            log.error("%s: event %s: clip incomplete (%s); the event is saved with what was written",
                      task.camera, task.event_id, what)
            clip.reported = len(clip.errors)
        if (clip is None or not clip.errors) and not disk_full(self.root):
            self._ok()   # a whole event with its whole clip: only that shows writing works again
        self._index(rec, folder)
        log.info("%s: event %s ended: %.1f s, peak %.1f%%, %s", task.camera, task.event_id,
                 rec["end_offset_s"] - rec["start_offset_s"], 100 * rec["peak_fraction"],
                 self.root / (rec.get("clip") or rec["snapshot"]))
        return True

    def _clip_fields(self, task: Finish) -> dict:
        """Rename parts left whole but unrenamed; list the parts that exist."""
        clip = task.clip
        if clip is None:
            return {"clip": None, "clip_parts": []}
        for tmp, final in list(clip.unrenamed):
            if tmp.exists():
                os.replace(tmp, final)   # an OSError here keeps the task pending
            clip.unrenamed.remove((tmp, final))
            if final.exists():
                clip.done.append(final)
            else:
                clip.errors.append(f"{final.name} was lost before it could be renamed")
        existing = [p for p in sorted(clip.done) if p.exists()]
        parts = [str(p.relative_to(self.root)) for p in existing]
        return {"clip": parts[0] if parts else None, "clip_parts": parts, **clip.summary(existing)}

    def _index(self, rec: dict, folder: Path) -> None:
        if self.index is None:
            return
        try:
            self.index.add(rec, folder)
        except Exception as e:  # the index is rebuildable from event.json
            log.error("could not add event %s to %s: %s (run `motionwatch events --reindex`)",
                      rec["id"], self.index.root / "events.db", e)

    def _keep(self, task: Finish) -> None:
        self.pending.append(task)
        if len(self.pending) > MAX_PENDING:
            lost = self.pending.pop(0)
            log.error("%s: event %s dropped: %d events already wait for the recordings folder "
                      "to be writable", lost.camera, lost.event_id, MAX_PENDING)
        self._next_retry = time.monotonic() + RETRY_EVERY_S

    def _retry(self) -> None:
        waiting, self.pending = self.pending, []
        for i, task in enumerate(waiting):
            if self._complete(task):
                log.info("%s: event %s written after all", task.camera, task.event_id)
            else:
                self.pending.extend(waiting[i:])   # still failing: keep order, try later
                break
        self._next_retry = time.monotonic() + RETRY_EVERY_S

    # -- health -------------------------------------------------------------------

    def _fail(self, event_id: str, folder: Path, err: OSError) -> None:
        """Log the first failure clearly; repeats of it only at debug level."""
        reason = write_problem(err, self.root)
        if self.broken is None:
            self.broken = reason
            log.error("cannot write event %s to %s: %s; detection goes on and recording resumes "
                      "when writing works again", event_id, folder, reason)
        else:
            log.debug("still cannot write event %s to %s: %s", event_id, folder, reason)

    def _ok(self) -> None:
        if self.broken is not None:
            log.warning("writing to %s works again", self.root)
            self.broken = None
