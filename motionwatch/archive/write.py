"""The client side of a task: put a worker's events into the recordings and
the index, and join the events of a split file's segments into what one
sequential scan would have found."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from motionwatch.archive.join import Cut, agrees, is_clip, join, remux_clip
from motionwatch.archive.task import FoundEvent, TaskResult
from motionwatch.index.database import EVENT_JSON, EventIndex, inside, write_atomic

log = logging.getLogger("motionwatch")


def join_segments(results: list[TaskResult], finish_cut=None, rerun=None) -> list[FoundEvent]:
    """A split file's events in order. An event cut open at a boundary is joined with
    the next segment's continuation (join.py); `finish_cut(cut)` makes the joined one's
    clip and record. Where the next segment did not see the event open as the cut one
    had it (rare: its lead-in was too short for that scene), `rerun(task)` scans the
    cut segment again without cutting, as before: reading past its end until the event
    is over. A segment that started decoding inside an event its predecessor finished
    may see the tail of it as a new event: those are dropped."""
    results = sorted(results, key=lambda r: r.task.segment.own_start)
    for i in range(len(results) - 1):
        prev, nxt = results[i], results[i + 1]
        if prev.cut is not None and not prev.interrupted and not nxt.interrupted \
                and not agrees(prev.cut["last_motion"], nxt.continued_facts) and rerun is not None:
            log.info("%s: frame %d: the next segment saw the event at the boundary otherwise; "
                     "scanning the segment again without cutting", prev.task.path, prev.task.segment.own_end)
            results[i] = rerun(replace(prev.task, cut=False))
    out: list[FoundEvent] = []
    reach = -1   # the last frame with motion of the events kept so far
    cut: Cut | None = None
    for res in results:
        if cut is not None and res.continued is not None and agrees(cut.last_motion, res.continued_facts):
            cut = join(cut, res.continued.record, res.continued.files, res.continued_facts)
            reach = max(reach, cut.record["end_frame"])
            if res.cut is not None and res.cut["id"] == res.continued.record["id"]:
                cut.last_motion = res.cut["last_motion"]   # cut again at this segment's end
                continue
        if cut is not None:
            out.append(_finish(cut, finish_cut))
            cut = None
        for ev in sorted(res.events, key=lambda e: e.record["start_frame"]):
            if ev.record["start_frame"] <= reach:
                continue
            reach = max(reach, ev.record["end_frame"])
            if res.cut is not None and ev.record["id"] == res.cut["id"]:
                cut = _as_cut(res, ev)
            else:
                out.append(ev)
    if cut is not None:
        out.append(_finish(cut, finish_cut))
    return out


def _as_cut(res: TaskResult, ev: FoundEvent) -> Cut:
    return Cut(ev.record, ev.files, res.cut["peak"], res.cut["first_pts"], res.cut["last_motion"],
               res.cut.get("last_pts"), ev.reason, ev.wall)


def _finish(cut: Cut, finish_cut) -> FoundEvent:
    """A cut event, joined or not (its continuation is missing: interrupted), with its
    clip made by `finish_cut`: the segment that cut it sent no clip (task.own_events)."""
    if finish_cut is not None:
        return finish_cut(cut)
    return FoundEvent(cut.record, cut.files, cut.wall, cut.reason)


def joined_event(root: Path, source: str, events_cfg, cut: Cut) -> FoundEvent:
    """The joined event with its clip remuxed into `root` and its event.json bytes remade."""
    record = dict(cut.record)
    if events_cfg.clip and cut.first_pts is not None and cut.last_pts is not None:
        record.update(remux_clip(root, source, cut, events_cfg.pre_roll_seconds,
                                 events_cfg.post_roll_seconds, events_cfg.max_seconds))
    elif not any(is_clip(rel) for rel in cut.files):   # no clip to point at
        record.update(clip=None, clip_parts=[])
    files = {rel: (json.dumps(record, indent=2) + "\n").encode() if rel.endswith(EVENT_JSON) else data
             for rel, data in cut.files.items()}
    return FoundEvent(record, files, cut.wall, cut.reason)


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
