"""The `run`, `scan`, `events` and `check-config` subcommands.

Each `add_*` registers a subparser; REGISTRY lists them all. Other features
register their commands here too, one line each.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from motionwatch.cli import common, effective_config, nonempty
from motionwatch.config import Config, to_plain
from motionwatch.errors import ConfigError, MotionwatchError, SourceError
from motionwatch.pipeline.camera import BACKOFF_CAP, BACKOFF_START, CameraLoop
from motionwatch.pipeline.preflight import check_config, check_regular_file, check_seconds
from motionwatch.cli.progress import Progress
from motionwatch.sinks import SinkRunner
from motionwatch.sinks.recorder import Recorder
from motionwatch.sources import redact, source_kind
from motionwatch.index.database import EventIndex

log = logging.getLogger("motionwatch")

# After a stop, how long `run` waits for capture loops to hand over their open events.
SHUTDOWN_JOIN_S = 3.0


# --- run -----------------------------------------------------------------------

def add_run(sub) -> None:
    p = sub.add_parser("run", help="watch live sources until Ctrl-C or --duration")
    common(p)
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--web", metavar="[HOST:]PORT", help="serve the live and review web UI there (web.enabled)")
    p.set_defaults(func=cmd_run)


def build_sinks(cfg: Config, index: EventIndex, scan: bool = False) -> SinkRunner:
    from motionwatch.sinks.notify.build import integration_sinks
    # The recorder (snapshots, clips, event.json) first: the notifiers then see
    # event.json written (EventEnded.saved). A scan waits for the clip encoder
    # instead of dropping frames: nothing is live, and a short queue is enough.
    return SinkRunner([Recorder(cfg.recordings, cfg.events, index), *integration_sinks(cfg)],
                      max_frames=30 if scan else 120, wait_for_room=scan)


def cmd_run(args) -> int:
    from motionwatch.cli.web_option import with_web
    cfg = with_web(effective_config(args), args.web)
    check_seconds(args.duration, "--duration")
    check_config(cfg, source_flag=args.source is not None)
    from motionwatch.index.retention import RetentionThread, prepare_recordings
    index, retention = prepare_recordings(cfg.recordings)
    stop = threading.Event()
    RetentionThread(retention, stop).start()
    loops = [CameraLoop(cam, cfg, None, stop) for cam in cfg.cameras]
    from motionwatch.review import start_for_run
    web = start_for_run(cfg, loops) if cfg.web.enabled else None  # an unsafe bind stops here (exit 2)
    late = _open_cameras(loops, cfg)
    try:
        sinks = build_sinks(cfg, index)
    except BaseException:
        for loop in loops:
            if loop.source is not None:
                loop.source.close()
        raise
    from motionwatch.sinks.notify.build import state_listener
    on_state = state_listener(sinks.sinks)
    for loop in loops:
        loop.sinks = sinks
        loop.on_state = on_state
    for loop in late:
        loop._was_lost = True   # its first frame will announce camera_found
        if on_state is not None:
            on_state("camera_lost", loop.status)
    loops = [loop for loop in loops if loop.source is not None or loop in late]
    _install_signals(stop)
    threads = [threading.Thread(target=_guarded, args=(loop,), name=f"camera-{loop.cam.name}", daemon=True)
               for loop in loops]
    for t in threads:
        t.start()
    deadline = time.monotonic() + (args.duration or math.inf)
    reported: set[CameraLoop] = set()
    while any(t.is_alive() for t in threads) and not stop.is_set():
        _report_failures(loops, reported)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        stop.wait(min(0.2, left))
    stop.set()
    # Capture loops notice the stop within a fraction of a second and hand their open
    # events to the sinks; one stuck opening a dead camera holds no event, so it is not
    # waited for long (the threads are daemons).
    join_deadline = time.monotonic() + SHUTDOWN_JOIN_S
    for t in threads:
        t.join(timeout=max(0.0, join_deadline - time.monotonic()))
    sinks.close()
    if sinks.dropped:
        log.warning("%d clip frame(s) were dropped because saving could not keep up (slow disk?)", sinks.dropped)
    if web is not None:
        web.close()
    total = sum(loop.status.events for loop in loops)
    log.info("stopped: %d event(s) recorded", total)
    failed = [loop.failure for loop in loops if loop.failure is not None]
    if failed and len(failed) == len(loops):
        raise failed[0]   # no camera could run with this config: exit 2, as at start
    _report_failures(loops, reported)
    return 0


def _report_failures(loops: list[CameraLoop], reported: set) -> None:
    """Say once that a camera stopped over its config while others went on."""
    for loop in loops:
        if loop.failure is not None and loop not in reported:
            reported.add(loop)
            log.error("%s: stopped: %s; the other cameras go on", loop.cam.name, loop.failure)


def _open_cameras(loops: list[CameraLoop], cfg: Config) -> list[CameraLoop]:
    """Open every camera; return the live ones to retry in the background.

    With one camera, or when none opens, that is the user's error (exit 1).
    With several, a camera that cannot open yet (a network camera still
    booting after a power cut) must not keep the others from recording: it is
    retried with backoff; a video file that cannot open is left out."""
    failed = []
    for loop in loops:
        try:
            loop.open()
        except SourceError as e:
            if len(loops) == 1:
                raise
            failed.append((loop, e))
            continue
        log.info("%s: watching %s (%s fps); recording to %s", loop.cam.name, loop.source.describe(),
                 f"{loop.source.fps:g}" if loop.source.fps else "?", cfg.recordings.path)
    if len(failed) == len(loops):
        raise SourceError("no camera could be opened: " + "; ".join(f"{lp.cam.name}: {e}" for lp, e in failed))
    late = []
    for loop, e in failed:
        if source_kind(loop.cam.source) == "file":
            log.error("%s: %s; this camera is left out, the others run", loop.cam.name, e)
        else:
            log.error("%s: %s; the others run, this one is retried in the background", loop.cam.name, e)
            late.append(loop)
    return late


def _open_late(loop: CameraLoop, stop: threading.Event) -> bool:
    """Keep trying to open a camera that failed at start; True once it is open."""
    delay = BACKOFF_START
    while not stop.wait(delay):
        try:
            loop.open()
        except SourceError as e:
            delay = min(delay * 2, BACKOFF_CAP)
            log.info("%s: still cannot open (%s); next try in %.0f s", loop.cam.name, e, delay)
            continue
        # camera_found is announced by the loop with the first frame (it counts as lost).
        log.warning("%s: camera opened: watching %s", loop.cam.name, loop.source.describe())
        return True
    return False


def _guarded(loop: CameraLoop) -> None:
    """Run one camera; whatever happens to it, the other cameras go on."""
    try:
        if loop.source is None and not _open_late(loop, loop.stop):
            return
        loop.run_supervised()
    except ConfigError as e:   # cmd_run reports it; a restart would fail the same way
        loop.failure = e
    except Exception:
        log.exception("%s: capture loop failed; the other cameras go on", loop.cam.name)
        if loop.on_state is not None:
            loop.status.connected = False
            loop.on_state("camera_lost", loop.status)


def _install_signals(stop: threading.Event) -> None:
    """First SIGINT/SIGTERM: finish open events and exit 0. Second: exit at once."""
    def handler(signum, _frame):
        if stop.is_set():
            # os.write, not print: the handler may interrupt a write to stderr. Finished
            # files were written under temporary names and renamed, so none is left half-written.
            os.write(2, b"motionwatch: second signal, exiting now; finished events are intact\n")
            os._exit(1)
        log.info("%s received: finishing open events (send again to exit at once)", signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# --- scan ----------------------------------------------------------------------

def add_scan(sub) -> None:
    p = sub.add_parser("scan", help="scan recorded videos (files, folders, globs) as fast as possible")
    p.add_argument("paths", nargs="+", metavar="PATH", type=nonempty, help="video files, folders (searched recursively) or globs")
    common(p, source=False)
    p.add_argument("--camera", metavar="NAME", type=nonempty, help="camera name to record under (default: each file's name)")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: the number of cores)")
    p.add_argument("--rescan", action="store_true", help="scan files again that were scanned with the same "
                   "settings, replacing their events (default: skip them)")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT", help="run on this Dask scheduler's workers "
                   "(needs pip install '.[cluster]' in the checkout; workers read the files by the same path)")
    p.add_argument("--start-time", metavar="ISO", help="wall-clock time of the first frame "
                   "(default: the file's modification time minus its length)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="analyse every Nth frame (all are still read and go into clips); "
                        "faster, but short motion may be missed (default 1)")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args) -> int:
    from motionwatch.archive.command import check_args, scan_archive, single_file
    check_args(args)
    args.file = single_file(args)
    if args.file is None:   # several files, a folder, a long file to split or a cluster
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
    src = loop.open()
    from motionwatch.index.retention import prepare_recordings
    try:   # after the source opened: a bad file never touches the recordings
        index, _ = prepare_recordings(cfg.recordings, live=False)
    except BaseException:
        src.close()
        raise
    from motionwatch.archive.ledger import open_ledger
    ledger, ids = open_ledger(index, cfg, args)
    if ledger.done(Path(args.file), cfg.cameras[0].name) and not args.rescan:
        src.close()
        print(f"skipped {args.file}: already scanned with these settings (--rescan to scan it again)")
        return 0
    ledger.begin(Path(args.file), cfg.cameras[0].name)
    loop.sinks = build_sinks(cfg, index, scan=True)
    loop.sinks.sinks.append(ids)
    progress = Progress(src.total_frames, enabled=not args.no_progress and sys.stderr.isatty())
    loop.on_frame = lambda f, d: progress.update(f.index + 1)
    t0 = time.monotonic()
    # Ctrl-C / SIGTERM stop the loop between frames, so the open event is finished whole
    # (the handler replaces KeyboardInterrupt).
    _install_signals(stop)
    try:
        with progress.logging():
            loop.run()
    finally:
        progress.close()
        loop.sinks.close()
        ledger.record(Path(args.file), cfg.cameras[0].name, ids.ids,
                      done=not stop.is_set() and loop.status.frames > 0)
    if stop.is_set():
        print("\nmotionwatch: interrupted; events found so far are saved", file=sys.stderr)
    st = loop.status
    if st.frames == 0:
        raise SourceError(f"{args.file}: no frame could be decoded (the file is damaged or not a video)")
    secs = time.monotonic() - t0
    print(f"scanned {st.frames} frames of {args.file} in {secs:.1f} s ({st.frames / max(secs, 1e-9):.0f} fps): "
          f"{st.events} event(s) in {cfg.recordings.path}")
    _report_damage(args.file, src, stop.is_set())
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


def _report_damage(name: str, src, interrupted: bool) -> None:
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
                     f"decoding stopped at {(stats.frames_read + bad) / src.fps:.1f} s)")
    print(f"motionwatch: warning: {name}: {bad + missing} of {total} frames "
          f"({100 * (bad + missing) / max(total, 1):.0f}%) could not be decoded: {'; '.join(parts)}",
          file=sys.stderr)


# --- events --------------------------------------------------------------------

MAX_LIMIT = 10**9   # SQLite takes at most a 64-bit integer; no index holds more events than this

def add_events(sub) -> None:
    p = sub.add_parser("events", help="list recorded events")
    p.add_argument("action", nargs="?", choices=("list", "keep", "unkeep", "delete"), default="list",
                   help="list (default), keep ID, unkeep ID or delete ID")
    p.add_argument("id", nargs="?", metavar="ID", help="event id for keep/unkeep/delete")
    common(p, source=False)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--camera", metavar="NAME", type=nonempty, help="only this camera")
    p.add_argument("--since", metavar="WHEN", type=nonempty, help="only events since: ISO date/time, or an age like 2h, 3d")
    p.add_argument("--limit", type=int, metavar="N", help="at most N events (newest first)")
    p.add_argument("--reindex", action="store_true", help="rebuild events.db from the event.json files")
    p.set_defaults(func=cmd_events)


def parse_since(text: str) -> float:
    import re
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip())
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return time.time() - float(m.group(1)) * mult
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since: {text!r} is not allowed; allowed: an ISO date or time "
                          "(2026-11-25, 2026-11-25T08:00) or an age (30m, 2h, 7d)") from None
    return dt.timestamp()


def cmd_events(args) -> int:
    camera, args.camera = args.camera, None   # here a filter, not a choice among configured cameras
    cfg = effective_config(args)
    root = Path(cfg.recordings.path)
    if args.limit is not None and not 0 <= args.limit <= MAX_LIMIT:
        raise ConfigError(f"--limit: {args.limit} is out of range; allowed: 0..{MAX_LIMIT}")
    from motionwatch.index.actions import event_action, index_failure, listing_index
    if args.action != "list":
        return event_action(root, args.action, args.id)
    if not root.is_dir():
        raise MotionwatchError(f"{root}: no recordings folder (nothing recorded yet?)")
    index = listing_index(root, reindex=args.reindex)
    since = parse_since(args.since) if args.since else None
    try:
        known = index.cameras()
        rows = index.query(camera=camera, since=since, limit=args.limit)
    except sqlite3.Error as e:
        raise index_failure(e, root) from None
    if camera and camera not in known and camera not in (c.name for c in cfg.cameras):
        raise ConfigError(f"--camera: no camera named {camera!r} in {root} or the config; "
                          f"cameras with events: {', '.join(known) or 'none yet'}")
    if args.json:
        print(events_json_text(rows))
        return 0
    print_table(rows)
    return 0


def events_json_text(rows: list[dict]) -> str:
    """A JSON array with one event per line: short enough to read, and each event's
    series (fractions) stays on its line instead of one number per line."""
    if not rows:
        return "[]"
    return "[\n" + ",\n".join(_strict_json(r) for r in rows) + "\n]"


def _strict_json(row: dict) -> str:
    """One event as strict JSON. The contract fields are checked finite, but other
    fields of an event.json may hold NaN or infinity, which json.dumps prints as
    bare NaN that jq and most parsers refuse: those become null, with a warning."""
    try:
        return json.dumps(row, allow_nan=False)
    except ValueError:
        log.warning("event %s: NaN or infinity outside the contract fields of its record; printed as null",
                    row.get("id"))
        return json.dumps(_finite(row), allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("no events")
        return
    # Whole camera names, never cut: they are what --camera takes.
    cam = max(len("camera"), *(len(r["camera"]) for r in rows))
    ident = max(len("id"), *(len(r["id"]) for r in rows))
    print(f"{'id':<{ident}} {'camera':<{cam}} {'start':<19} {'secs':>6} {'peak%':>6}  snapshot")
    for r in rows:
        dur = r["end_offset_s"] - r["start_offset_s"]
        keep = " (kept)" if r.get("kept") else ""
        print(f"{r['id']:<{ident}} {r['camera']:<{cam}} {r['start'][:19].replace('T', ' '):<19} "
              f"{dur:6.1f} {100 * r['peak_fraction']:6.1f}  {r.get('snapshot') or '-'}{keep}")


# --- check-config --------------------------------------------------------------

def add_check_config(sub) -> None:
    p = sub.add_parser("check-config", help="validate a config and print the effective settings")
    p.add_argument("path", nargs="?", metavar="PATH", help="config file (default: --config or built-ins)")
    common(p)
    p.add_argument("--preview", nargs=2, metavar=("FRAME_OR_SOURCE", "OUT_PNG"),
                   help="draw the camera's mask over an image or a source's first frame into OUT_PNG")
    p.add_argument("--schema", action="store_true",
                   help="print the config file's JSON Schema (for editors with a YAML language server)")
    p.set_defaults(func=cmd_check_config)


def cmd_check_config(args) -> int:
    if args.schema:
        from motionwatch.config.render import schema_text
        sys.stdout.write(schema_text())
        return 0
    if args.path:
        args.config = args.path
    cfg = effective_config(args)
    check_config(cfg, source_flag=args.source is not None)   # exactly what `run` checks
    where = cfg.source_file or "built-in defaults"
    print(f"# {where}: OK")
    if args.preview:
        if source_kind(args.preview[0]) == "file":
            check_regular_file(args.preview[0], "--preview")
        from motionwatch.detect.masks import write_preview
        cam = cfg.cameras[0]
        base = Path(cfg.source_file).parent if cfg.source_file else None
        print(write_preview(cam, cfg.camera_detection(cam).width, *args.preview, base_dir=base))
        return 0
    plain = to_plain(cfg)
    for section in ("web", "mqtt"):  # settings are shown, secrets are not
        if plain[section].get("password"):
            plain[section]["password"] = "***"
    for cam in plain["cameras"]:
        cam["source"] = redact(cam["source"])
    import yaml
    print(yaml.safe_dump(plain, sort_keys=False, default_flow_style=None).rstrip())
    return 0


from motionwatch.cli.serve import add_serve  # noqa: E402  (web imports cli; keep it last)

from motionwatch.bench import add_bench  # noqa: E402  (its own module; registered here)

from motionwatch.tune.advice import add_tune  # noqa: E402  (its own module; registered here)

REGISTRY = [add_run, add_scan, add_events, add_check_config, add_serve, add_bench, add_tune]
