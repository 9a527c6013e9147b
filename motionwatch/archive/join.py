"""Joining an event cut at a segment boundary with its continuation in the next
segment, into the one event a sequential scan records.

A segment stops at its end even while an event is open (the motion that never
stops on a busy road would otherwise make it read to the end of the file while
the next segment scans the same frames). The next segment's tracker has that
event open too, since it started in the lead-in; from its first own frame it
counts motion afresh, so the two halves cover disjoint frames and add up:
start and first snapshot from the earlier half, end from the later, the best
frame of both (ties to the earlier, as the tracker's `>` does), motion frames
summed. The clip is remuxed from the file's own packets over the whole event,
through the same PacketClip a live scan uses, so its parts fall where a
sequential scan's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av

from motionwatch.events import thin_series
from motionwatch.media.remux import CodecTemplate
from motionwatch.media.ring import Packet
from motionwatch.sinks.clip_remux import PacketClip
from motionwatch.index.database import EVENT_JSON

# Files that show the snapshot frame: they come from the half whose best frame wins.
BEST_FILES = ("snapshot.jpg", "thumb.jpg", "annotated.jpg")
# Packets read past the clip's last keyframe, so that B-frames shown before it are whole.
REORDER_SLACK = 16
# Packets handed to the clip at a time (the clip holds about one GOP, never the whole event).
BATCH = 64


@dataclass
class Cut:
    """An event cut open at a boundary, as joined so far."""

    record: dict
    files: dict[str, bytes]
    peak: float               # unrounded, to compare with the next half's as the tracker would
    first_pts: int | None
    last_motion: int          # frame index of the last motion before the cut
    last_pts: int | None = None   # pts of the last frame with motion (of the latest half)
    reason: str | None = None     # why the latest half ended
    wall: float | None = None     # epoch time of the first frame (the earlier half's)


def agrees(last_motion: int, facts: dict | None) -> bool:
    """The next segment saw the same event open at the boundary (the same last frame with
    motion), so its continuation is what a sequential scan would have gone on with."""
    return facts is not None and facts["last_motion"] == last_motion


def join(cut: Cut, record: dict, files: dict[str, bytes], facts: dict) -> Cut:
    """The cut event extended by the next segment's continuation (`facts` from SegmentLoop)."""
    rec = dict(cut.record)
    later_best = facts["peak"] > cut.peak
    folder = folder_of(cut.files)
    out_files = {k: v for k, v in cut.files.items() if not is_clip(k)}
    if later_best:
        for rel, data in files.items():
            if Path(rel).name in BEST_FILES:
                out_files[str(folder / Path(rel).name)] = data
        rec["boxes"] = record["boxes"]
        rec["peak_fraction"] = record["peak_fraction"]
    if record["end_frame"] >= cut.record["end_frame"]:
        for key in ("end", "end_offset_s", "end_frame"):
            rec[key] = record[key]
    rec["frames_with_motion"] = cut.record["frames_with_motion"] + record["frames_with_motion"] - facts["base_frames"]
    shift = record["start_offset_s"] - cut.record["start_offset_s"]
    since = cut.record["end_offset_s"] - cut.record["start_offset_s"]
    series = [tuple(p) for p in cut.record.get("fractions", [])]
    series += [(t + shift, f) for t, f in record.get("fractions", []) if t + shift > since]
    rec["fractions"] = thin_series(series)
    return Cut(rec, out_files, max(cut.peak, facts["peak"]), cut.first_pts, cut.last_motion,
               facts["end_pts"], facts["reason"], cut.wall)


def remux_clip(root: Path, source: str, cut: Cut, pre_roll_s: float, post_roll_s: float,
               max_seconds: float) -> dict:
    """Write the joined event's clip from the file's packets into its folder; event.json's clip fields."""
    folder = root / folder_of(cut.files)
    rec = cut.record
    with av.open(source) as container:
        stream = container.streams.video[0]
        tb = Fraction(stream.time_base)
        first = cut.first_pts - int(pre_roll_s / tb)
        end_pts = cut.last_pts + int(post_roll_s / tb)
        at_eof = cut.reason == "source ended"
        event = SimpleNamespace(first=SimpleNamespace(ts=rec["start_offset_s"], pts=cut.first_pts))
        clip = PacketClip(folder, event, CodecTemplate(stream), tb, rec.get("clip_fps") or 0.0, max_seconds)
        container.seek(max(first, 0), stream=stream, backward=True)
        for batch in _packets(container, stream, first, end_pts, at_eof):
            clip.packets(batch, cut.last_pts)
        clip.end(end_pts, at_eof)
        clip.finish()
    existing = [p for p in clip.parts if p.exists()]
    parts = [str(p.relative_to(root)) for p in existing]
    return {"clip": parts[0] if parts else None, "clip_parts": parts, **clip.summary(existing)}


def _packets(container, stream, first: int, end_pts: int, at_eof: bool):
    """Batches of the stream's packets in decode order from the last keyframe shown at or
    before `first` to a little past the keyframe after `end_pts` (or the end of the file)."""
    batch: list[Packet] = []
    started, fixed, past, seq = False, False, -1, 0
    for pkt in container.demux(stream):
        if pkt.pts is None or pkt.size == 0:
            continue
        key = bool(pkt.is_keyframe)
        if key and pkt.pts <= first:
            batch, started = [], True     # a later keyframe still before the start: begin there
        elif key:
            started = fixed = True         # past the start (or the file's first keyframe is)
        if not started:
            continue
        batch.append(Packet(seq, pkt.pts, pkt.dts, key, pkt.duration or 0, pkt))
        seq += 1
        if not at_eof:
            if past < 0 and key and pkt.pts > end_pts:
                past = 0
            elif past >= 0:
                past += 1
                if past >= REORDER_SLACK:
                    break
        if len(batch) >= BATCH and fixed:
            yield batch
            batch = []
    if batch:
        yield batch


def folder_of(files: dict[str, bytes]) -> Path:
    return next(Path(rel).parent for rel in files if Path(rel).name == EVENT_JSON)


def is_clip(rel: str) -> bool:
    return Path(rel).suffix in (".mp4", ".webm", ".mkv")
