"""What the JSON API and /metrics say: events pages, one event, status.

Reads the index (the same SQLite file a running `motionwatch run` writes, WAL
mode, so both work at once) and the live cameras' status; changes nothing.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from motionwatch.config import Config
from motionwatch.model import iso
from motionwatch.index.actions import listing_index
from motionwatch.index.database import DamagedRow
from motionwatch.review.files import media_url

log = logging.getLogger("motionwatch.review")

EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PAGE_DEFAULT = 60
PAGE_MAX = 500
DISK_CACHE_SECONDS = 30.0
MAX_EPOCH = 253402214400.0  # 9999-12-31T00:00:00Z: later times do not fit an ISO year


class BadRequest(Exception):
    """A query parameter that is not allowed (answered with 400 and this message)."""


class DamagedEvent(Exception):
    """An indexed event whose record cannot be shown (answered with 409 and this message)."""


def damaged(event_id: str, why) -> str:
    return f"event {event_id!r}: its record is damaged ({why}); run `motionwatch events --reindex`"


def _number(rec: dict, key: str) -> float:
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}")
    return value


class Recordings:
    """The index behind a lock (one SQLite connection shared by the thread pool)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        # Rebuilt from event.json when missing; a damaged one is a clear error.
        self.index = listing_index(self.root)
        self.lock = threading.Lock()
        self._disk: tuple[float, int] = (0.0, 0)

    def query(self, **kw) -> list[dict]:
        with self.lock:
            return self.index.query(**kw)

    def get(self, event_id: str):
        with self.lock:
            return self.index.get(event_id)

    def count(self, camera: str | None = None) -> int:
        with self.lock:
            return self.index.count(camera)

    def cameras(self) -> list[str]:
        with self.lock:
            return self.index.cameras()

    def bytes_used(self) -> int:
        """Size of everything under the root; walked at most every 30 s (it can be large)."""
        at, size = self._disk
        if time.monotonic() - at < DISK_CACHE_SECONDS and at:
            return size
        size = _tree_size(self.root)
        self._disk = (time.monotonic(), size)
        return size

    def close(self) -> None:
        with self.lock:
            self.index.close()


def _tree_size(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
        except OSError:
            pass
    return total


# --- events --------------------------------------------------------------------

def _int(params: dict, name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not allowed; allowed: an integer {lo}..{hi}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: {value} is out of range; allowed: {lo}..{hi}")
    return value


def _time(params: dict, name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    allowed = "ISO 8601 time or epoch seconds between 1970 and 9999"
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw).timestamp()
        except (ValueError, OverflowError, OSError):
            raise BadRequest(f"{name}: {raw!r} is not allowed; allowed: {allowed}") from None
    if not 0 <= value < MAX_EPOCH:  # also NaN and infinities
        raise BadRequest(f"{name}: {raw!r} is out of range; allowed: {allowed}")
    return value


def _day(params: dict) -> tuple[float, float] | None:
    raw = params.get("date")
    if raw in (None, ""):
        return None
    try:
        d = datetime.strptime(raw, "%Y-%m-%d")
    except ValueError:
        raise BadRequest(f"date: {raw!r} is not allowed; allowed: a day as YYYY-MM-DD") from None
    # Days are local days, as in the folder layout. The first and last days of the
    # calendar have no local midnight on every machine: outside 1970..9998, say so.
    try:
        if d.year < 1970 or d.year > 9998:
            raise OverflowError
        return d.timestamp(), (d + timedelta(days=1)).timestamp()
    except (OverflowError, OSError, ValueError):
        raise BadRequest(f"date: {raw!r} is out of range; allowed: a day from 1970-01-01 to 9998-12-31") from None


def summary(rec: dict) -> dict:
    """One gallery row: what a thumbnail card shows, without the big series."""
    return {
        "id": rec["id"], "camera": rec["camera"], "start": rec["start"], "end": rec["end"],
        "duration_s": round(_number(rec, "end_offset_s") - _number(rec, "start_offset_s"), 3),
        "peak_fraction": _number(rec, "peak_fraction"), "frames_with_motion": rec["frames_with_motion"],
        "kept": bool(rec.get("kept")), "has_clip": bool(rec.get("clip") or rec.get("clip_parts")),
        "thumbnail_url": media_url(rec.get("thumbnail") or rec.get("snapshot")),
        "snapshot_url": media_url(rec.get("snapshot")),
    }


def events_page(rec: Recordings, params: dict) -> dict:
    """/api/events: newest first, filtered by camera and day or since/until, paged."""
    limit = _int(params, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    offset = _int(params, "offset", 0, 0, 10**9)
    camera = params.get("camera") or None
    since, until = _time(params, "since"), _time(params, "until")
    day = _day(params)
    if day:
        since = max(since, day[0]) if since is not None else day[0]
        until = min(until, day[1]) if until is not None else day[1]
    # One row more than asked tells whether an older page exists without COUNT(*).
    rows = rec.query(camera=camera, since=since, until=until, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    filtered = since is not None or until is not None
    return {
        "events": _summaries(rows[:limit]),
        "offset": offset, "limit": limit, "more": more,
        "total": None if filtered else rec.count(camera),
        "cameras": rec.cameras(),
    }


def _summaries(rows: list[dict]) -> list[dict]:
    """Gallery rows; one damaged record is left out with a warning, not a failed page."""
    out = []
    for r in rows:
        try:
            out.append(summary(r))
        except (KeyError, TypeError, ValueError) as e:
            log.warning("web: event %r left out of the gallery: its record is damaged (%s); "
                        "run `motionwatch events --reindex`", r.get("id"), e)
    return out


def clip_urls(record: dict) -> list[str]:
    """URLs of the clip or its numbered parts, in order."""
    parts = record.get("clip_parts") or ([record["clip"]] if record.get("clip") else [])
    if not isinstance(parts, list):   # not a contract field: the event checks let any JSON value through
        parts = [parts] if isinstance(parts, (str, dict)) else []
    out = []
    for p in parts:
        rel = p.get("path") or p.get("clip") if isinstance(p, dict) else p
        url = media_url(rel)
        if url:
            out.append(url)
    return out


def event_detail(rec: Recordings, event_id: str, trigger: float) -> dict | None:
    """/api/events/<id>: the whole event.json plus URLs and the neighbours for paging."""
    if not EVENT_ID.fullmatch(event_id):
        return None
    try:
        hit = rec.get(event_id)
    except DamagedRow as e:
        raise DamagedEvent(str(e)) from None
    if hit is None:
        return None
    record, folder, kept = hit
    try:
        start = datetime.fromisoformat(record["start"]).timestamp()
        duration = round(_number(record, "end_offset_s") - _number(record, "start_offset_s"), 3)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise DamagedEvent(damaged(event_id, e)) from None
    newer = rec.query(since=start + 1e-6, limit=1, oldest_first=True)
    older = rec.query(until=start - 1e-6, limit=1)
    out = dict(record)
    out.update({
        "kept": kept,
        "duration_s": duration,
        "snapshot_url": media_url(record.get("snapshot")),
        "snapshot_first_url": media_url(record.get("snapshot_first")),
        "annotated_url": media_url(record.get("annotated")),
        "thumbnail_url": media_url(record.get("thumbnail")),
        "clip_urls": clip_urls(record),
        "newer_id": newer[0]["id"] if newer else None,
        "older_id": older[0]["id"] if older else None,
        "trigger_fraction": trigger,
    })
    return out


# --- status and metrics ----------------------------------------------------------

def camera_status(loop) -> dict:
    st = loop.status
    src = loop.source
    return {
        "name": st.name, "live": True, "connected": st.connected, "since": iso(st.since),
        "fps": round(st.fps, 2), "frames": st.frames, "analysed": st.analysed,
        "dropped": (src.dropped if src is not None else st.dropped),
        "fraction": round(st.fraction, 5), "trigger_fraction": loop.det_cfg.trigger_fraction,
        "in_event": st.in_event, "events": st.events, "last_event": st.last_event,
        "reconnects": st.reconnects,
    }


def status(rec: Recordings, cfg: Config, loops: dict, started: float) -> dict:
    cams = [camera_status(loop) for loop in loops.values()]
    for name in rec.cameras():
        last = rec.query(camera=name, limit=1)
        entry = next((c for c in cams if c["name"] == name), None)
        if entry is None:
            entry = {"name": name, "live": False}
            cams.append(entry)
        entry["indexed_events"] = rec.count(name)
        if last:
            entry["last_event"] = last[0]["end"]
            entry["last_event_id"] = last[0]["id"]
    try:
        du = shutil.disk_usage(rec.root)
        free, total = du.free, du.total
    except OSError:
        free = total = None
    r = cfg.recordings
    return {
        "mode": "run" if loops else "serve",
        "uptime_s": round(time.time() - started, 1),
        "cameras": cams,
        "events": rec.count(),
        "disk": {
            "recordings": str(rec.root), "used_bytes": rec.bytes_used(),
            "free_bytes": free, "total_bytes": total,
            "limits": {"max_size_gb": r.max_size_gb, "max_age_days": r.max_age_days,
                       "min_free_gb": r.min_free_gb, "min_free_percent": r.min_free_percent},
        },
    }


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics(st: dict) -> str:
    """Prometheus text exposition of a status() dict."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP motionwatch_{name} {help_}")
        lines.append(f"# TYPE motionwatch_{name} {kind}")
        for labels, value in samples:
            lines.append(f"motionwatch_{name}{labels} {value:g}" if isinstance(value, (int, float))
                         else f"motionwatch_{name}{labels} {value}")

    live = [c for c in st["cameras"] if c.get("live")]
    lab = lambda c: f'{{camera="{_label(c["name"])}"}}'  # noqa: E731
    per_cam = [
        ("camera_connected", "gauge", "1 while the camera delivers frames", "connected", int),
        ("camera_fps", "gauge", "analysed frames per second", "fps", float),
        ("camera_frames_total", "counter", "frames read from the source", "frames", int),
        ("camera_dropped_frames_total", "counter", "frames the source dropped because analysis was busy",
         "dropped", int),
        ("camera_motion_fraction", "gauge", "changed share of the picture in the last analysed frame",
         "fraction", float),
        ("camera_in_event", "gauge", "1 while an event is open", "in_event", int),
        ("camera_events_total", "counter", "events ended since start", "events", int),
        ("camera_reconnects_total", "counter", "times the camera came back after being lost",
         "reconnects", int),
    ]
    for name, kind, help_, key, conv in per_cam:
        if live:
            metric(name, kind, help_, [(lab(c), conv(c[key])) for c in live])
    metric("indexed_events", "gauge", "events in the index per camera",
           [(lab(c), c.get("indexed_events", 0)) for c in st["cameras"]])
    disk = st["disk"]
    metric("recordings_bytes", "gauge", "bytes used by the recordings folder", [("", disk["used_bytes"])])
    if disk["free_bytes"] is not None:
        metric("disk_free_bytes", "gauge", "free bytes on the recordings disk", [("", disk["free_bytes"])])
        metric("disk_total_bytes", "gauge", "size of the recordings disk", [("", disk["total_bytes"])])
    metric("uptime_seconds", "gauge", "seconds since the web server started", [("", st["uptime_s"])])
    return "\n".join(lines) + "\n"
