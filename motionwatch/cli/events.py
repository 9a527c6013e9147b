"""`motionwatch events`: list recorded events; keep, unkeep or delete one."""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from motionwatch.cli.args import common, nonempty
from motionwatch.errors import ConfigError, MotionwatchError

log = logging.getLogger("motionwatch")

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
    # Imported here: `--help` starts without pydantic (the config models).
    from motionwatch.config.overrides import effective_config
    from motionwatch.index.actions import event_action, index_failure, listing_index
    camera, args.camera = args.camera, None   # here a filter, not a choice among configured cameras
    cfg = effective_config(args)
    root = Path(cfg.recordings.path)
    if args.limit is not None and not 0 <= args.limit <= MAX_LIMIT:
        raise ConfigError(f"--limit: {args.limit} is out of range; allowed: 0..{MAX_LIMIT}")
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
