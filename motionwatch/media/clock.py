"""A recorded file's own clock: each frame's time from the file's timestamps.

Frame index / frame rate is the time only in a constant-rate file. Cameras and
NVRs also write files whose rate varies (a night-time exposure halves it, a
phone records variable rate) or that have gaps (frames dropped under load,
motion-triggered segments joined into one export); there the index puts every
later event early, and an offset in event.json no longer finds the moment in a
player. So a scan's frame times follow the presentation timestamps, as a player
seeks by them. Where a file has none (a raw .264 stream) or they go wrong, the
frame interval stands in.

Which timestamp a picture has is chosen as FFmpeg chooses for players (its
best-effort timestamp): the picture's pts, unless pts have gone backward more
often than decode timestamps have. An AVI of an Xvid or DivX camera or capture
tool with "packed" B-frames gives its pictures pts out of order (1, 4, 6, 5, 7,
9, 8, ...); each step back counted a frame interval, and a 30 s file's events
were timed as if it lasted 50 s. Its decode timestamps run in order.
"""

from __future__ import annotations

from fractions import Fraction

# A forward jump larger than this is taken for a discontinuity (recordings joined
# with a timestamp reset, a broken muxer), not time that passed, and counts as
# the frame intervals the index says. Joined motion-triggered segments are
# usually seconds to minutes apart.
MAX_GAP_S = 600.0
# A timestamp at most this many frame intervals behind the highest one since the
# anchor is a picture shown out of its timestamps' order, not a reset: B-frames in
# a container that keeps no true presentation times (H.264 in AVI or ASF, Xvid's
# packed B-frames in MKV) come with their decode order's times. H.264 reorders
# at most 16 pictures.
REORDER_FRAMES = 16
# Such a picture is placed this part of a frame interval after the one before, and
# the anchor is kept: the pictures after it are at their own times again, where
# counting it as a frame interval made every one a frame later (a 10 s file with
# B-frames in AVI timed 12 s long).
REORDER_STEP = 0.25


class FileClock:
    """Seconds since the first frame, fed frames in display order."""

    def __init__(self, time_base: Fraction | None, fps: float, start: int | None = None):
        """`start`: the stream's start time (time base units), where a player's timeline begins."""
        self.tb = float(time_base) if time_base else 0.0
        self.fps = fps
        self._start = start
        self._anchor: tuple[int, float] | None = None   # (pts, its time): later times count from it
        self._last: tuple[int | None, float, int] | None = None   # (pts, time, index) of the last frame
        self._top: int | None = None   # the highest timestamp since the anchor
        self._first: int | None = None
        self._pts = _Order()
        self._dts = _Order()

    def time(self, pts: int | None, index: int, dts: int | None = None) -> float:
        """The time of frame `index` (damaged frames counted) whose timestamps are `pts`
        and `dts` (the decode timestamp FFmpeg gives the picture, `frame.dts`)."""
        pts = self._best_effort(pts, dts)
        last = self._last
        if last is None:
            t = index / self.fps
            self._anchor = (pts, t) if pts is not None else None
            self._first = pts
        elif self._reordered(pts):
            t = last[1] + REORDER_STEP / self.fps
        elif pts is not None and last[0] is not None and self._anchor is not None \
                and 0 < (pts - last[0]) * self.tb <= MAX_GAP_S:
            # After reordered pictures a timestamp may still be behind the time given.
            t = max(self._anchor[1] + (pts - self._anchor[0]) * self.tb, last[1] + REORDER_STEP / self.fps)
        else:
            # No timestamp, a repeated or backward one, or a jump: a frame interval per
            # frame since the last one, and later timestamps count from this frame.
            t = last[1] + (index - last[2]) / self.fps
            self._anchor = (pts, t) if pts is not None else None
            self._top = pts
        if pts is not None and (self._top is None or pts > self._top):
            self._top = pts
        self._last = (pts, t, index)
        return t

    def _reordered(self, pts: int | None) -> bool:
        """Whether `pts` is a little behind the highest timestamp since the anchor (REORDER_FRAMES)."""
        top = self._top
        return pts is not None and top is not None and self._anchor is not None and pts < top \
            and (top - pts) * self.tb * self.fps <= REORDER_FRAMES

    def _best_effort(self, pts: int | None, dts: int | None) -> int | None:
        """libavcodec's guess_correct_pts: a missing timestamp stands in for the
        other's last, and the kind that went backward less often is taken."""
        self._dts.see(dts, pts)
        self._pts.see(pts, dts)
        if pts is not None and (dts is None or self._pts.faults <= self._dts.faults):
            return pts
        return dts

    def lead(self) -> float:
        """Seconds from the stream's start time to the first frame; 0.0 when either is
        unknown. Pictures before a file's first keyframe (a recording started
        mid-GOP) are not decoded, so the first frame may come later."""
        if self._first is None or self._start is None or not self.tb:
            return 0.0
        return max(0.0, (self._first - self._start) * self.tb)

    @property
    def last(self) -> float | None:
        """The time of the last frame given, None before the first."""
        return self._last[1] if self._last is not None else None


class _Order:
    """How often one kind of timestamp went backward or repeated."""

    def __init__(self):
        self.faults = 0
        self._last: int | None = None

    def see(self, stamp: int | None, other: int | None) -> None:
        if stamp is not None:
            self.faults += self._last is not None and stamp <= self._last
            self._last = stamp
        elif other is not None:
            self._last = other


class StreamPacer:
    """The pace of a stream that arrives in bursts (HLS, DASH: a whole segment of
    seconds of frames at once): each frame is held until as long after the one
    the schedule is anchored on as their timestamps are apart. A live loop times
    frames by their arrival and takes only what it can, so a burst left it a few
    frames a segment and events a few milliseconds long.

    The schedule follows the latest frame: one that comes later than it is due
    becomes the anchor (a new segment, a slow network), so a steady stream is
    never held back by more than its own jitter. A frame due more than `max_lead_s`
    from now (the stream's clock jumped, or a camera clock running slow has built
    up that much) is the anchor too, which bounds the hold."""

    def __init__(self, time_base: Fraction, max_lead_s: float):
        self.tb = float(time_base)
        self.max_lead_s = max_lead_s
        self._anchor: tuple[int, float] | None = None   # (pts, monotonic time it was handed on)

    def delay(self, pts: int | None, now: float) -> float:
        """Seconds to hold the frame shown at `pts` that came at `now` (monotonic)."""
        if pts is None or not self.tb:
            return 0.0
        if self._anchor is not None:
            due = self._anchor[1] + (pts - self._anchor[0]) * self.tb
            if now < due <= now + self.max_lead_s:
                return due - now
        self._anchor = (pts, now)
        return 0.0
