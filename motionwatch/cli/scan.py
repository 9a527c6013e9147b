"""`motionwatch scan`: recorded videos (files, folders, globs) as fast as they decode."""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from motionwatch.cli.args import common, nonempty
from motionwatch.cli.signals import install_signals
from motionwatch.errors import ConfigError, SourceError


def add_scan(sub) -> None:
    p = sub.add_parser("scan", help="scan recorded videos (files, folders, globs) as fast as possible")
    p.add_argument("paths", nargs="+", metavar="PATH", type=nonempty, help="video files, folders (searched recursively) or globs")
    common(p, source=False)
    p.add_argument("--camera", metavar="NAME", type=nonempty, help="camera name to record under (default: each file's name)")
    p.add_argument("--jobs", type=int, metavar="N", help="about how many cores to use: worker processes, and decoder threads when they fill them; --jobs 1 keeps to one core (default: the number of cores)")
    p.add_argument("--rescan", action="store_true", help="scan files again that were scanned with the same "
                   "settings, replacing their events (default: skip them)")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT", help="run on this Dask scheduler's workers "
                   "(needs pip install '.[cluster]' in the checkout; workers read the files by the same path)")
    p.add_argument("--start-time", metavar="ISO", help="wall-clock time of the first frame "
                   "(default: the recorder's clock where the file carries it, as a Dahua .dav does; "
                   "else the file's modification time minus its length)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="analyse every Nth frame (all are still read and go into clips); "
                        "faster, but short motion may be missed (default 1)")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args) -> int:
    # Imported here: `--help` and the light commands start without OpenCV, PyAV or pydantic.
    from motionwatch.archive.command import check_args, decode_processes, decoder_threads, scan_archive, single_file
    from motionwatch.archive.ledger import open_ledger
    from motionwatch.archive.notify import Sent, scan_sinks
    from motionwatch.archive.runners import default_jobs
    from motionwatch.cli.progress import Progress
    from motionwatch.config.overrides import effective_config
    from motionwatch.config.source_spec import source_kind
    from motionwatch.index.retention import prepare_recordings
    from motionwatch.pipeline.camera import CameraLoop
    from motionwatch.pipeline.preflight import check_config, check_regular_file
    check_args(args)
    args.file = single_file(args)
    if args.file is None:   # several files, a folder or glob, or a cluster
        return scan_archive(args)
    if source_kind(args.file) != "file":
        raise ConfigError(f"scan: {args.file!r} is not a video file; use `motionwatch run --source` for live sources")
    check_regular_file(args.file, "scan")
    args.source = args.file
    cfg = effective_config(args)
    start_wall = parse_start_time(args.start_time) if args.start_time else None
    check_config(cfg, web=False, source_flag=True)
    stop = threading.Event()
    loop = CameraLoop(cfg.cameras[0], cfg, None, stop, scan=True, start_wall=start_wall)
    loop.detect_every = args.detect_every
    loop.decoder_threads = decoder_threads(args.jobs or default_jobs(), 1, None)
    loop.decode_jobs = decode_processes(args.jobs or default_jobs(), 1, None)
    src = loop.open()
    try:   # after the source opened: a bad file never touches the recordings
        index, _ = prepare_recordings(cfg.recordings, live=False)
    except BaseException:
        src.close()
        raise
    ledger, ids = open_ledger(index, cfg, args)
    if ledger.done(Path(args.file), cfg.cameras[0].name) and not args.rescan:
        src.close()
        print(f"skipped {args.file}: already scanned with these settings (--rescan to scan it again)")
        return 0
    ledger.begin(Path(args.file), cfg.cameras[0].name)
    loop.sinks = scan_sinks(cfg, index, Sent(ledger, Path(args.file), cfg.cameras[0].name))
    loop.sinks.sinks.append(ids)
    progress = Progress(src.total_frames, enabled=not args.no_progress and sys.stderr.isatty())
    loop.on_frame = lambda f, d: progress.update(f.index + 1)
    t0 = time.monotonic()
    # Ctrl-C / SIGTERM stop the loop between frames, so the open event is finished whole
    # (the handler replaces KeyboardInterrupt).
    install_signals(stop)
    try:
        with progress.logging():
            loop.run()
    finally:
        progress.close()
        loop.sinks.close()
        grew = ledger.changed(Path(args.file))
        ledger.record(Path(args.file), cfg.cameras[0].name, ids.ids,
                      done=not stop.is_set() and loop.status.frames > 0 and not grew)
    if grew:
        print(f"motionwatch: warning: {args.file} changed while it was scanned (still being recorded?); "
              "scanned as far as it was written, and scanned again next time", file=sys.stderr)
    if stop.is_set():
        print("\nmotionwatch: interrupted; events found so far are saved", file=sys.stderr)
    st = loop.status
    if st.frames == 0:
        raise SourceError(f"{args.file}: no frame could be decoded (the file is damaged or not a video)")
    secs = time.monotonic() - t0
    print(f"scanned {st.frames} frames of {args.file} in {secs:.1f} s ({st.frames / max(secs, 1e-9):.0f} fps): "
          f"{st.events} event(s) in {cfg.recordings.path}")
    report_damage(args.file, src, stop.is_set())
    return 0


# Event times are shown and stored as dates; a start this late still leaves a
# year of video before the calendar runs out (year 9999).
START_TIME_RANGE = (datetime(1970, 1, 2), datetime(9999, 1, 1))


def parse_start_time(text: str) -> float:
    """`scan --start-time`: an ISO 8601 time, as seconds since the epoch."""
    allowed = ("allowed: an ISO 8601 time from 1970-01-02 to 9998-12-31, "
               "such as 2026-11-25T08:30:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--start-time: {text!r} is not allowed; {allowed}") from None
    try:   # the range is of local times (event folders are local days): an offset can cross it
        local = datetime.fromtimestamp(when.timestamp()) if when.tzinfo else when
    except (OverflowError, OSError, ValueError):
        local = None
    if local is None or not START_TIME_RANGE[0] <= local < START_TIME_RANGE[1]:
        raise ConfigError(f"--start-time: {text!r} is out of range; {allowed}")
    return when.timestamp()


def report_damage(name: str, src, interrupted: bool) -> None:
    """Say how much of a damaged or truncated file could not be decoded."""
    stats = src.stats()
    bad = stats.decode_failures
    missing = 0 if interrupted else stats.missing_at_end
    if not bad and not missing:
        return
    total = stats.total_frames or (stats.frames_read + bad + missing)
    parts = [f"{bad} damaged frame(s) skipped"] if bad else []
    if missing:
        parts.append(f"the last {missing} frame(s) missing (the file looks truncated; "
                     f"decoding stopped at {src.stopped_at:.1f} s)")
    print(f"motionwatch: warning: {name}: {bad + missing} of {total} frames "
          f"({100 * (bad + missing) / max(total, 1):.0f}%) could not be decoded: {'; '.join(parts)}",
          file=sys.stderr)
