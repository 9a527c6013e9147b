"""The recordings folder: event folder layout, atomic writes and the SQLite index.

Layout: `<root>/<camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/` holding `event.json`,
snapshot JPEGs and clips; `<root>/events.db` indexes them and can always be
rebuilt from the `event.json` files (`motionwatch events --reindex`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger("motionwatch.store")

DB_NAME = "events.db"
EVENT_JSON = "event.json"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".deleting-"
# Event folder names: HHMMSS-<id>; date folders: YYYY-MM-DD.
EVENT_DIR = re.compile(r"(\d{6})-([A-Za-z0-9_-]{1,64})")
DATE_DIR = re.compile(r"\d{4}-\d{2}-\d{2}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start TEXT NOT NULL,
    start_epoch REAL NOT NULL,
    end_epoch REAL NOT NULL,
    peak_fraction REAL NOT NULL,
    folder TEXT NOT NULL,
    kept INTEGER NOT NULL DEFAULT 0,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_start ON events (start_epoch DESC);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, start_epoch DESC);
CREATE TABLE IF NOT EXISTS scanned_files (
    path TEXT NOT NULL,
    camera TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    config_hash TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    event_ids TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (path, camera)
);
"""


def event_folder(root: Path, camera: str, wall: float, event_id: str) -> Path:
    t = datetime.fromtimestamp(wall)
    return root / camera / t.strftime("%Y-%m-%d") / f"{t.strftime('%H%M%S')}-{event_id}"


def folder_event_id(folder: Path) -> str:
    """The event id in an event folder's name (`<HHMMSS>-<id>`, as event_folder makes it)."""
    return folder.name.split("-", 1)[1]


def fsync_file(path: Path) -> None:
    """Flush a file written by another process (an ffmpeg clip) to disk before it is renamed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, then rename into place,
    so a crash never leaves a half-written file under the real name."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def _epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text).timestamp()


class EventIndex:
    """`events.db` at the recordings root (SQLite in WAL mode, so a running
    `motionwatch run` can write while `events` or the web UI read)."""

    def __init__(self, root: Path, create: bool = True):
        self.root = Path(root)
        path = self.root / DB_NAME
        self.created = False   # True when this opened a new, empty events.db
        if not create and not path.exists():
            self.db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self.created = not path.exists()
            self.db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError:
                self.db.close()
                raise
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, record: dict, folder: Path, kept: bool = False) -> None:
        with self.db:
            self._insert(record, folder, kept)

    def _insert(self, record: dict, folder: Path, kept: bool) -> None:
        rel = str(Path(folder).relative_to(self.root)) if Path(folder).is_absolute() else str(folder)
        self.db.execute(
            "INSERT OR REPLACE INTO events (id, camera, start, start_epoch, end_epoch, "
            "peak_fraction, folder, kept, json) VALUES (?,?,?,?,?,?,?,?,?)",
            (record["id"], record["camera"], record["start"], _epoch(record["start"]),
             _epoch(record["end"]), record["peak_fraction"], rel, int(kept or record.get("kept", False)),
             json.dumps(record)))

    def remove(self, event_id: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM events WHERE id = ?", (event_id,))

    def set_kept(self, event_id: str, kept: bool) -> bool:
        with self.db:
            cur = self.db.execute("UPDATE events SET kept = ? WHERE id = ?", (int(kept), event_id))
        return cur.rowcount > 0

    def get(self, event_id: str) -> tuple[dict, str, bool] | None:
        row = self.db.execute("SELECT json, folder, kept FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        rec = json.loads(row[0])
        rec["kept"] = bool(row[2])
        return rec, row[1], bool(row[2])

    def query(self, camera: str | None = None, since: float | None = None,
              until: float | None = None, limit: int | None = None, offset: int = 0,
              oldest_first: bool = False) -> list[dict]:
        sql, args = "SELECT json, kept FROM events WHERE 1=1", []
        if camera:
            sql += " AND camera = ?"
            args.append(camera)
        if since is not None:
            sql += " AND start_epoch >= ?"
            args.append(since)
        if until is not None:
            sql += " AND start_epoch < ?"
            args.append(until)
        sql += " ORDER BY start_epoch " + ("ASC" if oldest_first else "DESC")
        sql += " LIMIT ? OFFSET ?"
        args += [limit if limit is not None else -1, offset]
        out = []
        for js, kept in self.db.execute(sql, args):
            rec = json.loads(js)
            rec["kept"] = bool(kept)
            out.append(rec)
        return out

    def count(self, camera: str | None = None) -> int:
        if camera:
            return self.db.execute("SELECT COUNT(*) FROM events WHERE camera = ?", (camera,)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def cameras(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT camera FROM events ORDER BY camera")]

    def rebuild(self) -> tuple[int, list[str]]:
        """Rebuild from every event.json under the root in one transaction (a
        reader sees the old index or the new one, never half); returns
        (count, problems)."""
        problems: list[str] = []
        records = []
        for folder in iter_event_folders(self.root):
            path = folder / EVENT_JSON
            if not path.exists():
                problems.append(f"{folder}: incomplete event folder (no {EVENT_JSON}); "
                                "retention removes it like an old event")
                continue
            try:
                rec = read_event(path)
                records.append((rec, folder))
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{path}: {e}")
        with self.db:
            self.db.execute("DELETE FROM events")
            for rec, folder in records:
                self._insert(rec, folder, bool(rec.get("kept", False)))
        return len(records), problems

    # -- scanned files (`scan`'s memory of what it has done; see archive/ledger.py) --

    def scanned(self, path: str, camera: str) -> dict | None:
        row = self.db.execute("SELECT size, mtime, config_hash, done, event_ids FROM scanned_files "
                              "WHERE path = ? AND camera = ?", (path, camera)).fetchone()
        if row is None:
            return None
        return {"size": row[0], "mtime": row[1], "config_hash": row[2], "done": bool(row[3]),
                "event_ids": json.loads(row[4])}

    def set_scanned(self, path: str, camera: str, size: int, mtime: float, config_hash: str,
                    done: bool, event_ids: list[str]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO scanned_files VALUES (?,?,?,?,?,?,?)",
                            (path, camera, size, mtime, config_hash, int(done), json.dumps(event_ids)))

    def ids(self) -> dict[str, str]:
        """id -> folder (relative to the root) of every indexed event."""
        return dict(self.db.execute("SELECT id, folder FROM events"))


def iter_event_files(root: Path) -> Iterable[Path]:
    """event.json files at the layout's depth (camera/date/event/)."""
    return (f / EVENT_JSON for f in iter_event_folders(root) if (f / EVENT_JSON).exists())


def read_event(path: Path) -> dict:
    """One event.json, checked enough to index it (ValueError/KeyError otherwise)."""
    rec = json.loads(path.read_text())
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    for key in ("id", "camera", "peak_fraction"):
        rec[key]
    _epoch(rec["start"]), _epoch(rec["end"])
    return rec


def _subdirs(folder: Path, pattern: re.Pattern | None = None) -> list[Path]:
    """Real (not symlinked), non-hidden subfolders, sorted by name.

    Symlinks are skipped on purpose: retention and delete must never reach
    outside the recordings root, and a link inside it would be counted twice."""
    try:
        with os.scandir(folder) as it:
            out = [Path(e.path) for e in it
                   if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                   and (pattern is None or pattern.fullmatch(e.name))]
    except OSError:
        return []
    return sorted(out)


def iter_event_folders(root: Path) -> list[Path]:
    """Every event folder (<camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/) under the root,
    with or without event.json, oldest first by (date, time)."""
    out = []
    for cam in _subdirs(Path(root)):
        for day in _subdirs(cam, DATE_DIR):
            out += _subdirs(day, EVENT_DIR)
    return sorted(out, key=folder_key)


def folder_key(folder: Path) -> tuple[str, str, str]:
    """Sort key: the event's start date and time from its path, then the camera."""
    return folder.parent.name, folder.name[:6], folder.parent.parent.name


def inside(root: Path, path: Path) -> bool:
    """True if `path` resolves to a place strictly inside the recordings root."""
    try:
        real_root, real = Path(root).resolve(), Path(path).resolve()
    except OSError:
        return False
    return real_root in real.parents


def remove_event_folder(root: Path, folder: Path) -> None:
    """Delete an event folder whole, and its emptied date/camera folders.

    The folder is first renamed to a hidden name (one atomic step, so it stops
    being an event at once even if deleting its files fails half way), then
    removed. Refuses anything not strictly inside the root or a symlink."""
    folder = Path(folder)
    if folder.is_symlink() or not inside(root, folder) or not folder.is_dir():
        raise OSError(f"{folder}: not an event folder inside {root}; not touched")
    trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}")
    os.replace(folder, trash)
    shutil.rmtree(trash)
    for parent in (folder.parent, folder.parent.parent):
        if parent.resolve() == Path(root).resolve():
            break
        try:
            parent.rmdir()   # only succeeds when empty
        except OSError:
            break


def sweep_leftovers(root: Path, older_than_s: float = 600.0) -> int:
    """Remove temporary files and half-deleted folders a crash left behind in
    event folders. Only ones untouched for `older_than_s`, so a writer that is
    still busy (another motionwatch on the same folder) is left alone."""
    cutoff = time.time() - older_than_s
    removed = 0
    for cam in _subdirs(Path(root)):
        for day in _subdirs(cam, DATE_DIR):
            try:
                entries = list(os.scandir(day))
            except OSError:
                continue
            for e in entries:
                if e.name.startswith(TRASH_PREFIX) and e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                    removed += 1
                elif EVENT_DIR.fullmatch(e.name) and e.is_dir(follow_symlinks=False):
                    removed += _sweep_folder(Path(e.path), cutoff)
    return removed


def _sweep_folder(folder: Path, cutoff: float) -> int:
    removed = 0
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith(TMP_PREFIX) and e.is_file(follow_symlinks=False) \
                        and e.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(e.path)
                    log.info("removed %s: left half-written by an earlier run", e.path)
                    removed += 1
    except OSError:
        pass
    return removed


def open_index(root: Path) -> tuple[EventIndex, str | None]:
    """Open events.db for writing; a damaged one is moved aside and rebuilt
    from the event.json files, and a missing one is rebuilt when there are
    events to index. Returns the index and what was done (or None)."""
    root = Path(root)
    try:
        index = EventIndex(root)
    except sqlite3.DatabaseError as e:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            p = root / (DB_NAME + suffix)
            if p.exists():
                os.replace(p, root / f"{DB_NAME}.damaged-{stamp}{suffix}")
        index = EventIndex(root)
        n, _ = index.rebuild()
        return index, (f"{root / DB_NAME} was damaged ({e}); moved it to {DB_NAME}.damaged-{stamp} "
                       f"and rebuilt the index from {n} event.json file(s)")
    if index.created and any(True for _ in iter_event_files(root)):
        n, _ = index.rebuild()
        return index, f"{root / DB_NAME} was missing; rebuilt it from {n} event.json file(s)"
    return index, None
