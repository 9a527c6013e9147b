"""The recordings folder: event folder layout, atomic writes and the SQLite index.

Layout: `<root>/<camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/` holding `event.json`,
snapshot JPEGs and clips; `<root>/events.db` indexes them and can always be
rebuilt from the `event.json` files (`motionwatch events --reindex`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

DB_NAME = "events.db"
EVENT_JSON = "event.json"

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
"""


def event_folder(root: Path, camera: str, wall: float, event_id: str) -> Path:
    t = datetime.fromtimestamp(wall)
    return root / camera / t.strftime("%Y-%m-%d") / f"{t.strftime('%H%M%S')}-{event_id}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, then rename into place,
    so a crash never leaves a half-written file under the real name."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
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
        if not create and not path.exists():
            self.db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, record: dict, folder: Path, kept: bool = False) -> None:
        rel = str(Path(folder).relative_to(self.root)) if Path(folder).is_absolute() else str(folder)
        with self.db:
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

    def folders(self, oldest_first: bool = True) -> list[tuple[str, str, float, bool]]:
        """(id, folder, start_epoch, kept) for retention."""
        order = "ASC" if oldest_first else "DESC"
        return list(self.db.execute(f"SELECT id, folder, start_epoch, kept FROM events ORDER BY start_epoch {order}"))

    def rebuild(self) -> tuple[int, list[str]]:
        """Rebuild from every event.json under the root; returns (count, problems)."""
        problems: list[str] = []
        records = []
        for path in sorted(iter_event_files(self.root)):
            try:
                rec = json.loads(path.read_text())
                _epoch(rec["start"]), _epoch(rec["end"])
                records.append((rec, path.parent))
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{path}: {e}")
        with self.db:
            self.db.execute("DELETE FROM events")
        for rec, folder in records:
            self.add(rec, folder, kept=bool(rec.get("kept", False)))
        return len(records), problems


def iter_event_files(root: Path) -> Iterable[Path]:
    """event.json files at the layout's depth (camera/date/event/)."""
    return Path(root).glob(f"*/*/*/{EVENT_JSON}")
