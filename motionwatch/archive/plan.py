"""Cutting the work into tasks: whole files, or segments of a long file that
start at keyframes.

A segment owns the events that *start* inside it, [own_start, own_end) in frame
indices. It begins decoding `lead_in_seconds` earlier (at the keyframe before)
so its background model has learnt the scene as a sequential scan's would
have. An event still open at own_end is cut there and joined with the next
segment's continuation (join.py); a motion streak just starting is read on
until it is decided.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, replace

import av

from motionwatch.config import Config, DetectionConfig

# The background's time constant: settled to well under a grey level after this many.
SETTLE_TIME_CONSTANTS = 5
# A segment must own at least this many lead-ins of video, or the extra decoding eats the gain.
MIN_OWN_LEAD_INS = 2


@dataclass(frozen=True)
class Keyframes:
    """A file's keyframes found by demuxing alone (no decoding)."""

    pts: list[int]        # keyframe pts, ascending
    index: list[int]      # their frame index in display order
    frames: int           # frames in the file
    fps: float


@dataclass(frozen=True)
class Segment:
    start_pts: int | None     # keyframe decoding starts at (None: the file's start)
    first_index: int          # frame index of that keyframe
    own_start: int            # first frame whose events this segment reports
    own_end: int | None       # first frame it does not (None: to the end)


WHOLE = Segment(None, 0, 0, None)


def lead_in_seconds(det: DetectionConfig) -> float:
    """How long before its first own frame a segment starts decoding: the warm-up,
    the time after which something that stopped joins the background, and a few of
    the background's time constants (background_alpha is per frame at 10 fps)."""
    tau = -1.0 / (10.0 * math.log(1.0 - min(det.background_alpha, 0.999)))
    return det.warmup_seconds + det.static_seconds + SETTLE_TIME_CONSTANTS * tau


def keyframes(path: str) -> Keyframes:
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25.0)
        pts, keys = [], []
        for pkt in container.demux(stream):
            if pkt.pts is None:
                continue
            pts.append(pkt.pts)
            if pkt.is_keyframe:
                keys.append(pkt.pts)
    order = sorted(pts)
    position = {p: i for i, p in enumerate(order)}
    keys.sort()
    return Keyframes(keys, [position[k] for k in keys], len(order), fps)


def split(kf: Keyframes, parts: int, lead_in_s: float) -> list[Segment]:
    """At most `parts` segments of equal decoding work (own frames plus lead-in),
    each owned range starting at a keyframe; one WHOLE when the file is too short."""
    lead = round(lead_in_s * kf.fps)
    parts = min(parts, max(1, kf.frames // (lead * MIN_OWN_LEAD_INS + lead) if lead else parts))
    if parts <= 1 or len(kf.pts) < 2:
        return [WHOLE]
    work = (kf.frames + (parts - 1) * lead) / parts
    bounds = [0]
    for k in range(1, parts):
        want = round(k * work - (k - 1) * lead)   # every later segment also decodes a lead-in
        i = max(0, bisect_right(kf.index, want) - 1)
        if kf.index[i] > bounds[-1]:
            bounds.append(kf.index[i])
    segments = []
    for k, own_start in enumerate(bounds):
        own_end = bounds[k + 1] if k + 1 < len(bounds) else None
        if own_start == 0:
            segments.append(Segment(None, 0, 0, own_end))
            continue
        i = max(0, bisect_right(kf.index, own_start - lead) - 1)
        segment = Segment(kf.pts[i] if kf.index[i] else None, kf.index[i], own_start, own_end)
        if segment.first_index <= segments[-1].first_index:
            # Keyframes too far apart: its lead-in would decode all of the segment before.
            segments[-1] = replace(segments[-1], own_end=own_end)
        else:
            segments.append(segment)
    longest = max((s.own_end or kf.frames) - s.first_index for s in segments)
    if len(segments) < 2 or longest > kf.frames - lead:
        return [WHOLE]   # no segment ends a lead-in sooner than one scan of the whole file would
    return segments
