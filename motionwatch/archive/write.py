"""The client side of a task: put a worker's events into the recordings and the index."""

from __future__ import annotations

from pathlib import Path

from motionwatch.archive.task import FoundEvent
from motionwatch.index.database import EVENT_JSON, EventIndex, inside, write_atomic


def save_event(root: Path, index: EventIndex, ev: FoundEvent) -> str:
    """Write one event's files (event.json last, each atomically) and index it; its id."""
    folder = None   # relative to the root, as the index keeps it
    for rel, data in sorted(ev.files.items(), key=lambda kv: kv[0].endswith(EVENT_JSON)):
        path = root / rel
        if not inside(root, path):
            raise OSError(f"{rel}: a task's file outside the recordings folder; not written")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        folder = Path(rel).parent
    if folder is not None:
        index.add(ev.record, folder)
    return ev.record["id"]
