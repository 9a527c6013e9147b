"""Telling a full disk from a damaged file, and saying so in words a user acts on.

SQLite reports a full disk as SQLITE_FULL, or as an I/O error when it cannot
even grow its shared-memory file; neither means the index is damaged. Only
SQLITE_CORRUPT and SQLITE_NOTADB do.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

# Below this much free space a write that failed is taken to have failed for lack of room.
FULL_BELOW = 1 << 20
_DAMAGE = (11, 26)   # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_FULL = 13           # SQLITE_FULL


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding `path` (its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_full(path: Path) -> bool:
    free = free_bytes(path)
    return free is not None and free < FULL_BELOW


def is_damage(e: sqlite3.Error) -> bool:
    """True only when SQLite says the file itself is damaged (not full, not busy)."""
    code = getattr(e, "sqlite_errorcode", None)   # Python 3.11+
    if code is not None:
        return code & 0xFF in _DAMAGE
    text = str(e)
    return "malformed" in text or "not a database" in text


def index_problem(e: sqlite3.Error | OSError, path: Path) -> str:
    """What went wrong opening or writing the index, when it is not damage."""
    code = getattr(e, "sqlite_errorcode", 0) or 0
    if code & 0xFF == _FULL or getattr(e, "errno", None) == errno.ENOSPC or disk_full(path):
        return f"{path}: disk full ({e}); the index is intact and is used again once there is space"
    return f"{path}: {e}; the index was left as it is"


def write_problem(e: OSError, path: Path) -> str:
    """An OSError from writing recordings, saying 'disk full' when that is the cause
    even if the error does not (FFmpeg may say 'Error initializing output stream')."""
    reason = e.strerror or str(e)
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC or (code not in _NOT_SPACE and disk_full(path)):
        return reason if reason.startswith("disk full") else f"disk full ({reason})"
    return reason


# Errors that say plainly what else is wrong, even on a disk that is also full.
_NOT_SPACE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT)
