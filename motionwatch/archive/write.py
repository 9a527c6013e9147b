"""The client side of a task: put a worker's events into the recordings and
the index, and join the events of a split file's segments into what one
sequential scan would have found."""

from __future__ import annotations

from pathlib import Path

from motionwatch.archive.task import FoundEvent, TaskResult
from motionwatch.store import EVENT_JSON, EventIndex, inside, write_atomic


def join_segments(results: list[TaskResult]) -> list[FoundEvent]:
    """A split file's events in order. A segment that started decoding inside an
    event its predecessor finished (the predecessor reads past its end for that)
    may see the tail of it as a new event: those are dropped."""
    out: list[FoundEvent] = []
    reach = -1   # the last frame with motion of the events kept so far
    for res in sorted(results, key=lambda r: r.task.segment.own_start):
        for ev in sorted(res.events, key=lambda e: e.record["start_frame"]):
            if ev.record["start_frame"] <= reach:
                continue
            out.append(ev)
            reach = max(reach, ev.record["end_frame"])
    return out


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
