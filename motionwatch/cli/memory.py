"""The C allocator's settings for a long `run`.

glibc gives each thread that allocates its own heap (arena), up to eight per
core. The capture, reader and sink threads all allocate (FFmpeg's pictures,
NumPy's buffers), and memory freed in one heap does not serve another: a live
1080p camera held several MB more with the default, against a 150 MB budget
(docs/performance.md, 2026-12-05 15:30 UTC), and a process that runs for months
fragments fewer heaps. MALLOC_ARENA_MAX, when the user sets it, wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8    # glibc's mallopt parameter (malloc.h)
ARENAS = 2


def limit_arenas() -> None:
    """Cap glibc's arenas at ARENAS; call before the threads start. Elsewhere a no-op."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # a C library without mallopt
        return
    mallopt(M_ARENA_MAX, ARENAS)
