"""`motionwatch scan PATH...` over many files: find them, skip what was scanned,
run one task per file, write the events, print a per-file table and a total.

A file is never detected in segments side by side: the detector's state (the
background, and the per-pixel variability `mad` and flip rate, exponential
averages over tens of seconds) at a frame depends on every frame before it, and a
segment that starts later never reaches the same state bit for bit; on busy
scenes its decisions differ for minutes (docs/performance.md, 2026-12-05). When
there are fewer files than jobs, a long file's decoding is split instead: chunks
cut at clean keyframes are decoded by worker processes and detected in order
(sources.parallel), which gives exactly the events of `--jobs 1`."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import av

from motionwatch.archive.discover import find_videos
from motionwatch.archive.ledger import Ledger, config_hash, sweep_split_leftovers
from motionwatch.archive.notify import Notifier, Sent
from motionwatch.archive.runners import default_jobs, make_runner
from motionwatch.archive.task import ScanTask, TaskResult, sweep_stale_temp
from motionwatch.archive.write import save_event
from motionwatch.config.overrides import effective_config
from motionwatch.config.source_spec import camera_name_for
from motionwatch.errors import ConfigError
from motionwatch.media.probe import facts, file_start, video_stream

log = logging.getLogger("motionwatch")

MAX_JOBS = 256


@dataclass
class FileRow:
    path: Path
    camera: str
    duration: float = 0.0
    frames: int = 0
    recorded_at: float | None = None   # when the file says it was recorded (an NVR's clock)
    status: str = "done"
    events: int = 0
    tasks: list[ScanTask] = field(default_factory=list)
    results: list[TaskResult] = field(default_factory=list)
    failed: bool = False


def check_args(args) -> None:
    if not 1 <= args.detect_every <= 1000:
        raise ConfigError(f"--detect-every: {args.detect_every} is out of range; allowed: 1..1000")
    if args.jobs is not None and not 1 <= args.jobs <= MAX_JOBS:
        raise ConfigError(f"--jobs: {args.jobs} is out of range; allowed: 1..{MAX_JOBS}")
    if args.cluster and not args.cluster.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://")):
        raise ConfigError(f"--cluster: {args.cluster!r} is not allowed; allowed: a Dask scheduler address "
                          "such as tcp://HOST:8786")


def probe(path: Path) -> tuple[float, int, float | None]:
    """(duration s, frames, epoch time the file says it was recorded at or None) from
    the container's header, or a SourceError-like ValueError."""
    try:
        size = path.stat().st_size
    except OSError as e:   # gone since it was found, or a link that leads nowhere
        raise ValueError(f"cannot read it: {e.strerror or e}") from None
    if size == 0:
        raise ValueError("an empty file (0 bytes)")
    try:
        with av.open(str(path)) as c:
            stream = video_stream(c)
            if stream is None:
                raise ValueError("has no video stream")
            f = facts(stream)
    except av.FFmpegError as e:
        raise ValueError(f"cannot read any video from it: {getattr(e, 'strerror', None) or e}") from None
    fps = f.fps or 25.0
    frames = f.frames or round(f.duration_s * fps)
    return (f.duration_s or frames / fps), frames, f.recorded_at


def plan_rows(rows: list[FileRow], cfg, args, jobs: int, start_wall: float | None) -> list[ScanTask]:
    """One task per file to scan, longest first when several run at once (so no
    worker is left with a long one at the end)."""
    todo = [r for r in rows if r.status == "todo"]
    keys = itertools.count()
    threads = decoder_threads(jobs, len(todo), args.cluster)
    processes = decode_processes(jobs, len(todo), args.cluster)
    for row in todo:
        wall = start_wall if start_wall is not None else file_start(row.path, row.recorded_at, row.duration)
        # Absolute paths: a cluster's workers read the same files from other folders.
        row.tasks = [ScanTask(os.path.abspath(row.path), row.camera, cfg, wall, args.detect_every, next(keys),
                              threads, processes, args.cluster if processes else None)]
    if jobs > 1:
        todo = sorted(todo, key=lambda r: -r.frames)
    return [r.tasks[0] for r in todo]


def decoder_threads(jobs: int, tasks: int, cluster: str | None) -> int:
    """FFmpeg threads per scan, so that `--jobs N` keeps about N cores busy, as `make -j`
    does: workers that fill the jobs decode on one thread each (inside the detecting
    thread); a worker with cores to spare (one file, or fewer files than jobs) decodes
    on its share of them, frame threads working ahead while Python detects, since a
    file's frames are detected in order on one thread and decoding is the part that
    spreads (pictures above 1280x720 only: sources.pyav.scan_threads). 0 keeps the
    default (a cluster's workers: Dask sizes them)."""
    if cluster:
        return 0
    workers = 1 if jobs <= 1 or tasks <= 1 else min(jobs, tasks)
    share = min(jobs // workers, default_jobs())
    return share if share >= 2 else 1


def decode_processes(jobs: int, tasks: int, cluster: str | None) -> int:
    """Worker processes each file may be decoded on when there are fewer files than
    jobs (sources.parallel): the jobs shared out, when that gives a file two or more
    (0: decoded in its own scan's process). On a cluster only a lone file's: it is
    detected here and decoded by the cluster's workers (`jobs`: their threads)."""
    if tasks < 1 or (cluster and tasks > 1):
        return 0
    share = jobs // tasks
    return share if share >= 2 else 0


def classify(rows: list[FileRow], cfg, args, index, root: Path) -> dict[str, Ledger]:
    """Each row's length from its header and whether it is to scan ("todo"), skipped or failed;
    returns the ledger of each camera name."""
    ledgers: dict[str, Ledger] = {}
    for row in rows:
        if row.failed:
            continue
        ledgers[row.camera] = ledger = ledgers.get(row.camera) or Ledger(
            index, root, config_hash(cfg, row.camera, args.detect_every, args.start_time))
        try:
            row.duration, row.frames, row.recorded_at = probe(row.path)
        except ValueError as e:
            row.status, row.failed = f"failed: {e}", True
            continue
        if ledger.done(row.path, row.camera) and not args.rescan:
            row.status = "skipped (already scanned)"
            row.events = len(index.scanned(ledger.key(row.path), row.camera)["event_ids"])
        else:
            row.status = "todo"
    return ledgers


def scan_archive(args, found=None) -> int:
    check_args(args)
    interrupt = Interrupt()   # from here on: a Ctrl-C while planning must not lose the run either
    found = found or find_videos(args.paths)
    if not found.files:
        why = [f"{found.skipped} other file(s) skipped"] if found.skipped else []
        why += [f"{path}: {reason}" for path, reason in found.failed[:3]]
        raise ConfigError(f"scan: no video file in {' '.join(args.paths)}" + (f" ({'; '.join(why)})" if why else ""))
    args.source = str(found.files[0])
    cfg = effective_config(args)
    if cfg.source_file:   # masks are found next to it, also by workers elsewhere
        cfg = replace(cfg, source_file=str(Path(cfg.source_file).resolve()))
    start_wall = parse_start(args.start_time)
    from motionwatch.index.retention import prepare_recordings
    index, _ = prepare_recordings(cfg.recordings)
    root = Path(cfg.recordings.path)
    rows = [FileRow(p, args.camera or camera_name_for(str(p))) for p in found.files]
    rows += [FileRow(Path(m), "-", status="failed: no such file or folder", failed=True) for m in found.missing]
    rows += [FileRow(Path(m), "-", status=f"failed: {why}", failed=True) for m, why in found.failed]
    sweep_split_leftovers(index, root)
    ledgers = classify(rows, cfg, args, index, root)
    runner = make_runner(args.jobs or default_jobs(), args.cluster, 2) if args.cluster else None
    jobs = runner.jobs if runner is not None else (args.jobs or default_jobs())
    tasks = plan_rows(rows, cfg, args, jobs, start_wall)
    if runner is not None and any(t.decode_cluster for t in tasks):
        # A lone file on a cluster: detected here, its chunks decoded by the cluster.
        runner.close()
        runner = None
    runner = runner or make_runner(jobs, None, len(tasks))
    for row in rows:
        if row.status == "todo":
            ledgers[row.camera].begin(row.path, row.camera)
    t0 = time.monotonic()
    interrupt.attach(runner)
    try:
        run_all(runner, tasks, rows, Notifier(cfg), ledgers, not args.no_progress and sys.stderr.isatty())
    finally:
        interrupt.restore()
    interrupted = runner.cancel.is_set()
    print_rows(rows, time.monotonic() - t0, root, found.skipped, interrupted)
    return 1 if any(r.failed for r in rows) else 0


def parse_start(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ConfigError(f"--start-time: {text!r} is not allowed; "
                          "allowed: an ISO 8601 time such as 2026-11-25T08:30:00") from None


def run_all(runner, tasks, rows, notifier: Notifier, ledgers, show: bool) -> None:
    """Run every task, writing each file's events once all its tasks are in."""
    from tqdm import tqdm
    owner = {t.key: r for r in rows for t in r.tasks}
    todo = [r for r in rows if r.status == "todo"]
    bar = tqdm(total=sum(r.frames for r in todo) or None, unit="frame", disable=not show,
               dynamic_ncols=True, desc=f"files 0/{len(todo)}")
    files_done = 0

    def tick() -> None:
        bar.update(runner.frames - bar.n)

    try:
        for res in runner.results(tasks, tick):
            row = owner[res.task.key]
            row.results.append(res)
            finish_file(row, notifier, ledgers[row.camera])
            files_done += 1
            bar.set_description(f"files {files_done}/{len(todo)}")
    finally:
        runner.close()
        notifier.close()
        bar.close()
        sweep_stale_temp()   # a worker killed mid-task left its folder


class Interrupt:
    """First Ctrl-C/SIGTERM: the running tasks finish their open events, no new ones
    start. Second: exit at once (what is written is whole: every file was renamed
    into place)."""

    def __init__(self):
        self.runner = None
        self.asked = False
        self.old = (signal.signal(signal.SIGINT, self.handle), signal.signal(signal.SIGTERM, self.handle))

    def handle(self, signum, _frame) -> None:
        if self.asked:
            os.write(2, b"motionwatch: second signal, exiting now; events written so far are whole\n")
            if self.runner is not None:
                self.runner.abort()
            os._exit(1)
        self.asked = True
        print("\nmotionwatch: interrupted: finishing open events (Ctrl-C again to exit at once)", file=sys.stderr)
        if self.runner is not None:
            self.runner.cancel.set()

    def attach(self, runner) -> None:
        """Tell the runner, now or when asked; asked already, its tasks return at once."""
        self.runner = runner
        if self.asked:
            runner.cancel.set()

    def restore(self) -> None:
        signal.signal(signal.SIGINT, self.old[0])
        signal.signal(signal.SIGTERM, self.old[1])


def finish_file(row: FileRow, notifier: Notifier, ledger: Ledger) -> None:
    """Write a file's events, tell the notifiers, and remember how far it got."""
    [res] = row.results
    ids = []
    sent = Sent(ledger, row.path, row.camera)
    for ev in sorted(res.events, key=lambda e: e.record["start_frame"]):
        ids.append(save_event(ledger.root, ledger.index, ev))
        notifier.saved(ev, sent)
    row.events = len(ids)
    row.frames = res.frames
    grew = ledger.changed(row.path)
    done = not res.error and not res.interrupted and res.frames > 0 and not grew
    ledger.record(row.path, row.camera, ids, done=done)
    bad = res.decode_failures + res.missing_at_end
    row.status = "done"
    if res.error:
        row.status, row.failed = f"failed: {res.error}", True
    elif res.frames == 0 and not res.interrupted:
        row.status, row.failed = "failed: no frame could be decoded (damaged or not a video)", True
    elif res.interrupted:
        row.status = "interrupted (scanned again next time)" if row.frames else "not scanned (interrupted)"
    elif grew:
        row.status = "done as far as it was written; it changed while scanned (scanned again next time)"
    elif bad:
        row.status = f"done; {bad} frame(s) could not be decoded"


def print_rows(rows: list[FileRow], secs: float, root: Path, skipped: int, interrupted: bool) -> None:
    width = min(60, max(len(str(r.path)) for r in rows))
    print(f"{'file':<{width}} {'duration':>9} {'events':>6}  status")
    for r in rows:
        name = str(r.path) if len(str(r.path)) <= width else "..." + str(r.path)[-width + 3:]
        dur = f"{int(r.duration) // 60}:{r.duration % 60:04.1f}" if r.duration else "-"
        print(f"{name:<{width}} {dur:>9} {r.events:>6}  {r.status}")
    frames = sum(r.frames for r in rows if not r.status.startswith("skipped"))
    failed = sum(r.failed for r in rows)
    extra = f"; {skipped} non-video file(s) skipped" if skipped else ""
    print(f"scanned {len(rows)} file(s), {frames} frames in {secs:.1f} s: {sum(r.events for r in rows)} event(s) "
          f"in {root}; {failed} failed{extra}{'; interrupted' if interrupted else ''}")


def single_file(args) -> str | None:
    """The one file to scan in this process as before (live notifications included),
    or None when the archive path is needed: several files, a folder or glob, or a cluster."""
    if len(args.paths) != 1 or args.cluster:
        return None
    path = args.paths[0]
    found = find_videos([path])
    if Path(path).is_dir() or len(found.files) > 1 or found.skipped:
        return None
    return path
