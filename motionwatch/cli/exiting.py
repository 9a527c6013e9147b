"""Ending the `motionwatch` process once its command is done."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def leave(code: int) -> NoReturn:
    """Exit with `code`, skipping the interpreter's teardown where nothing needs it.

    Python's own teardown frees some 500 modules and every config model's objects
    one at a time: 40-50 ms of CPU on every command, a seventh of a short `scan`'s
    start-up cost (docs/performance.md, 2026-12-06). The files a command writes are
    closed before it returns (clip writers, event.json), and index connections left
    to the garbage collector are closed by an atexit handler (index/database.py), so
    with only the main thread left the atexit handlers (those, logging's flush,
    temporary folders, multiprocessing) are all that must still run. A thread still
    working (never after a normal return) gets the ordinary exit, which waits for it.
    """
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()   # CPython's own call at exit (no public name for it)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (`motionwatch events | head`)
            pass
    os._exit(code)
