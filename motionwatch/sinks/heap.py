"""Memory freed after an event goes back to the system, for `run`'s months of watching.

An event's end frees large blocks at once (a 1080p snapshot's 6 MB BGR, its
JPEG buffers). glibc raises its mmap threshold to the largest block freed, so
such blocks come from the heap from then on and leave holes there that the
process's RSS keeps (docs/performance.md, issue 15). `malloc_trim` hands the free
pages back, once per event on the sink thread. Fixing the threshold instead
also worked, but mapped the detector's per-frame arrays anew every frame, which
cost live CPU. No library offers this; it is glibc's, and elsewhere (musl,
macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes


def _trim():
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    return trim


_MALLOC_TRIM = _trim()


def give_back_free_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
