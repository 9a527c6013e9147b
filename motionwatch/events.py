"""Turn per-frame detections into events: idle → active → (gap) → ended.

Timing comes only from `Frame.ts`, never the wall clock, so tests are exact.
The tracker also owns the pre-roll ring buffer (measured in time) and tells
sinks which frames belong to an event's clip; when clips are stream copies it
keeps no frames (`clip=False`) and the capture loop hands the sinks packet
ranges of the source's packet ring instead (`ClipPackets`). Ring and clip frames are kept at
clip size (`events.clip_width`), so the memory the ring holds is
pre_roll_seconds x fps x clip frame bytes, no more. The ring keeps references
to the source's frames: a source must hand out a new array per frame.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass, field

from motionwatch.config import EventsConfig
from motionwatch.model import Box, Detection, Event, Frame, iso

# Most points of the fraction-over-time series kept per event (for charts).
SERIES_POINTS = 600
# Slack for float timestamps (66/15 - 2.0 < 36/15), so "2 s of pre-roll at
# 15 fps" is exactly 30 frames.
EPS = 1e-6


def analysed_run(min_frames: int, step: float) -> int:
    """Analysed frames over the trigger that start an event, when one is analysed
    every `step` source frames (detection.fps): `min_frames` counts the source's
    frames, so a short visit that crosses a small watched area in a few frames
    is not missed at a lower analysis rate; but never fewer than two while
    min_frames asks for more, so a one-frame glitch still starts nothing."""
    if step <= 1.0 + EPS:
        return min_frames
    return max(min(min_frames, 2), math.ceil(min_frames / step - EPS))


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a frame stood (index, times, and its packet's pts when it has one),
    without its picture: a decoded 1080p picture is 3 MB, and every one held
    keeps a buffer of the decoder's pool busy, so the pool grows by one."""

    index: int
    ts: float
    wall: float
    pts: int | None = None


def mark(frame: Frame | Mark) -> Mark:
    if isinstance(frame, Mark):
        return frame
    return Mark(frame.index, frame.ts, frame.wall, getattr(frame, "pts", None))


@dataclass
class OpenEvent:
    """The running state of an event while it is open."""

    id: str
    camera: str
    first: Frame | Mark       # a Mark when events.snapshot is "best" and it is not the best
    first_boxes: list[Box]
    last_motion: Frame | Mark      # a Mark: only its times are needed
    best: Frame
    best_boxes: list[Box]
    peak: float
    frames_with_motion: int
    part: int = 1
    part_start_ts: float = 0.0
    series: list[tuple[float, float]] = field(default_factory=list)
    clip_fps: float = 0.0          # frame rate the clip is written at (the source's)
    clip_last_index: int = -1      # index of the last frame handed out for the clip

    def record(self) -> Event:
        """The event as it stands, with `end` at the last frame with motion."""
        return Event(
            id=self.id, camera=self.camera,
            start=iso(self.first.wall), end=iso(self.last_motion.wall),
            start_offset_s=round(self.first.ts, 3), end_offset_s=round(self.last_motion.ts, 3),
            start_frame=self.first.index, end_frame=self.last_motion.index,
            peak_fraction=round(self.peak, 5), frames_with_motion=self.frames_with_motion,
            snapshot=None, clip=None, boxes=[list(b) for b in self.best_boxes],
            extra={"fractions": thin_series(self.series)},
        )


# --- signals for the sinks ---------------------------------------------------

@dataclass
class EventStarted:
    event: OpenEvent
    preroll: list[Frame]      # frames before and including the trigger, oldest first


@dataclass
class EventFrame:
    event: OpenEvent
    frame: Frame              # a frame for the clip (active or post-roll), at clip size
    cut: bool = False         # frames before this one were left out (a long quiet stretch)


@dataclass
class ClipPart:
    event: OpenEvent
    part: int                 # a new clip part starts with the next EventFrame


@dataclass
class ClipPackets:
    """A run of the source's compressed packets for a stream-copy clip, in decode order
    (the first batch starts on a keyframe). Times are on the packet ring's clock
    (media.ring.Packet.clock: the stream's times, run on across a restart of them):
    `first` is the event's first picture's, packets before the newest keyframe shown
    at or before `upto` belong in the clip for sure; the last batch (`end` set) says
    where the clip ends."""

    event: OpenEvent
    packets: list             # media.ring.Packet
    template: object          # the source's av stream: codec parameters for the muxer
    time_base: object         # fractions.Fraction of the packets' times
    first: int
    upto: int
    end: int | None = None
    at_eof: bool = False
    copy: bool = True         # the clip is these packets as they are (else encoded from them)


@dataclass
class EventEnded:
    event: OpenEvent
    record: Event
    reason: str               # "gap", "source ended", "camera lost", "shutdown"
    saved: dict | None = None  # the final event.json record, set by the recorder
    folder: str | None = None  # its folder, set by the recorder


Signal = EventStarted | EventFrame | ClipPart | ClipPackets | EventEnded


class EventTracker:
    """Feed it every analysed frame; it returns the signals that frame causes."""

    def __init__(self, camera: str, cfg: EventsConfig, trigger_fraction: float,
                 min_frames: int, fps: float, clip: bool | None = None,
                 clip_fps: float | None = None):
        self.camera = camera
        self.cfg = cfg
        self.trigger = trigger_fraction
        self.clip = cfg.clip if clip is None else clip
        self.fps = fps if fps and fps > 0 else 10.0
        self.clip_fps = clip_fps if clip_fps and clip_fps > 0 else self.fps
        self.min_frames = analysed_run(min_frames, self.clip_fps / self.fps)
        # The current streak over the trigger; only the frames that may become a
        # snapshot keep their pictures (the best, and the first unless events.snapshot
        # is "best"), the others are Marks.
        self.run: list[tuple[Frame | Mark, Detection]] = []
        self._run_best = 0
        self.ring: deque[Frame] = deque()               # pre-roll buffer
        self.open: OpenEvent | None = None

    # -- public ---------------------------------------------------------------

    def feed(self, frame: Frame, det: Detection) -> list[Signal]:
        moving = det.ready and det.fraction >= self.trigger
        if self.open is not None:
            return self._feed_open(frame, det, moving)
        self._remember(frame)
        if not moving:
            self._clear_run()
            return []
        self._extend_run(frame, det)
        if len(self.run) < self.min_frames:
            return []
        return self._start()

    def _clear_run(self) -> None:
        self.run.clear()
        self._run_best = 0

    def _extend_run(self, frame: Frame, det: Detection) -> None:
        run = self.run
        run.append((frame, det))
        demote = len(run) - 1
        if demote and det.fraction > run[self._run_best][1].fraction:   # ties keep the earlier, as max() does
            demote, self._run_best = self._run_best, demote
        # The first frame keeps its picture only where it may be saved for being first.
        if demote != self._run_best and (demote or self.cfg.snapshot == "best"):
            run[demote] = (mark(run[demote][0]), run[demote][1])

    def carry(self, frame: Frame) -> list[Signal]:
        """A frame that was read but not analysed (detection.fps): it still
        belongs in the pre-roll and the clip, so clips keep the source's rate."""
        if not self.clip:
            return []
        self._remember(frame)
        ev = self.open
        if ev is None or frame.ts - ev.last_motion.ts > self.cfg.post_roll_seconds + EPS:
            return []
        return self._clip_frames(ev, frame)

    def flush(self, reason: str) -> list[Signal]:
        """End any open event now (source ended, camera lost, shutdown)."""
        self._clear_run()
        self.ring.clear()
        if self.open is None:
            return []
        return [self._end(reason)]

    @property
    def active(self) -> bool:
        return self.open is not None

    # -- internals ------------------------------------------------------------

    def _remember(self, frame: Frame) -> None:
        """Keep `pre_roll_seconds` of frames (clips only) plus the current streak."""
        if not self.clip:
            return
        if self.ring and self.ring[-1].index == frame.index:
            return
        self.ring.append(self._clip_sized(frame))
        # Pre-roll counts back from the first frame of the current motion streak.
        head = self._run_head()
        horizon = (head.ts if head is not None else frame.ts) - self.cfg.pre_roll_seconds - EPS
        while self.ring and self.ring[0].ts < horizon:
            self.ring.popleft()

    def _run_head(self) -> Frame | None:
        return self.run[0][0] if self.run else None

    def _clip_sized(self, frame: Frame) -> Frame:
        """The frame scaled down to `events.clip_width` (a new Frame), or itself."""
        width = self.cfg.clip_width
        if not width:
            return frame
        # `size`, not `image`: a lazy frame (AvFrame, JpegFrame) would decode its
        # colour now, for every frame, though most ring frames are never saved.
        w, h = frame.size
        if width >= w:
            return frame
        size = (width - width % 2, max(2, round(h * width / w / 2) * 2))
        return frame.scaled(size)   # a camera's JPEG stays undecoded: the clip encoder scales it

    def _clip_frames(self, ev: OpenEvent, frame: Frame) -> list[Signal]:
        """Clip signals up to `frame`: ring frames not yet handed out (a quiet
        stretch longer than the post-roll that motion ended), then a new part
        when this one has reached `events.max_seconds`."""
        out: list[Signal] = []
        fresh = [f for f in self.ring if f.index > ev.clip_last_index]
        for f in fresh:
            if f.ts - ev.part_start_ts >= self.cfg.max_seconds - EPS:
                ev.part += 1
                ev.part_start_ts = f.ts
                out.append(ClipPart(ev, ev.part))
            out.append(EventFrame(ev, f, cut=f.index != ev.clip_last_index + 1))
            ev.clip_last_index = f.index
        return out

    def _start(self) -> list[Signal]:
        first, first_det = self.run[0]
        best, best_det = self.run[self._run_best]
        last = self.run[-1][0]
        ev = OpenEvent(
            id=os.urandom(5).hex(), camera=self.camera,
            first=first, first_boxes=list(first_det.boxes), last_motion=mark(last),
            best=best, best_boxes=list(best_det.boxes), peak=best_det.fraction,
            frames_with_motion=len(self.run), part_start_ts=first.ts,
            series=[(f.ts - first.ts, d.fraction) for f, d in self.run],
            clip_fps=self.clip_fps,
        )
        self.open = ev
        preroll = list(self.ring) if self.clip else []
        if preroll:
            ev.part_start_ts = preroll[0].ts
            ev.clip_last_index = preroll[-1].index
        self._clear_run()
        return [EventStarted(ev, preroll)]

    def _feed_open(self, frame: Frame, det: Detection, moving: bool) -> list[Signal]:
        ev = self.open
        self._remember(frame)
        ev.series.append((frame.ts - ev.first.ts, det.fraction))
        if len(ev.series) > 4 * SERIES_POINTS:
            ev.series = thin_series(ev.series)
        if moving:
            ev.last_motion = mark(frame)
            ev.frames_with_motion += 1
            if det.fraction > ev.peak:
                ev.peak, ev.best, ev.best_boxes = det.fraction, frame, list(det.boxes)
        quiet = frame.ts - ev.last_motion.ts
        if quiet > max(self.cfg.gap_seconds, self.cfg.post_roll_seconds):
            return [self._end("gap")]
        if self.clip and quiet <= self.cfg.post_roll_seconds + EPS:
            return self._clip_frames(ev, frame)
        return []

    def _end(self, reason: str) -> EventEnded:
        ev = self.open
        self.open = None
        return EventEnded(ev, ev.record(), reason)


def thin_series(series: list[tuple[float, float]]) -> list[list[float]]:
    """At most SERIES_POINTS points, keeping each bucket's peak so spikes survive."""
    if len(series) <= SERIES_POINTS:
        return [[round(t, 3), round(f, 5)] for t, f in series]
    step = len(series) / SERIES_POINTS
    out = []
    for k in range(SERIES_POINTS):
        bucket = series[int(k * step):int((k + 1) * step)] or series[-1:]
        t, f = max(bucket, key=lambda p: p[1])
        out.append([round(t, 3), round(f, 5)])
    return out
