"""One unit of scanning work, run in a worker process (local or on a Dask worker).

A task scans a whole file or one segment of it (plan.Segment) into a private
temporary recordings folder, then hands back each of its own events as the
event.json record plus the bytes of its files. The client writes them into the
real recordings and the one index: one SQLite writer, nothing half-done on
shared storage, and a task that dies (a killed worker) leaves nothing behind,
so Dask can simply run it again.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from motionwatch.archive.plan import WHOLE, Segment
from motionwatch.config import Config
from motionwatch.errors import SourceError
from motionwatch.pipeline import CameraLoop
from motionwatch.sinks import SinkRunner
from motionwatch.sinks.recorder import Recorder
from motionwatch.store import EVENT_JSON, TMP_PREFIX, EventIndex, iter_event_folders, read_event

# How many frames a worker reads between progress reports.
PROGRESS_EVERY = 16


@dataclass(frozen=True)
class ScanTask:
    path: str
    camera: str
    config: Config
    start_wall: float
    segment: Segment = WHOLE
    detect_every: int = 1
    key: int = 0              # the task's place in the client's plan


@dataclass
class FoundEvent:
    record: dict
    files: dict[str, bytes]   # path relative to the recordings root -> contents


@dataclass
class TaskResult:
    task: ScanTask
    frames: int = 0
    decode_failures: int = 0
    missing_at_end: int = 0
    events: list[FoundEvent] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False


class SegmentLoop(CameraLoop):
    """The capture loop over one segment: opens the file at the segment's keyframe
    and stops once past its end with no event open or starting."""

    def __init__(self, task: ScanTask, cfg: Config, stop: threading.Event, on_frames=None):
        super().__init__(cfg.cameras[0], cfg, None, stop, scan=True, start_wall=task.start_wall)
        self.segment = task.segment
        self.detect_every = task.detect_every
        self.on_frames = on_frames

    def source_options(self):
        return replace(super().source_options(), start_pts=self.segment.start_pts,
                       first_index=self.segment.first_index)

    def _process(self, frame) -> None:
        super()._process(frame)
        if self.on_frames is not None and self.status.frames % PROGRESS_EVERY == 0:
            self.on_frames(PROGRESS_EVERY)
        end = self.segment.own_end
        if end is not None and frame.index >= end and self.tracker.open is None \
                and (not self.tracker.run or self.tracker.run[0][0].index >= end):
            self.stop.set()


def run_task(task: ScanTask, cancel: threading.Event | None = None, on_frames=None) -> TaskResult:
    """Scan the task's frames; `cancel` (Ctrl-C at the client) finishes the open event and returns."""
    tmp = tempfile.mkdtemp(prefix="motionwatch-scan-")
    try:
        cfg = replace(task.config, recordings=replace(task.config.recordings, path=tmp),
                      cameras=(replace(task.config.cameras[0], name=task.camera, source=task.path),))
        stop = threading.Event()
        loop = SegmentLoop(task, cfg, stop, on_frames)
        try:
            src = loop.open()
        except SourceError as e:
            return TaskResult(task, error=str(e))
        index = EventIndex(Path(tmp))
        loop.sinks = SinkRunner([Recorder(cfg.recordings, cfg.events, index)], max_frames=30, wait_for_room=True)
        watcher = _forward(cancel, stop)
        try:
            loop.run()
        finally:
            loop.sinks.close()
            index.close()
            watcher.set()
        stats = src.stats()
        interrupted = cancel is not None and cancel.is_set()
        return TaskResult(task, frames=loop.status.frames, decode_failures=stats.decode_failures,
                          missing_at_end=0 if interrupted else missing(stats, task.segment),
                          events=own_events(Path(tmp), task.segment), interrupted=interrupted)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def missing(stats, seg: Segment) -> int:
    """Frames a truncated file promised but never gave; only the last segment reaches the end,
    and its source counts frames from its own start (the forgiveness is the source's)."""
    if seg.own_end is not None:
        return 0
    return max(0, stats.missing_at_end - seg.first_index) if stats.missing_at_end else 0


def _forward(cancel: threading.Event | None, stop: threading.Event) -> threading.Event:
    """Set `stop` when `cancel` is set (it may be a multiprocessing Event); returns
    an event that ends the watch."""
    done = threading.Event()
    if cancel is None:
        return done

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(0.2):
                stop.set()
                return
    threading.Thread(target=watch, name="cancel-watch", daemon=True).start()
    return done


def own_events(root: Path, seg: Segment) -> list[FoundEvent]:
    """The events that start inside the segment's own range, with their files' bytes."""
    out = []
    for folder in iter_event_folders(root):
        if not (folder / EVENT_JSON).exists():
            continue
        record = read_event(folder / EVENT_JSON)
        if record["start_frame"] < seg.own_start or (seg.own_end is not None and record["start_frame"] >= seg.own_end):
            continue
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(folder.rglob("*"))
                 if p.is_file() and not p.name.startswith(TMP_PREFIX)}
        out.append(FoundEvent(record, files))
    return out
