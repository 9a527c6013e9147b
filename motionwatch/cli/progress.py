"""The terminal progress bar of `scan`: tqdm (as DVR-Scan and PySceneDetect use),
with log lines printed above the bar instead of onto its line."""

from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


class Progress:
    """Frames done of `total` (0: unknown), frames per second and time left.

    Off (nothing drawn, logging untouched) when `enabled` is false: `scan`
    turns it off when stderr is not a terminal, so logs and pipes stay clean."""

    def __init__(self, total: int, enabled: bool, stream=None, label: str = ""):
        self.enabled = enabled
        self.done = 0
        self.bar = tqdm(total=total or None, disable=not enabled, file=stream or sys.stderr, desc=label or None,
                        unit=" frames", mininterval=0.2, dynamic_ncols=True, leave=True)

    def update(self, done: int) -> None:
        self.bar.update(done - self.done)
        self.done = done

    def logging(self):
        """While this is open, log records are written above the bar (tqdm.write)."""
        return logging_redirect_tqdm() if self.enabled else contextlib.nullcontext()

    def close(self) -> None:
        self.bar.close()
