"""One log line per lighting change the detector compensated, so a user can see
that a light switched on, a cloud or the camera's exposure was noticed and not
taken for motion.

It reads only the detector's own per-frame lighting estimate (the global gain
that maps the background onto the frame, re-based every frame), so it works
the same on real cameras as on the demo.
"""

from __future__ import annotations

# A change is over once the gain has stayed at 1 (nothing to compensate) this long.
SETTLE_S = 0.5
# Smaller total changes are exposure wobble, not worth a line.
MIN_CHANGE = 0.10
# A change still going after this long (a sunset) is reported and measured afresh.
MAX_SPAN_S = 30.0


class LightingLog:
    """Feed every analysed frame; returns a message when a lighting change has ended."""

    def __init__(self) -> None:
        self._total = 1.0          # product of the per-frame gains since the change began
        self._began: float | None = None
        self._last = 0.0           # time of the last frame that needed compensating
        self._motion = False       # an event started while the light was changing

    def feed(self, ts: float, gain: float, lighting_jump: bool, event_started: bool) -> str | None:
        changing = gain != 1.0 or lighting_jump
        if changing:
            if self._began is None:
                self._began, self._total, self._motion = ts, 1.0, False
            self._total *= gain
            self._last = ts
        if self._began is None:
            return None
        self._motion |= event_started
        if ts - self._last < SETTLE_S and ts - self._began < MAX_SPAN_S:
            return None
        return self.finish()

    def finish(self) -> str | None:
        """End a change still going (the source ended or was lost); its message, if any."""
        if self._began is None:
            return None
        total, motion, self._began = self._total, self._motion, None
        if abs(total - 1.0) < MIN_CHANGE:
            return None
        change = f"{100 * (total - 1.0):+.0f}% brightness"
        if motion:
            return f"lighting change ({change}) while motion was seen"
        return f"lighting change ignored ({change})"
