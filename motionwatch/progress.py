"""A one-line terminal progress bar for `scan`: frames, fps and ETA."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, enabled: bool, stream=None):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self._last = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return  # redraw at most 5 times a second
        self._last = now
        self.stream.write("\r" + self.line(now))
        self.stream.flush()

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        secs = max(now - self.t0, 1e-6)
        fps = self.done / secs
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            eta = (self.total - self.done) / fps if fps > 0 else 0.0
            return (f"[{bar:<30}] {self.done}/{self.total} frames {100 * frac:3.0f}% "
                    f"{fps:6.0f} fps  ETA {int(eta) // 60:d}:{int(eta) % 60:02d} ")
        return f"{self.done} frames {fps:6.0f} fps "

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
