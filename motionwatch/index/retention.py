"""Retention: keep the recordings folder within its limits for months unattended.

`recordings.max_age_days`, `max_size_gb`, `min_free_gb` and `min_free_percent`
are enforced at start and every `retention_interval_seconds` while running, by
deleting whole events, oldest first, never one that is kept (`events keep`).
Each deletion is logged. Only event folders found at the layout's depth
(<camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/), never through a symlink, are touched,
so nothing outside the recordings root can be deleted.

The folders on disk are the truth, not the index: an event folder without
event.json (a crash mid-event) counts and ages like any other once nothing has
written to it for a while; index rows whose folder is gone are dropped.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from motionwatch.config import RecordingsConfig
from motionwatch.index.diskspace import index_problem
from motionwatch.errors import MotionwatchError, StorageError
from motionwatch.index.database import (DB_NAME, EVENT_JSON, EventIndex, folder_event_id, indexed_folder,
                               iter_event_folders, open_index, read_event, read_event_json,
                               remove_event_folder, sweep_leftovers, warn_skipped)

log = logging.getLogger("motionwatch.index.retention")

GB = 1e9
BUSY_S = 600.0   # a folder without event.json written to this recently is an event in progress
MIN_FREE_GB_SHARE = 0.10   # min_free_gb asks for at most this share of the disk
TIGHT_SHARE = 0.25         # warn when limits leave recordings less than this share of their space


@dataclass
class Pass:
    """What one retention pass found and did."""

    folders: list[Path] = field(default_factory=list)   # the event folders the pass found
    bytes: int = 0
    free: int = 0
    deleted: list[tuple[str, int, str]] = field(default_factory=list)   # (folder, bytes, reason)
    short: str | None = None   # a limit that could not be met

    @property
    def events(self) -> int:
        return len(self.folders)


def folder_size(folder: Path) -> int:
    """Bytes the folder's files take on disk (allocated blocks, like `du`)."""
    total = 0
    try:
        with os.scandir(folder) as it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    except OSError:
        pass
    return total


def folder_time(folder: Path) -> float:
    """The event's start (local time) from its path; folders sort by it."""
    day, hhmmss = folder.parent.name, folder.name[:6]
    try:
        return datetime.strptime(f"{day} {hhmmss}", "%Y-%m-%d %H%M%S").timestamp()
    except ValueError:
        return 0.0


def last_write(folder: Path) -> float:
    try:
        times = [folder.stat().st_mtime]
        with os.scandir(folder) as it:
            times += [e.stat(follow_symlinks=False).st_mtime for e in it]
        return max(times)
    except OSError:
        return 0.0


def free_target(cfg: RecordingsConfig, disk_total: int) -> float:
    """Bytes to keep free: min_free_gb, but never more than MIN_FREE_GB_SHARE of the
    disk (the default 1 GB would empty a small card of every event), or
    min_free_percent of the disk when that is more."""
    return max(min(cfg.min_free_gb * GB, MIN_FREE_GB_SHARE * disk_total),
               cfg.min_free_percent / 100.0 * disk_total)


def room_warning(cfg: RecordingsConfig, recorded: int, usage) -> str | None:
    """A warning when the free-space limits leave recordings almost no room: less than
    TIGHT_SHARE of what free space and the recordings together hold."""
    available = usage.free + recorded
    room = available - free_target(cfg, usage.total)
    if room >= TIGHT_SHARE * available:
        return None
    return (f"the free-space limits leave recordings only {max(room, 0) / GB:.2f} GB of the "
            f"{available / GB:.2f} GB they could use ({usage.free / GB:.2f} GB free on the disk, "
            f"{free_target(cfg, usage.total) / GB:.2f} GB kept free): retention will delete nearly every "
            "event; lower recordings.min_free_gb / min_free_percent or record to a bigger disk")


class Retention:
    def __init__(self, root: Path, cfg: RecordingsConfig,
                 disk_usage: Callable[[str], tuple] = shutil.disk_usage):
        self.root = Path(root)
        self.cfg = cfg
        self.disk_usage = disk_usage
        self._sizes: dict[Path, int] = {}   # finished events do not change size
        self._short_reported: str | None = None

    @property
    def active(self) -> bool:
        c = self.cfg
        return bool(c.max_size_gb or c.max_age_days or c.min_free_gb or c.min_free_percent)

    def enforce(self, index: EventIndex | None = None, now: float | None = None) -> Pass:
        """One pass: delete what the limits require, then fix the index."""
        result = Pass()
        if not self.root.is_dir():
            return result
        now = time.time() if now is None else now
        folders = iter_event_folders(self.root)
        sizes = {f: self._size(f) for f in folders}
        # Forget folders gone since the last pass (deleted here, by `events delete`,
        # the web UI or by hand), so the cache does not grow for months.
        self._sizes = {f: self._sizes[f] for f in folders if f in self._sizes}
        result.folders = folders
        result.bytes = sum(sizes.values()) + self._db_bytes()
        usage = self.disk_usage(str(self.root))
        result.free = usage.free
        if self.active:
            self._delete(folders, sizes, usage, result, index, now)
        if index is not None:
            self._reconcile(index, folders, result)
        return result

    # -- deleting -------------------------------------------------------------------

    def _delete(self, folders, sizes, usage, result: Pass, index, now: float) -> None:
        c = self.cfg
        over = result.bytes - c.max_size_gb * GB if c.max_size_gb else 0.0
        want_free = free_target(c, usage.total)
        short_free = want_free - usage.free if want_free else 0.0
        cutoff = now - c.max_age_days * 86400 if c.max_age_days else None
        for folder in folders:
            expired = cutoff is not None and folder_time(folder) < cutoff
            if not (expired or over > 0 or short_free > 0):
                break   # oldest first: nothing younger is needed either
            if self._busy(folder, now) or self._kept(folder):
                continue
            reason = ("older than max_age_days" if expired else
                      "recordings over max_size_gb" if over > 0 else "disk free space under min_free")
            try:
                remove_event_folder(self.root, folder)
            except OSError as e:
                log.error("retention: cannot delete %s: %s", folder, e.strerror or e)
                continue
            size = sizes.get(folder, 0)
            over -= size
            short_free -= size
            result.bytes -= size
            result.deleted.append((str(folder.relative_to(self.root)), size, reason))
            log.info("retention: deleted event %s (%.1f MB): %s", folder.relative_to(self.root),
                     size / 1e6, reason)
            if index is not None:
                self._unindex(index, folder)
        short = None
        if over > 0:
            short = (f"recordings use {result.bytes / GB:.2f} GB, over max_size_gb {c.max_size_gb:g}, "
                     "and only kept events (or events still being written) are left")
        elif short_free > 0:
            short = (f"only {(want_free - short_free) / GB:.2f} GB free on the recordings disk, under "
                     f"the {want_free / GB:.2f} GB asked for, and no deletable event is left: "
                     "something else fills the disk, or the rest are kept events")
        result.short = short
        if short and short != self._short_reported:
            log.warning("retention: %s", short)
        self._short_reported = short

    def _busy(self, folder: Path, now: float) -> bool:
        """An event still being written: no event.json yet and touched recently."""
        return not (folder / EVENT_JSON).exists() and now - last_write(folder) < BUSY_S

    def _kept(self, folder: Path) -> bool:
        try:
            return bool(read_event_json(folder / EVENT_JSON).get("kept"))
        except (OSError, ValueError, AttributeError):
            return False   # no or broken event.json: an incomplete folder, not protected

    def _size(self, folder: Path) -> int:
        if folder in self._sizes:
            return self._sizes[folder]
        size = folder_size(folder)
        if (folder / EVENT_JSON).exists():
            self._sizes[folder] = size
        return size

    def _db_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += (self.root / (DB_NAME + suffix)).stat().st_size
            except OSError:
                pass
        return total

    # -- index ----------------------------------------------------------------------

    def _unindex(self, index: EventIndex, folder: Path) -> None:
        event_id = folder_event_id(folder)
        try:
            index.remove(event_id)
        except Exception as e:   # rebuildable; the folder is what matters
            log.error("retention: could not remove event %s from the index: %s", event_id, e)

    def reconcile(self, index: EventIndex, folders: list[Path]) -> None:
        """`folders`: a pass's listing, so the tree is not walked again (a folder it
        deleted since has no event.json and counts as gone)."""
        self._reconcile(index, folders, Pass())

    def _reconcile(self, index: EventIndex, folders: list[Path], result: Pass) -> None:
        """Drop rows whose folder is gone; add events whose row is missing."""
        try:
            rows = index.ids()
            on_disk = {folder_event_id(f): f for f in folders if (f / EVENT_JSON).exists()}
            for event_id, rel in rows.items():
                if event_id not in on_disk and not (indexed_folder(self.root, rel) / EVENT_JSON).exists():
                    index.remove(event_id)
                    log.info("index: dropped event %s, its folder %s is gone", event_id, rel)
            for event_id, folder in on_disk.items():
                if event_id not in rows:
                    try:
                        index.add(read_event(folder / EVENT_JSON), folder)
                    except (OSError, ValueError) as e:
                        warn_skipped(folder, e)
                        continue
                    log.info("index: added event %s found on disk", event_id)
        except Exception as e:
            log.error("retention: could not check the index against the folders: %s", e)


class RetentionThread:
    """Runs `Retention.enforce` every `retention_interval_seconds` until stopped."""

    def __init__(self, retention: Retention, stop: threading.Event):
        self.retention = retention
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> RetentionThread:
        self.thread.start()
        return self

    def _run(self) -> None:
        index = None
        try:
            while not self.stop.wait(self.retention.cfg.retention_interval_seconds):
                try:
                    if index is None:
                        index = EventIndex(self.retention.root)   # its own connection: own thread
                    self.retention.enforce(index)
                except sqlite3.Error as e:   # a full disk: say so, the folders are still kept in limits
                    log.error("retention: %s", index_problem(e, self.retention.root / DB_NAME))
                    self.retention.enforce(None)
                except Exception:
                    log.exception("retention pass failed; trying again in %.0f s",
                                  self.retention.cfg.retention_interval_seconds)
        finally:
            if index is not None:
                index.close()


def prepare_recordings(cfg: RecordingsConfig, live: bool = True) -> tuple[EventIndex | None, Retention]:
    """Before recording: clear what an earlier crash left half-written, enforce
    the limits (first: that frees space before the index needs any), then open
    (or repair) the index. A disk too full to open the index stops a `scan`
    (StorageError, exit 1); `run` goes on detecting without it, and the
    retention thread indexes what was recorded once there is space."""
    root = Path(cfg.path)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MotionwatchError(f"recordings.path {root}: cannot use it: {e.strerror or e}") from None
    sweep_leftovers(root)
    retention = Retention(root, cfg)
    done = retention.enforce(None)
    index = _open_for_recording(root, live)
    if index is not None:
        for rel, _, _ in done.deleted:
            retention._unindex(index, root / rel)
        retention.reconcile(index, done.folders)   # adds events the index lacks, drops rows of vanished folders
    log.info("recordings: %d event(s), %.2f GB in %s; %.1f GB free%s", done.events - len(done.deleted),
             done.bytes / GB, root, done.free / GB,
             f"; retention deleted {len(done.deleted)} event(s)" if done.deleted else "")
    tight = room_warning(cfg, done.bytes, retention.disk_usage(str(root)))
    if tight:
        log.warning("recordings: %s", tight)
    return index, retention


def _open_for_recording(root: Path, live: bool) -> EventIndex | None:
    try:
        index, note = open_index(root)
    except StorageError as e:
        if not live:
            raise
        log.error("%s; detection goes on and events are recorded when there is space", e)
        return None
    except (OSError, sqlite3.Error) as e:
        raise MotionwatchError(f"recordings.path {root}: cannot use it: {getattr(e, 'strerror', None) or e}") \
            from None
    if note:
        log.warning("%s", note)
    return index
