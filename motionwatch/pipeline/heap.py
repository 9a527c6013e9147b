"""Large buffers go back to the system when freed, for `run`'s months of watching.

glibc serves blocks above its mmap threshold (128 KiB at start) from mmap and
returns them on free, but each such free raises the threshold to the block's
size (up to 32 MiB). After the first event of a 1080p camera (a 6 MB BGR
snapshot, 3 MB decoded pictures) those blocks come from the heap instead and
leave holes that the process's RSS keeps (docs/performance.md, issue 15).
Fixing the threshold turns the adjustment off. No library offers this; it is
glibc's `mallopt`, and elsewhere (musl, macOS) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("motionwatch")

M_MMAP_THRESHOLD = -3   # glibc's malloc.h
# glibc's own starting value, kept: with 1 MiB a 1080p camera peaked higher (a
# keyframe's packet, 100-500 KB, sits in the pre-roll ring for seconds and then
# leaves a hole). Detection-size arrays stay below it.
MMAP_THRESHOLD = 128 << 10


def map_large_buffers() -> bool:
    """Fix glibc's mmap threshold; False where the C library has no mallopt."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD, ok)
    return ok
