"""What `scan` remembers of each file (the index's `scanned_files` table): its
size, mtime and a hash of everything that decides its events, whether its scan
finished, and the ids of the events it produced. A finished, unchanged file is
skipped; anything else has its earlier events removed before it is scanned
again, so a file's events are never doubled (an interrupted file is redone)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from motionwatch.config import Config, to_plain
from motionwatch.events import EventEnded
from motionwatch.sinks import Sink
from motionwatch.index.database import EventIndex, remove_event_folder

log = logging.getLogger("motionwatch")


def config_hash(cfg: Config, camera: str, detect_every: int, start_time: str | None) -> str:
    """Everything that changes which events a file gives and how they are saved."""
    plain = to_plain(cfg)
    cam = dict(plain["cameras"][0])
    cam.pop("source", None)
    cam.pop("name", None)
    what = {"detection": plain["detection"], "events": plain["events"], "camera": cam, "name": camera,
            "detect_every": detect_every, "start_time": start_time}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Ledger:
    def __init__(self, index: EventIndex, root: Path, digest: str):
        self.index = index
        self.root = Path(root)
        self.digest = digest
        self.began: dict[str, tuple[int, float]] = {}   # file -> (size, mtime) when its scan began

    @staticmethod
    def key(path: Path) -> str:
        return os.path.abspath(path)   # a link is its own file (its own camera), as in discover

    def done(self, path: Path, camera: str) -> bool:
        """Scanned to the end before, unchanged, with the same settings."""
        row = self.index.scanned(self.key(path), camera)
        st = Path(path).stat()
        return bool(row and row["done"] and row["size"] == st.st_size and row["mtime"] == st.st_mtime
                    and row["config_hash"] == self.digest)

    def begin(self, path: Path, camera: str) -> int:
        """Forget the file's earlier events (a rescan, a change, an interrupted run); how many.
        Which events the notifiers were told of is kept when this run resumes an unfinished
        one (notify.Sent): those are the same events, and each is told once."""
        row = self.index.scanned(self.key(path), camera)
        st = Path(path).stat()
        if not self.resumes(row, st.st_size):
            self.index.forget_notified(self.key(path), camera)
        self.began[self.key(path)] = (st.st_size, st.st_mtime)
        removed = 0
        for event_id in (row or {}).get("event_ids", []):
            got = self.index.get(event_id)
            if got is not None:
                try:
                    remove_event_folder(self.root, self.root / got[1])
                except OSError as e:
                    log.warning("%s: could not remove an earlier event: %s", path, e)
                self.index.remove(event_id)
                removed += 1
        self.record(path, camera, [], done=False)
        return removed

    def resumes(self, row: dict | None, size: int) -> bool:
        """The file's last scan did not finish, with the same settings, and the file (now
        `size` bytes) is as it was or has grown (a recording still being written: the
        same events, and more)."""
        return bool(row and not row["done"] and row["size"] <= size and row["config_hash"] == self.digest)

    def changed(self, path: Path) -> bool:
        """The file was written to while it was scanned (a recording still going on)."""
        st = Path(path).stat()
        return self.began.get(self.key(path), (st.st_size, st.st_mtime)) != (st.st_size, st.st_mtime)

    def record(self, path: Path, camera: str, event_ids: list[str], done: bool) -> None:
        """Remember the file as it was when its scan began: one written to meanwhile is
        then a changed file to the next run, which scans it again."""
        st = Path(path).stat()
        size, mtime = self.began.get(self.key(path), (st.st_size, st.st_mtime))
        self.index.set_scanned(self.key(path), camera, size, mtime, self.digest, done, event_ids)


class EventIds(Sink):
    """Collects the ids of the events a single-file scan records, for its ledger row."""

    name = "event-ids"

    def __init__(self):
        self.ids: list[str] = []

    def handle(self, signal) -> None:
        if isinstance(signal, EventEnded):
            self.ids.append(signal.record.id)


def open_ledger(index: EventIndex, cfg: Config, args) -> tuple[Ledger, EventIds]:
    """The ledger and id collector of a single-file scan (commands.cmd_scan)."""
    digest = config_hash(cfg, cfg.cameras[0].name, args.detect_every, args.start_time)
    sweep_split_leftovers(index, Path(cfg.recordings.path))
    return Ledger(index, Path(cfg.recordings.path), digest), EventIds()


# Where versions that split long files kept a split file's finished segments.
SPLIT_PARTS_DIR = ".scan-parts"


def sweep_split_leftovers(index: EventIndex, root: Path) -> None:
    """Remove what a run interrupted under an earlier version left of a split file: its
    kept segments and their index rows. The file itself is scanned again whole, since
    its own row never said done."""
    parts = root / SPLIT_PARTS_DIR
    if parts.is_dir():
        shutil.rmtree(parts, ignore_errors=True)
    if index.forget_split_segments():
        log.info("removed the kept segments of an interrupted split scan (files are no longer split)")
