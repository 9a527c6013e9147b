"""A recorded file's own clock: each frame's time from the file's timestamps.

Frame index / frame rate is the time only in a constant-rate file. Cameras and
NVRs also write files whose rate varies (a night-time exposure halves it, a
phone records variable rate) or that have gaps (frames dropped under load,
motion-triggered segments joined into one export); there the index puts every
later event early, and an offset in event.json no longer finds the moment in a
player. So a scan's frame times follow the presentation timestamps, as a player
seeks by them. Where a file has none (a raw .264 stream) or they go wrong, the
frame interval stands in.
"""

from __future__ import annotations

from fractions import Fraction

# A forward jump larger than this is taken for a discontinuity (recordings joined
# with a timestamp reset, a broken muxer), not time that passed, and counts as
# the frame intervals the index says. Joined motion-triggered segments are
# usually seconds to minutes apart.
MAX_GAP_S = 600.0


class FileClock:
    """Seconds since the first frame, fed frames in display order."""

    def __init__(self, time_base: Fraction | None, fps: float):
        self.tb = float(time_base) if time_base else 0.0
        self.fps = fps
        self._anchor: tuple[int, float] | None = None   # (pts, its time): later times count from it
        self._last: tuple[int | None, float, int] | None = None   # (pts, time, index) of the last frame

    def time(self, pts: int | None, index: int) -> float:
        """The time of frame `index` (damaged frames counted) whose timestamp is `pts`."""
        last = self._last
        if last is None:
            t = index / self.fps
            self._anchor = (pts, t) if pts is not None else None
        elif pts is not None and last[0] is not None and self._anchor is not None \
                and 0 < (pts - last[0]) * self.tb <= MAX_GAP_S:
            t = self._anchor[1] + (pts - self._anchor[0]) * self.tb
        else:
            # No timestamp, a repeated or backward one, or a jump: a frame interval per
            # frame since the last one, and later timestamps count from this frame.
            t = last[1] + (index - last[2]) / self.fps
            self._anchor = (pts, t) if pts is not None else None
        self._last = (pts, t, index)
        return t

    @property
    def last(self) -> float | None:
        """The time of the last frame given, None before the first."""
        return self._last[1] if self._last is not None else None
