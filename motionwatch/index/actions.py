"""`events keep|unkeep|delete ID` and opening the index for `events`:
change one event, folder and index together.

The folder's event.json is the truth (the index is rebuildable from it), so
it is changed first; an event is found by its full id or a unique prefix,
through the index or, when the index lacks it, on disk.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from motionwatch.index.diskspace import index_problem, is_damage, write_problem
from motionwatch.errors import ConfigError, MotionwatchError, StorageError
from motionwatch.index.database import (DamagedRow, DB_NAME, EVENT_JSON, EventIndex, folder_event_id, indexed_folder, inside,
                               iter_event_folders, open_index, read_event, remove_event_folder,
                               write_json_atomic)


def listing_index(root: Path, reindex: bool = False) -> EventIndex:
    """The index for `events`: rebuilt when asked (or when missing while event
    folders exist); a damaged one is an error that says how to fix it, and a full
    disk is not damage."""
    if reindex:
        try:
            index, note = open_index(root)   # repairs a damaged events.db
        except OSError as e:
            raise MotionwatchError(f"{root / DB_NAME}: cannot write it: {e.strerror or e}") from None
        if note:
            print(note, file=sys.stderr)
        else:
            _rebuild(index)
        print(f"reindexed {index.count()} event(s) into {root / DB_NAME}", file=sys.stderr)
        return index
    index = open_existing(root)
    if index.created and any(True for _ in iter_event_folders(root)):
        n, _ = _rebuild(index)
        print(f"{root / DB_NAME} was missing: rebuilt it from {n} event.json file(s)", file=sys.stderr)
    elif not _healthy(index):   # damaged pages: every listing would fail on them
        n, _ = _rebuild(index)
        print(f"{root / DB_NAME} was damaged: rebuilt it from {n} event.json file(s)", file=sys.stderr)
    return index


def open_existing(root: Path) -> EventIndex:
    """The index as it is; damage or a full disk is a one-line error saying what to do."""
    try:
        return EventIndex(root)
    except sqlite3.DatabaseError as e:
        raise index_failure(e, root) from None


def index_failure(e: sqlite3.Error, root: Path) -> MotionwatchError:
    """The one-line error for an index that failed: damaged (with the fix), or a full disk."""
    if not is_damage(e):
        return StorageError(index_problem(e, root / DB_NAME))
    return MotionwatchError(f"{root / DB_NAME} is damaged ({e}); rebuild it from the event "
                            "folders with `motionwatch events --reindex`")


def _healthy(index: EventIndex) -> bool:
    try:
        return index.healthy()
    except sqlite3.DatabaseError as e:
        raise StorageError(index_problem(e, index.root / DB_NAME)) from None


def _rebuild(index: EventIndex) -> tuple[int, list[str]]:
    try:
        return index.rebuild()
    except sqlite3.DatabaseError as e:
        raise StorageError(index_problem(e, index.root / DB_NAME)) from None


def find_folder(root: Path, index: EventIndex, event_id: str) -> Path:
    """The event's folder (by id or unique id prefix), checked to lie inside the root."""
    try:
        hit = index.get(event_id)
    except DamagedRow as e:  # a damaged record must not stop its own deletion
        hit = (None, e.folder, False)
    if hit is not None:
        folder = indexed_folder(root, hit[1])
    else:
        matches = [f for f in iter_event_folders(root)
                   if folder_event_id(f).startswith(event_id) and (f / EVENT_JSON).exists()]
        if not matches:
            raise MotionwatchError(f"no event with id {event_id!r} in {root} (see `motionwatch events`)")
        if len(matches) > 1:
            ids = ", ".join(folder_event_id(f) for f in matches[:5])
            raise MotionwatchError(f"{event_id!r} matches {len(matches)} events ({ids}); give more of the id")
        folder = matches[0]
    if folder.is_symlink() or not inside(root, folder):
        raise MotionwatchError(f"event {event_id!r} points outside {root}; refusing to touch it")
    if not (folder / EVENT_JSON).exists():
        raise MotionwatchError(f"event {event_id!r}: {folder} is gone; run `motionwatch events --reindex`")
    return folder


def set_kept(root: Path, index: EventIndex, event_id: str, kept: bool) -> dict:
    """Mark an event kept (retention never deletes it) or not; returns its record."""
    folder = find_folder(root, index, event_id)
    rec = read_event(folder / EVENT_JSON)
    rec["kept"] = kept
    write_json_atomic(folder / EVENT_JSON, rec)   # the truth first
    index.add(rec, folder, kept=kept)
    return rec


def delete_event(root: Path, index: EventIndex, event_id: str) -> Path:
    """Remove an event whole: folder (every file in it) and index row."""
    folder = find_folder(root, index, event_id)
    real_id = folder_event_id(folder)
    remove_event_folder(root, folder)
    index.remove(real_id)
    return folder


def event_action(root: Path, action: str, event_id: str | None) -> int:
    if not event_id:
        raise ConfigError(f"events {action}: needs an event ID (see `motionwatch events`)")
    if not root.is_dir():
        raise MotionwatchError(f"{root}: no recordings folder")
    index = open_existing(root)
    try:
        if action == "delete":
            folder = delete_event(root, index, event_id)
            print(f"deleted event {folder_event_id(folder)} ({folder})")
        else:
            rec = set_kept(root, index, event_id, action == "keep")
            print(f"event {rec['id']} is {'kept: retention will not delete it' if action == 'keep' else 'no longer kept'}")
    except OSError as e:
        raise MotionwatchError(f"event {event_id}: {write_problem(e, root)}") from None
    except ValueError as e:
        raise MotionwatchError(f"event {event_id}: {e}") from None
    except sqlite3.Error as e:   # event.json, the truth, was changed already
        raise MotionwatchError(f"event {event_id}: done in its folder, but {DB_NAME} could not follow ({e}); "
                               "run `motionwatch events --reindex`") from None
    finally:
        index.close()
    return 0
