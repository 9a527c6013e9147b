"""Which files a `scan PATH...` means: files as given, folders walked recursively,
globs expanded; in folders a file is video by its extension or, failing that,
by its first bytes (a DVR's `.dav`/`.264`-less exports), everything else skipped."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from motionwatch.pipeline.preflight import check_regular_file
from motionwatch.sources.base import VIDEO_SUFFIXES

# Container signatures: (offset, bytes). Enough to recognise what DVRs and
# cameras write without opening every file with FFmpeg.
SIGNATURES = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"\x00\x00\x01\xba"),
              (0, b"\x47"), (0, b"FLV"), (0, b"DHAV"), (0, b"DKIF"),   # Dahua export, IVF (VP8/VP9/AV1)
              (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))   # ASF (.asf/.wmv)
# A raw H.264/HEVC export starts with a start code and a parameter set, an access unit
# delimiter or an SEI: H.264 NAL types (low 5 bits) 6, 7, 9; HEVC's (bits 1-6) 32-35, 39.
H264_FIRST_NALS = {6, 7, 9}
HEVC_FIRST_NALS = {32, 33, 34, 35, 39}


@dataclass
class Found:
    files: list[Path] = field(default_factory=list)
    skipped: int = 0          # files in folders that are not video
    missing: list[str] = field(default_factory=list)   # arguments that matched nothing
    failed: list[tuple[str, str]] = field(default_factory=list)   # (path, why) of what could not be looked at


def looks_like_video(path: Path) -> bool:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if head[:1] == b"\x47":   # MPEG-TS: a sync byte every 188 bytes, not just the first
        return _ts_sync(path)
    return any(head[at:at + len(sig)] == sig for at, sig in SIGNATURES if sig != b"\x47") or _annex_b(head)


def _annex_b(head: bytes) -> bool:
    """Whether the bytes begin a raw H.264 or HEVC elementary stream."""
    for code in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        if head.startswith(code) and len(head) > len(code) + 1:
            nal = head[len(code)]
            if nal & 0x80:      # the forbidden bit
                return False
            return nal & 0x1F in H264_FIRST_NALS or (nal >> 1) & 0x3F in HEVC_FIRST_NALS
    return False


def _ts_sync(path: Path) -> bool:
    with open(path, "rb") as f:
        data = f.read(188 * 3 + 1)
    return len(data) > 376 and data[188] == data[376] == 0x47


def find_videos(args: list[str]) -> Found:
    """Every video file the arguments name, each once, in the order given (folders sorted)."""
    found, seen = Found(), set()

    def add(p: Path) -> None:
        # Named twice (a folder and a file in it) is once; links keep their own names, as cameras.
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            found.files.append(p)

    for arg in args:
        matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))] if glob.has_magic(arg) else [Path(arg)]
        if not any(m.exists() for m in matches):
            found.missing.append(arg)
            continue
        for m in matches:
            if m.is_dir():
                for f in _walk(m, found):
                    if looks_like_video(f):
                        add(f)
                    else:
                        found.skipped += 1
            else:
                # A FIFO or device would block the decoder for ever: refused up front, one line.
                check_regular_file(str(m), "scan")
                add(m)   # a file named on purpose is tried, whatever its name; a bad one is reported
    return found


def _walk(folder: Path, found: Found) -> list[Path]:
    """The files under `folder`, sorted, hidden ones and hidden folders left out. A folder
    that cannot be read, and a link to a video file that leads nowhere (its target gone,
    or a loop), go into `found.failed`: scanning "all of it" must not quietly leave
    them out. Links to folders are not followed (os.walk's default), so a link loop
    cannot make the walk endless."""
    files: list[Path] = []

    def unreadable(err: OSError) -> None:
        found.failed.append((err.filename, f"cannot read the folder: {err.strerror}"))

    for top, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(top) / name
            if name.startswith("."):
                continue
            if path.is_file():
                files.append(path)
            elif path.is_symlink() and not path.exists() and path.suffix.lower() in VIDEO_SUFFIXES:
                found.failed.append((str(path), f"a link that leads nowhere ({_link_error(path)})"))
    return sorted(files)


def _link_error(path: Path) -> str:
    try:
        path.stat()
    except OSError as e:
        return e.strerror or str(e)
    return "not a file"
