"""The recordings folder: event folder layout, atomic writes and the SQLite index.

Layout: `<root>/<camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/` holding `event.json`,
snapshot JPEGs and clips; `<root>/events.db` indexes them and can always be
rebuilt from the `event.json` files (`motionwatch events --reindex`).
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from motionwatch.index.diskspace import index_problem, is_damage
from motionwatch.errors import MotionwatchError, StorageError
from motionwatch.model import EVENT_ID, Event

log = logging.getLogger("motionwatch.index.database")

DB_NAME = "events.db"
EVENT_JSON = "event.json"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".deleting-"
REBUILD_PREFIX = DB_NAME + ".rebuild-"   # the fresh file a rebuild writes before copying it in
MAX_EVENT_JSON = 64 << 20   # the per-sample series of a long event stays far below this
# Event folder names: HHMMSS-<id>; date folders: YYYY-MM-DD.
EVENT_DIR = re.compile(r"(\d{6})-(" + EVENT_ID.pattern + ")")
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
CREATE TABLE IF NOT EXISTS scan_notified (
    path TEXT NOT NULL,
    camera TEXT NOT NULL,
    start_frame INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (path, camera, start_frame, state)
);
"""


def event_folder(root: Path, camera: str, wall: float, event_id: str) -> Path:
    t = datetime.fromtimestamp(wall)
    return root / camera / t.strftime("%Y-%m-%d") / f"{t.strftime('%H%M%S')}-{event_id}"


def folder_event_id(folder: Path) -> str:
    """The event id in an event folder's name (`<HHMMSS>-<id>`, as event_folder makes it)."""
    return folder.name.split("-", 1)[1]


def fsync_file(path: Path) -> None:
    """Flush a file written through another handle (a clip FFmpeg wrote) to disk before it is renamed."""
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


class _Connection(sqlite3.Connection):
    """An index connection that `_OPEN` can hold weakly (sqlite3's own cannot be)."""


# Connections still open: closed at exit, when SQLite folds the write-ahead log back
# into events.db. The interpreter's teardown did that for any a command left to the
# garbage collector; the `motionwatch` program skips that teardown (cli/exiting.py)
# but runs atexit.
_OPEN: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_connections() -> None:
    for db in list(_OPEN):
        db.close()


class EventIndex:
    """`events.db` at the recordings root (SQLite in WAL mode, so a running
    `motionwatch run` can write while `events` or the web UI read)."""

    def __init__(self, root: Path, create: bool = True):
        self.root = Path(root)
        self.path: Path | None = self.root / DB_NAME   # None: an empty index in memory
        self.created = False   # True when this opened a new, empty events.db
        if not create and not self.path.exists():
            self.path = None
            self.db = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            check_index_files(self.root)
            self.created = not self.path.exists()
            self.db = self._connect()
        self.db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=10.0, check_same_thread=False, factory=_Connection)
        _OPEN.add(db)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self.db.close()

    def add(self, record: dict, folder: Path, kept: bool = False) -> None:
        with self.db:
            self._insert(self.db, record, folder, kept)

    def _insert(self, db: sqlite3.Connection, record: dict, folder: Path, kept: bool) -> None:
        Event.from_dict(record)   # a row that breaks every reader never gets in
        rel = relative_folder(self.root, folder)
        db.execute(
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
        """(record, folder, kept), or None for an unknown id; DamagedRow for a row whose
        record fails the event checks, so a reader can say "reindex" and keep/delete
        can still find the folder."""
        row = self.db.execute("SELECT json, folder, kept FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        rec = _row(row[0], row[2])
        if rec is None:
            raise DamagedRow(event_id, row[1])
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
        rows = (_row(js, kept) for js, kept in self.db.execute(sql, args))
        return [rec for rec in rows if rec is not None]

    def count(self, camera: str | None = None) -> int:
        if camera:
            return self.db.execute("SELECT COUNT(*) FROM events WHERE camera = ?", (camera,)).fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def cameras(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT camera FROM events ORDER BY camera")]

    def rebuild(self) -> tuple[int, list[str]]:
        """Rebuild from every event.json under the root; one that is missing or
        fails the checks is skipped with a warning naming its folder. Returns
        (count, problems). `kept` comes from event.json, where `events keep` writes it first.

        The rows go into a fresh file first, so the old index's pages are never
        read and page-level damage cannot stop a rebuild; SQLite's backup then
        copies that file over the index in one step. Every open connection, here
        or in another process (a running `run`), sees the old index or the new
        one, never half. The file itself is swapped only when it is too damaged to
        be written over: a swap under other processes' connections would lose
        their later writes (SQLite removes the WAL by name when the last
        connection to the old file closes)."""
        records, problems = load_events(self.root)
        tmp = None if self.path is None else _fresh_name(self.root)
        fresh = sqlite3.connect(tmp or ":memory:")
        try:
            fresh.executescript(_SCHEMA)
            with fresh:
                for rec, folder in records:
                    self._insert(fresh, rec, folder, bool(rec.get("kept", False)))
                # scan's memory of finished files is not in any event.json: carry it over,
                # or the next --rescan would not know which events to replace.
                fresh.executemany("INSERT OR REPLACE INTO scanned_files VALUES (?,?,?,?,?,?,?)",
                                  self._scanned_rows())
                fresh.executemany("INSERT OR REPLACE INTO scan_notified VALUES (?,?,?,?)",
                                  self._scanned_rows("scan_notified"))
            try:
                fresh.backup(self.db)
            except sqlite3.DatabaseError as e:
                if tmp is None or not is_damage(e):
                    raise
                fresh.close()
                self._swap_in(tmp, e)
            # The copy went through the WAL: fold it into the file and give the space
            # back now, not when the last connection closes (a `run` may hold one for months).
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            fresh.close()
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return len(records), problems

    def _scanned_rows(self, table: str = "scanned_files") -> list[tuple]:
        """The scanned-files (or notified-events) rows of the index being rebuilt, or none when
        its pages are too damaged to read them (those files are then scanned again, their events replaced)."""
        try:
            return self.db.execute(f"SELECT * FROM {table}").fetchall()
        except sqlite3.DatabaseError as e:
            log.warning("index: the list of scanned files could not be read (%s); "
                        "`scan` will scan those files again", e)
            return []

    def _swap_in(self, fresh: str, err: sqlite3.Error) -> None:
        """Put a freshly built file in place of an index too damaged to be written
        over; the damaged one is kept beside it."""
        self.db.close()
        aside = move_aside(self.root)
        os.replace(fresh, self.path)
        self.db = self._connect()
        log.warning("%s was too damaged to rebuild in place (%s); moved it to %s and put a new one "
                    "in its place", self.path, err, aside)

    def healthy(self) -> bool:
        """SQLite's quick check of every page: cheap enough for every start (docs/performance.md)."""
        try:
            return self.db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError as e:
            if is_damage(e):
                return False
            raise

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

    def forget_scanned(self, path: str, camera: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM scanned_files WHERE path = ? AND camera = ?", (path, camera))

    def forget_split_segments(self) -> int:
        """Drop the rows earlier versions kept for the finished segments of a split file
        (`/abs/file.mp4#frames=L:A-B`); how many. Files are no longer split."""
        with self.db:
            return self.db.execute("DELETE FROM scanned_files WHERE instr(path, '#frames=') > 0").rowcount

    def notified(self, path: str, camera: str) -> set[tuple[int, str]]:
        """(start frame, "start" or "end") of each of a scanned file's events the notifiers were told of."""
        return set(self.db.execute("SELECT start_frame, state FROM scan_notified WHERE path = ? AND camera = ?",
                                   (path, camera)))

    def set_notified(self, path: str, camera: str, start_frame: int, state: str) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO scan_notified VALUES (?,?,?,?)", (path, camera, start_frame, state))

    def forget_notified(self, path: str, camera: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM scan_notified WHERE path = ? AND camera = ?", (path, camera))

    def ids(self) -> dict[str, str]:
        """id -> folder (relative to the root) of every indexed event."""
        return dict(self.db.execute("SELECT id, folder FROM events"))


def check_index_files(root: Path) -> None:
    """events.db and its WAL files are regular files where they exist: SQLite opens
    them by name, so through a symlink a rebuild overwrote whatever index (or
    file) the link named, and a folder there only ever said "unable to open"."""
    for suffix in ("", "-wal", "-shm"):
        p = Path(root) / (DB_NAME + suffix)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) \
                else "not a regular file"
            raise MotionwatchError(f"{p} is {what}; motionwatch neither follows nor replaces it. Allowed: a regular "
                               f"file; move it away, then `motionwatch events --reindex` rebuilds the index")


def relative_folder(root: Path, folder: Path) -> str:
    """An event folder's path relative to the recordings root, whatever the current
    directory: what the index stores, so a relative root (the default `recordings`)
    and an absolute one name the same rows."""
    try:
        return Path(os.path.abspath(folder)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:   # not under the root as written (a symlinked root): the layout's depth
        return Path(*Path(folder).parts[-3:]).as_posix()


def indexed_folder(root: Path, rel: str) -> Path:
    """The folder an index row names. Rows written before paths were stored relative
    to the root carried the root's own relative path in front
    (`recordings/cam/day/event`); the layout's last three parts still find them."""
    folder = Path(root) / rel
    if not folder.exists() and len(Path(rel).parts) > 3:
        folder = Path(root).joinpath(*Path(rel).parts[-3:])
    return folder


class DamagedRow(ValueError):
    """An index row whose record is not a valid event (written by an older version)."""

    def __init__(self, event_id: str, folder: str):
        super().__init__(f"event {event_id!r}: its index record is damaged; "
                         "run `motionwatch events --reindex`")
        self.folder = folder


def _row(js: str, kept: int) -> dict | None:
    """An index row's record, or None (logged) when it fails the event checks: rows
    written by versions that did not check them must not break a listing."""
    try:
        rec = json.loads(js)
        Event.from_dict(rec)
    except ValueError as e:
        log.warning("index: skipped a row that is not a valid event (%s); "
                    "`motionwatch events --reindex` drops it", e)
        return None
    rec["kept"] = bool(kept)
    return rec


def load_events(root: Path) -> tuple[list[tuple[dict, Path]], list[str]]:
    """(record, folder) of every event folder whose event.json passes the checks,
    and one problem line for each that does not (logged as a warning)."""
    records, problems = [], []
    for folder in iter_event_folders(root):
        path = folder / EVENT_JSON
        if not os.path.lexists(path):
            problems.append(f"{folder}: incomplete event folder (no {EVENT_JSON}); "
                            "retention removes it like an old event")
            log.info("skipped %s", problems[-1])   # a crash mid-event, or an event being written
            continue
        try:
            records.append((read_event(path), folder))
        except (OSError, ValueError) as e:
            problems.append(warn_skipped(folder, e))
    return records, problems


_warned: set[str] = set()   # bad event folders already warned about by this process


def warn_skipped(folder: Path, err: Exception) -> str:
    """Warn that an event folder is skipped, once per folder and reason however often
    it is met (a rebuild, then every retention pass); returns the problem line."""
    problem = f"{folder}: {getattr(err, 'strerror', None) or err}"
    if problem not in _warned:
        _warned.add(problem)
        log.warning("skipped event folder %s", problem)
    return problem


def _fresh_name(root: Path) -> str:
    fd, tmp = tempfile.mkstemp(prefix=REBUILD_PREFIX, dir=root)
    os.close(fd)
    return tmp


def move_aside(root: Path) -> str:
    """Rename a damaged events.db (and its WAL files) to events.db.damaged-<time>,
    kept for a person to look at; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        p = Path(root) / (DB_NAME + suffix)
        if p.exists():
            os.replace(p, Path(root) / f"{DB_NAME}.damaged-{stamp}{suffix}")
    return f"{DB_NAME}.damaged-{stamp}"


def iter_event_files(root: Path) -> Iterable[Path]:
    """event.json files at the layout's depth (camera/date/event/)."""
    return (f / EVENT_JSON for f in iter_event_folders(root) if (f / EVENT_JSON).exists())


def read_event_json(path: Path) -> Any:
    """The parsed content of an event.json, read only when it is a regular file of
    sane size reached without a symlink (one pointing at /dev/zero or outside the
    root would hang or leak). OSError or ValueError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{EVENT_JSON} is a symlink; not followed") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > MAX_EVENT_JSON:
            raise ValueError(f"{st.st_size} bytes, more than an event.json can be ({MAX_EVENT_JSON})")
        data = f.read(MAX_EVENT_JSON + 1)
    try:
        return json.loads(data)
    except RecursionError:   # arrays or objects nested deeper than the parser's stack
        raise ValueError("nested too deeply to be an event record") from None


def read_event(path: Path) -> dict:
    """One event.json, every contract field checked (ValueError or OSError otherwise)."""
    rec = read_event_json(path)
    Event.from_dict(rec)
    return rec


def _subdirs(folder: Path, pattern: re.Pattern | None = None) -> list[Path]:
    """Real (not symlinked), non-hidden subfolders, sorted by name.

    Symlinks are skipped on purpose: retention and delete must never reach
    outside the recordings root, and a link inside it would be counted twice."""
    try:
        with os.scandir(folder) as it:
            out = [(e.name, e.path) for e in it
                   if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                   and (pattern is None or pattern.fullmatch(e.name))]
    except OSError:
        return []
    # Sorted by name before the Paths are made: comparing Paths part by part was most
    # of a scan's start-up in a folder of 5000 events (docs/performance.md).
    return [Path(p) for _, p in sorted(out)]


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
    event folders, and an index rebuild's fresh file at the root. Only ones
    untouched for `older_than_s`, so a writer that is still busy (another
    motionwatch on the same folder) is left alone."""
    cutoff = time.time() - older_than_s
    removed = _sweep_folder(Path(root), cutoff, REBUILD_PREFIX)   # a rebuild cut short
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


def _sweep_folder(folder: Path, cutoff: float, prefix: str = TMP_PREFIX) -> int:
    removed = 0
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith(prefix) and e.is_file(follow_symlinks=False) \
                        and e.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(e.path)
                    log.info("removed %s: left half-written by an earlier run", e.path)
                    removed += 1
    except OSError:
        pass
    return removed


def open_index(root: Path) -> tuple[EventIndex, str | None]:
    """Open events.db for writing; a damaged one is rebuilt from the event.json
    files (moved aside first when it cannot even be opened), and a missing one is
    rebuilt when there are events to index. Returns the index and what was done
    (or None). A full disk or an I/O error is a StorageError, never damage: the
    index is left exactly as it is."""
    root = Path(root)
    try:
        try:
            index = EventIndex(root)
        except sqlite3.DatabaseError as e:
            if not is_damage(e):
                raise
            aside = move_aside(root)
            index = EventIndex(root)
            n, _ = index.rebuild()
            return index, (f"{root / DB_NAME} was damaged ({e}); moved it to {aside} "
                           f"and rebuilt the index from {n} event.json file(s)")
        if not index.healthy():
            n, _ = index.rebuild()
            return index, f"{root / DB_NAME} was damaged; rebuilt it from {n} event.json file(s)"
        if index.created and any(True for _ in iter_event_files(root)):
            n, _ = index.rebuild()
            return index, f"{root / DB_NAME} was missing; rebuilt it from {n} event.json file(s)"
        return index, None
    except sqlite3.DatabaseError as e:
        if is_damage(e):
            raise
        raise StorageError(index_problem(e, root / DB_NAME)) from None
    except OSError as e:   # the rebuild's fresh file
        if e.errno != errno.ENOSPC:
            raise
        raise StorageError(index_problem(e, root / DB_NAME)) from None
