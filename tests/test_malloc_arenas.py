"""`run` caps glibc's malloc arenas (cli.memory): each thread that allocates no
longer gets a heap of its own, which held a live 1080p camera's peak RSS above
its 150 MB budget. Checked in a fresh interpreter, where threads that each
allocate are counted as heaps by glibc's own malloc_info."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, os, sys, tempfile, threading
if sys.argv[1] == "limit":
    from motionwatch.cli.memory import limit_arenas
    limit_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(200):
        libc.free(ctypes.c_void_p(libc.malloc(200_000)))
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
path = tempfile.mktemp()
f = libc.fopen(path.encode(), b"w"); libc.malloc_info(0, ctypes.c_void_p(f)); libc.fclose(ctypes.c_void_p(f))
print(open(path).read().count("<heap nr="))
os.unlink(path)
"""


def heaps(mode: str, env: dict | None = None) -> int:
    import os
    e = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    e.update(env or {})
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         timeout=60, check=True, env=e)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_run_caps_the_heaps_threads_allocate_from():
    from motionwatch.cli.memory import ARENAS
    assert heaps("plain") > ARENAS      # eight threads: more heaps than the cap by default
    assert heaps("limit") <= ARENAS
    # A user's own MALLOC_ARENA_MAX wins.
    assert heaps("limit", {"MALLOC_ARENA_MAX": "6"}) > ARENAS
