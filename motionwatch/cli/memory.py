"""What a long `run` does at start so its memory is what it uses: the C allocator's
arenas, and library pages a fresh install left in large page-cache folios.

glibc gives each thread that allocates its own heap (arena), up to eight per
core. The capture, reader and sink threads all allocate (FFmpeg's pictures,
NumPy's buffers), and memory freed in one heap does not serve another: a live
1080p camera held several MB more with the default, against a 150 MB budget
(docs/performance.md, 2026-12-05 15:30 UTC), and a process that runs for months
fragments fewer heaps. MALLOC_ARENA_MAX, when the user sets it, wins.
"""

from __future__ import annotations

import ctypes
import importlib.util
import mmap
import os
import struct
import sys
from pathlib import Path

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


# The packages whose shared libraries are most of what `run` maps (OpenCV alone is 80 MB).
LIBRARY_PACKAGES = ("cv2", "numpy", "av", "pydantic_core")
PROT_READ, MAP_SHARED = 1, 1
# Pages Linux maps around a read fault in small folios (fault_around_bytes, 64 KiB);
# a touch that maps more than twice that met a large folio.
FAULT_AROUND_PAGES = 65536 // mmap.PAGESIZE
PROBE_PAGES = 512   # the window looked at around the touched page (2 MiB, the largest folio)
RESIDENT_BIT = bytes(b & 1 for b in range(256))   # mincore's answer per page; other bits are reserved


def release_fresh_library_pages() -> None:
    """Drop from the page cache the big libraries held there in large folios, before
    they are imported; elsewhere than Linux a no-op.

    A file just written (pip unpacking a wheel) sits in the page cache in large
    folios, and Linux (6.18 here, ext4) maps a whole folio on the first touch: right
    after `pip install`, `run` held tens of MB more RSS than after a reboot, for as
    long as it ran (docs/performance.md, 2026-12-06 03:40 UTC). Pages read back from
    disk come in readahead's small folios, so this happens once after an install,
    not at every start. A library is dropped only if it is wholly cached (what a
    write leaves) and one read of it maps more pages than fault-around would; pages
    another process maps stay where they are."""
    if sys.platform.startswith("linux"):
        release_large_folios(library_files(LIBRARY_PACKAGES))


def release_large_folios(paths: list[Path]) -> int:
    """Drop from the page cache each of `paths` held there in large folios (see
    in_large_folios); how many were dropped."""
    try:
        libc = _libc()
        pagemap = open("/proc/self/pagemap", "rb", buffering=0)
    except (OSError, AttributeError):
        return 0
    dropped = 0
    with pagemap:
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                if in_large_folios(libc, pagemap, fd):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    dropped += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return dropped


def library_files(packages: tuple[str, ...]) -> list[Path]:
    """The shared libraries of `packages` and of the wheels' bundled `*.libs` folders
    beside them, found without importing the packages."""
    files, sites = [], set()
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for folder in (spec.submodule_search_locations or []) if spec else []:
            files += Path(folder).rglob("*.so*")
            sites.add(Path(folder).parent)
    for site in sites:
        files += (p for libs in site.glob("*.libs") for p in libs.glob("*.so*"))
    return [p for p in files if p.is_file()]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


def in_large_folios(libc, pagemap, fd: int) -> bool:
    """Whether the open file is wholly in the page cache and one read of its middle
    page maps more than fault-around's pages (/proc/self/pagemap's present bits).
    Asks nothing of the disk: a file not wholly cached is not touched."""
    size = os.fstat(fd).st_size
    pages = -(-size // mmap.PAGESIZE)
    if pages <= 2 * FAULT_AROUND_PAGES:
        return False
    addr = libc.mmap(None, size, PROT_READ, MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        return False
    try:
        resident = ctypes.create_string_buffer(pages)
        if libc.mincore(addr, size, resident) != 0 or 0 in resident.raw.translate(RESIDENT_BIT):
            return False
        middle = pages // 2
        ctypes.c_char.from_address(addr + middle * mmap.PAGESIZE).value   # one read fault
        first = max(0, middle - PROBE_PAGES // 2)
        count = min(pages, middle + PROBE_PAGES // 2) - first
        pagemap.seek((addr // mmap.PAGESIZE + first) * 8)
        entries = struct.unpack(f"<{count}Q", pagemap.read(count * 8))
        return sum(e >> 63 for e in entries) > 2 * FAULT_AROUND_PAGES
    finally:
        libc.munmap(addr, size)
