"""One unit of scanning work, run in a worker process (local or on a Dask worker).

A task scans a whole file or one segment of it (plan.Segment) into a private
temporary recordings folder, then hands back each of its own events as the
event.json record plus the bytes of its files. The client writes them into the
real recordings and the one index: one SQLite writer, nothing half-done on
shared storage, and a task that dies (a killed worker) leaves nothing behind,
so Dask can simply run it again.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from motionwatch.archive.join import BEST_FILES, is_clip
from motionwatch.archive.plan import WHOLE, Segment
from motionwatch.config import Config
from motionwatch.errors import SourceError
from motionwatch.events import EventEnded, EventStarted
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sinks import SinkRunner
from motionwatch.sinks.recorder import Recorder
from motionwatch.index.database import EVENT_JSON, TMP_PREFIX, EventIndex, iter_event_folders, read_event

# How many frames a worker reads between progress reports.
PROGRESS_EVERY = 16
# A task's temporary folder: <prefix><host>-<pid>-<random>, so a later task on the
# same machine can tell one whose process is gone (a killed worker) and remove it.
TEMP_PREFIX = "motionwatch-scan-"


@dataclass(frozen=True)
class ScanTask:
    path: str
    camera: str
    config: Config
    start_wall: float
    segment: Segment = WHOLE
    detect_every: int = 1
    key: int = 0              # the task's place in the client's plan
    cut: bool = True          # may cut an event still open at its end (join.py joins the halves)
    decoder_threads: int = 0  # FFmpeg threads per worker, so --jobs N stays about N cores (0: the default)


@dataclass
class FoundEvent:
    record: dict
    files: dict[str, bytes]   # path relative to the recordings root -> contents
    wall: float | None = None     # epoch time of its first frame, exactly (the folder's name comes from it)
    reason: str | None = None     # why it ended ("gap", "source ended", ...), for the notifiers


@dataclass
class TaskResult:
    task: ScanTask
    frames: int = 0
    decode_failures: int = 0
    missing_at_end: int = 0
    events: list[FoundEvent] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False
    cut: dict | None = None            # the event cut open at own_end: join.py's facts about it
    continued: FoundEvent | None = None   # the tail of the previous segment's event, from own_start on
    continued_facts: dict | None = None


class SegmentLoop(CameraLoop):
    """The capture loop over one segment: opens the file at the segment's keyframe
    and stops at its end. An event still open there is cut (join.py joins it with
    the next segment's continuation); a motion streak just starting is read on
    until it is decided."""

    def __init__(self, task: ScanTask, cfg: Config, stop: threading.Event, on_frames=None):
        super().__init__(cfg.cameras[0], cfg, None, stop, scan=True, start_wall=task.start_wall)
        self.segment = task.segment
        self.detect_every = task.detect_every
        self.decoder_threads = task.decoder_threads
        self.on_frames = on_frames
        self.may_cut = task.cut
        self.cut: dict | None = None
        self.continued: dict | None = None
        self.scheduled = task.segment.first_index == 0   # detection.fps schedule taken up
        self.walls: dict[str, float] = {}     # event id -> wall time of its first frame
        self.reasons: dict[str, str] = {}     # event id -> why it ended

    def source_options(self):
        return replace(super().source_options(), start_pts=self.segment.start_pts,
                       first_index=self.segment.first_index)

    def _process(self, frame) -> None:
        seg = self.segment
        if not self.scheduled:
            self.scheduled = True   # from the first frame decoded (a damaged one may have been skipped)
            if self._detect_interval:
                # Take up the schedule a scan from frame 0 has on reaching this frame, so a
                # segment analyses the same frames (a file's frame times are index / fps).
                fps = self.source.fps
                for i in range(frame.index):
                    self._due(i, i / fps)
        if frame.index == seg.own_start and seg.first_index < seg.own_start:
            self._continue_from(frame)
        super()._process(frame)
        if self.on_frames is not None and self.status.frames % PROGRESS_EVERY == 0:
            self.on_frames(PROGRESS_EVERY)
        end = seg.own_end
        if end is None or frame.index < end - 1:
            return
        ev = self.tracker.open
        if ev is not None and frame.index == end - 1 and self._can_cut():
            self.cut = {"id": ev.id, "last_motion": ev.last_motion.index, "peak": ev.peak,
                        "first_pts": getattr(ev.first, "pts", None),
                        "last_pts": getattr(ev.last_motion, "pts", None)}
            self.stop.set()
        elif frame.index >= end and ev is None and (not self.tracker.run or self.tracker.run[0][0].index >= end):
            self.stop.set()

    def _can_cut(self) -> bool:
        """Only when the joined clip can be remuxed from the file's packets (or there is no clip)."""
        copying = self.source is not None and self.source.copying
        return self.may_cut and (copying or not self.cfg.events.clip)

    def _continue_from(self, frame) -> None:
        """An event open before our first own frame is the previous segment's, which was
        cut there: from here on count only our frames, so the halves add up."""
        ev = self.tracker.open if self.tracker is not None else None
        if ev is None:
            return
        self.continued = {"id": ev.id, "last_motion": ev.last_motion.index,
                          "base_frames": ev.frames_with_motion, "reason": None, "end_pts": None}
        ev.peak = -1.0   # the next frame with motion becomes the best of our half

    def _emit(self, signal) -> None:
        if isinstance(signal, EventStarted):
            self.walls[signal.event.id] = signal.event.first.wall
        elif isinstance(signal, EventEnded):
            self.reasons[signal.event.id] = signal.reason
        cont = self.continued
        if isinstance(signal, EventEnded) and cont is not None and signal.event.id == cont["id"]:
            cont["reason"], cont["peak"] = signal.reason, signal.event.peak
            cont["end_pts"] = getattr(signal.event.last_motion, "pts", None)
        super()._emit(signal)


def run_task(task: ScanTask, cancel: threading.Event | None = None, on_frames=None) -> TaskResult:
    """Scan the task's frames; `cancel` (Ctrl-C at the client) finishes the open event and returns."""
    sweep_stale_temp()
    tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-")
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
        result = TaskResult(task, frames=loop.status.frames, decode_failures=stats.decode_failures,
                            missing_at_end=0 if interrupted else missing(stats, task.segment),
                            events=own_events(Path(tmp), task.segment, loop), interrupted=interrupted,
                            cut=loop.cut)
        if loop.continued is not None and loop.continued["reason"] is not None:
            # Only what the join takes from a continuation: its record and, when its best
            # frame wins, the files that show it (the clip is remuxed from the file).
            found = folder_events(Path(tmp), lambda r: r["id"] == loop.continued["id"], loop,
                                  lambda _r, p: p.name in BEST_FILES)
            result.continued, result.continued_facts = (found[0], loop.continued) if found else (None, None)
        return result
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


def sweep_stale_temp() -> int:
    """Remove the temporary folders of tasks on this machine whose process is gone
    (a worker killed mid-task cannot clean up after itself); how many."""
    host, removed = socket.gethostname(), 0
    for folder in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{host}-*"):
        owner, pid, _ = folder.name.rsplit("-", 2)
        if owner != TEMP_PREFIX + host or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += not folder.exists()
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True    # someone else's process
    return True


def own_events(root: Path, seg: Segment, loop: SegmentLoop) -> list[FoundEvent]:
    """The events that start inside the segment's own range, with their files' bytes;
    but not the clip of the event cut at the segment's end: the client remuxes the
    whole event's clip from the file (join.py), so this half would be read, held and
    sent (across the network, on a cluster) only to be thrown away."""
    cut = loop.cut["id"] if loop.cut is not None else None
    return folder_events(root, lambda r: seg.own_start <= r["start_frame"]
                         and (seg.own_end is None or r["start_frame"] < seg.own_end), loop,
                         lambda r, p: r["id"] != cut or not is_clip(p.name))


def folder_events(root: Path, keep, loop: SegmentLoop, wanted=lambda _record, _path: True) -> list[FoundEvent]:
    """The events in a task's folder whose record `keep` accepts, with the bytes of
    their files that `wanted(record, path)` accepts."""
    out = []
    for folder in iter_event_folders(root):
        if not (folder / EVENT_JSON).exists():
            continue
        record = read_event(folder / EVENT_JSON)
        if not keep(record):
            continue
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(folder.rglob("*"))
                 if p.is_file() and not p.name.startswith(TMP_PREFIX) and (p.name == EVENT_JSON or wanted(record, p))}
        out.append(FoundEvent(record, files, loop.walls.get(record["id"]), loop.reasons.get(record["id"])))
    return out
