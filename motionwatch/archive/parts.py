"""Finished segments of a split file, kept across runs: a long file interrupted
mid-scan resumes at the segments it had not finished instead of from zero.

When a run ends without finishing a split file (Ctrl-C, a failed segment), each
of its segments that was scanned to its end has its TaskResult (its events'
records and files' bytes, and the facts join.py needs at its boundaries)
pickled under the recordings folder in `.scan-parts/` (hidden: neither a camera
nor an event to the rest of motionwatch), and remembered in the index's `scanned_files` table by a row of its own: the
file's key with the segment's frames (`/abs/file.mp4#frames=L:A-B`), and the
file's size, mtime and settings hash. The next run takes a kept segment only when
that row still matches and it planned the same segment; the file's events are
then joined over kept and new segments as in one run. Once a file's events are
written whole, its kept segments are removed.

Pickle, because a TaskResult is what the workers already hand back that way;
the files are written by this process only, into the user's own recordings.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

from motionwatch.archive.ledger import Ledger
from motionwatch.archive.task import ScanTask, TaskResult
from motionwatch.index.database import write_atomic

log = logging.getLogger("motionwatch")

PARTS_DIR = ".scan-parts"


class Parts:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.folder = ledger.root / PARTS_DIR

    def key(self, path: Path, task: ScanTask) -> str:
        seg = task.segment
        end = "" if seg.own_end is None else seg.own_end
        return f"{Ledger.key(path)}#frames={seg.first_index}:{seg.own_start}-{end}"

    def _file(self, key: str, camera: str) -> Path:
        return self.folder / (hashlib.sha256(f"{camera}\0{key}".encode()).hexdigest()[:20] + ".pickle")

    def keep(self, path: Path, camera: str, res: TaskResult) -> None:
        """Remember a segment that was scanned to its end, for the next run."""
        key = self.key(path, res.task)
        try:
            self.folder.mkdir(exist_ok=True)
            write_atomic(self._file(key, camera), pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as e:
            log.warning("%s: cannot keep a finished segment for a later run: %s", path, e)
            return
        st = Path(path).stat()
        self.ledger.index.set_scanned(key, camera, st.st_size, st.st_mtime, self.ledger.digest, True, [])

    def load(self, path: Path, camera: str, task: ScanTask) -> TaskResult | None:
        """The kept result of this planned segment, when the file and settings are unchanged."""
        key = self.key(path, task)
        row = self.ledger.index.scanned(key, camera)
        st = Path(path).stat()
        if not (row and row["done"] and row["size"] == st.st_size and row["mtime"] == st.st_mtime
                and row["config_hash"] == self.ledger.digest):
            return None
        try:
            res = pickle.loads(self._file(key, camera).read_bytes())
        except Exception as e:   # noqa: BLE001  (unreadable, or written by another version: scan it again)
            log.info("%s: a kept segment is unreadable (%s); scanning it again", path, e)
            return None
        res.task = task   # its place in this run's plan
        return res

    def drop(self, path: Path, camera: str, tasks: list[ScanTask]) -> None:
        """Forget a file's kept segments (its events are written whole)."""
        for task in tasks:
            key = self.key(path, task)
            if self.ledger.index.scanned(key, camera):
                self._file(key, camera).unlink(missing_ok=True)
                self.ledger.index.forget_scanned(key, camera)
