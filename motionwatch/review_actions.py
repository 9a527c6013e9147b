"""`events keep|unkeep|delete ID`: change one event, folder and index together."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from motionwatch.errors import ConfigError, MotionwatchError
from motionwatch.store import EVENT_JSON, EventIndex, write_json_atomic


def find_folder(root: Path, index: EventIndex, event_id: str) -> Path:
    """The event's folder, checked to lie inside the recordings root."""
    hit = index.get(event_id)
    if hit is not None:
        folder = (root / hit[1]).resolve()
    else:
        matches = list(root.glob(f"*/*/*-{event_id}/{EVENT_JSON}"))
        if not matches:
            raise MotionwatchError(f"no event with id {event_id!r} in {root}")
        folder = matches[0].parent.resolve()
    if root.resolve() not in folder.parents:
        raise MotionwatchError(f"event {event_id!r} points outside {root}; refusing to touch it")
    return folder


def set_kept(root: Path, index: EventIndex, event_id: str, kept: bool) -> None:
    folder = find_folder(root, index, event_id)
    path = folder / EVENT_JSON
    rec = json.loads(path.read_text())
    rec["kept"] = kept
    write_json_atomic(path, rec)
    index.add(rec, folder, kept=kept)


def delete_event(root: Path, index: EventIndex, event_id: str) -> Path:
    folder = find_folder(root, index, event_id)
    index.remove(event_id)
    shutil.rmtree(folder, ignore_errors=False)
    return folder


def event_action(root: Path, action: str, event_id: str | None) -> int:
    if not event_id:
        raise ConfigError(f"events {action}: needs an event ID (see `motionwatch events`)")
    if not root.is_dir():
        raise MotionwatchError(f"{root}: no recordings folder")
    index = EventIndex(root)
    try:
        if action == "delete":
            folder = delete_event(root, index, event_id)
            print(f"deleted event {event_id} ({folder})")
        else:
            set_kept(root, index, event_id, action == "keep")
            print(f"event {event_id} is {'kept: retention will not delete it' if action == 'keep' else 'no longer kept'}")
    except OSError as e:
        raise MotionwatchError(f"event {event_id}: {e}") from None
    finally:
        index.close()
    return 0
