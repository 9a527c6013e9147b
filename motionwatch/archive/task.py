"""One unit of scanning work, run in a worker process (local or on a Dask worker).

A task scans one whole file into a private temporary recordings folder, then
hands back each of its events as the event.json record plus the bytes of its
files. The client writes them into the
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
    detect_every: int = 1
    key: int = 0              # the task's place in the client's plan
    decoder_threads: int = 0  # FFmpeg threads per worker, so --jobs N stays about N cores (0: the default)
    decode_jobs: int = 0      # worker processes decoding a long file (sources.parallel; 0: none)
    decode_cluster: str | None = None   # ... or a Dask cluster's workers (its address)


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


class TaskLoop(CameraLoop):
    """The capture loop over one file in a worker: reports progress, and remembers
    each event's first wall time and why it ended (the client's notifiers need both)."""

    def __init__(self, task: ScanTask, cfg: Config, stop: threading.Event, on_frames=None):
        super().__init__(cfg.cameras[0], cfg, None, stop, scan=True, start_wall=task.start_wall)
        self.detect_every = task.detect_every
        self.decoder_threads = task.decoder_threads
        self.decode_jobs = task.decode_jobs
        self.decode_cluster = task.decode_cluster
        self.on_frames = on_frames
        self.walls: dict[str, float] = {}     # event id -> wall time of its first frame
        self.reasons: dict[str, str] = {}     # event id -> why it ended

    def _process(self, frame) -> None:
        super()._process(frame)
        if self.on_frames is not None and self.status.frames % PROGRESS_EVERY == 0:
            self.on_frames(PROGRESS_EVERY)

    def _emit(self, signal) -> None:
        if isinstance(signal, EventStarted):
            self.walls[signal.event.id] = signal.event.first.wall
        elif isinstance(signal, EventEnded):
            self.reasons[signal.event.id] = signal.reason
        super()._emit(signal)


def run_task(task: ScanTask, cancel: threading.Event | None = None, on_frames=None) -> TaskResult:
    """Scan the task's frames; `cancel` (Ctrl-C at the client) finishes the open event and returns."""
    sweep_stale_temp()
    tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-")
    try:
        cfg = replace(task.config, recordings=replace(task.config.recordings, path=tmp),
                      cameras=(replace(task.config.cameras[0], name=task.camera, source=task.path),))
        stop = threading.Event()
        loop = TaskLoop(task, cfg, stop, on_frames)
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
                          missing_at_end=0 if interrupted else stats.missing_at_end,
                          events=folder_events(Path(tmp), loop), interrupted=interrupted)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def folder_events(root: Path, loop: TaskLoop) -> list[FoundEvent]:
    """The events in a task's folder, with the bytes of their files."""
    out = []
    for folder in iter_event_folders(root):
        if not (folder / EVENT_JSON).exists():
            continue
        record = read_event(folder / EVENT_JSON)
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(folder.rglob("*"))
                 if p.is_file() and not p.name.startswith(TMP_PREFIX)}
        out.append(FoundEvent(record, files, loop.walls.get(record["id"]), loop.reasons.get(record["id"])))
    return out
