"""Ctrl-C and SIGTERM for the commands that record (`run`, `scan`)."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("motionwatch")


def install_signals(stop: threading.Event) -> None:
    """First SIGINT/SIGTERM: finish open events and exit 0. Second: exit at once."""
    def handler(signum, _frame):
        if stop.is_set():
            # os.write, not print: the handler may interrupt a write to stderr. Finished
            # files were written under temporary names and renamed, so none is left half-written.
            os.write(2, b"motionwatch: second signal, exiting now; finished events are intact\n")
            os._exit(1)
        log.info("%s received: finishing open events (send again to exit at once)", signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
