"""`run` drops from the page cache the libraries a fresh install left in large folios
(cli.memory): Linux maps a whole large folio at the first touch, so right after
`pip install` a live camera's RSS was far above its 150 MB budget (docs/performance.md).
Checked on a file written here, as pip writes a wheel's libraries, with the kernel's
own accounting of what one read maps (/proc/self/smaps)."""

from __future__ import annotations

import mmap
import os
import sys

import pytest

from motionwatch.cli.memory import LIBRARY_PACKAGES, library_files, release_large_folios

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's page cache")

SIZE = 8 * 2**20
SMALL_FOLIO_KB = 128   # what one read maps with small folios: fault-around's 64 KiB, with room


def written_library(folder) -> str:
    """A file the way an installer leaves it: written whole, then flushed to disk."""
    path = str(folder / "libfresh.so")
    with open(path, "wb") as f:
        f.write(os.urandom(SIZE))
        f.flush()
        os.fsync(f.fileno())
    return path


def kb_one_read_maps(path: str) -> int:
    """The resident kB of a new mapping of `path` after one read of its middle byte."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        m[SIZE // 2]
        rss, ours = 0, False
        for line in open("/proc/self/smaps"):
            if "-" in line.split(" ", 1)[0]:
                ours = line.rstrip().endswith(path)
            elif ours and line.startswith("Rss:"):
                rss += int(line.split()[1])
        return rss


def test_a_freshly_written_library_is_dropped_once_and_read_back_in_small_folios(tmp_path):
    path = written_library(tmp_path)
    if kb_one_read_maps(path) <= SMALL_FOLIO_KB:
        pytest.skip("this kernel or file system keeps written files in small folios: nothing to drop")
    assert release_large_folios([path]) == 1
    assert kb_one_read_maps(path) <= SMALL_FOLIO_KB
    # Read back, it is not dropped again: this happens once after an install, not at every start.
    with open(path, "rb") as f:
        f.read()
    assert release_large_folios([path]) == 0


def test_a_library_not_wholly_cached_is_left_alone(tmp_path):
    """Pages already read back from disk are what a start after a reboot has: nothing to drop,
    and nothing read from disk to find out."""
    path = written_library(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, SIZE // 2, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    assert release_large_folios([path]) == 0


def test_the_libraries_looked_at_are_the_installed_opencv_pyav_and_numpy():
    names = {p.name for p in library_files(LIBRARY_PACKAGES)}
    assert any(n.startswith("cv2") for n in names)
    assert any(n.startswith("libavcodec") for n in names)   # PyAV's bundled FFmpeg (av.libs)
    assert any(n.startswith("_multiarray_umath") for n in names)
