"""The terminal progress bar of `scan`: tqdm (as DVR-Scan and PySceneDetect use),
with log lines printed above the bar instead of onto its line."""

from __future__ import annotations

import contextlib
import sys


class Progress:
    """Frames done of `total` (0: unknown), frames per second and time left.

    Off (nothing drawn, logging untouched) when `enabled` is false: `scan`
    turns it off when stderr is not a terminal, so logs and pipes stay clean."""

    def __init__(self, total: int, enabled: bool, stream=None, label: str = ""):
        self.enabled = enabled
        self.done = 0
        self.bar = None
        if enabled:
            # Imported only for a bar: tqdm brings asyncio, 30 ms of CPU at every
            # start of a scan run from a script or a pipe (docs/performance.md).
            from tqdm import tqdm
            self.bar = tqdm(total=total or None, file=stream or sys.stderr, desc=label or None,
                            unit=" frames", mininterval=0.2, dynamic_ncols=True, leave=True)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done

    def logging(self):
        """While this is open, log records are written above the bar (tqdm.write)."""
        if self.bar is None:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm
        return logging_redirect_tqdm()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
