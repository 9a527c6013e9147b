"""Write a run of an MP4 track's samples as a new MP4 file: a clip by stream copy, in process.

The clip holds the source's video samples from a keyframe on, bytes untouched,
with the index first (`moov` before `mdat`, so a browser plays it while it
downloads). The sample entry is the source's own `stsd` entry (avcC/hvcC,
colour and aspect boxes kept; HEVC tagged `hvc1`, the tag Apple's players
want). Timestamps are the source's, moved so the first keyframe is shown at
0: an edit list is written only when B-frames make the keyframe's composition
time non-zero, and it hides nothing. The media bytes go from file to file in
the kernel (copy_file_range), one call per contiguous run of samples.
Box layouts: ISO/IEC 14496-12.
"""

from __future__ import annotations

import errno
import os
import struct

import numpy as np

from motionwatch.sinks.mp4_index import Mp4Track

U32 = 0xFFFFFFFF
KERNEL_COPY = getattr(os, "copy_file_range", None)   # Linux; elsewhere (None) plain reads and writes
UNITY = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def write_part(track: Mp4Track, source: str, first: int, count: int, out: str) -> None:
    """Write samples [first, first + count) of `track` (read from `source`) to `out`."""
    sl = slice(first, first + count)
    sizes, offsets = track.sizes[sl], track.offsets[sl]
    durations = track.durations[sl]
    ctts = track.ctts[sl] if track.ctts is not None else None
    shown = track.dts[sl] - track.dts[first] + (ctts if ctts is not None else 0)
    start = int(shown[0])                           # the keyframe's composition time
    length = int((shown + durations).max()) - start
    payload = int(sizes.sum())
    big = payload + 8 > U32
    mdat_head = struct.pack(">I4sQ", 1, b"mdat", payload + 16) if big else struct.pack(">I4s", payload + 8, b"mdat")
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isom", b"iso2",
                b"avc1" if track.codec == "h264" else b"", b"mp41")
    # The moov's size does not depend on the chunk offset's value.
    probe = _moov(track, durations, ctts, sl, count, start, length, 0)
    data_at = len(ftyp) + len(probe) + len(mdat_head)
    moov = _moov(track, durations, ctts, sl, count, start, length, data_at)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, ftyp + moov + mdat_head)
        src = os.open(source, os.O_RDONLY)
        try:
            for at, n in _runs(offsets, sizes):
                _copy(src, fd, at, n)
        finally:
            os.close(src)
    finally:
        os.close(fd)


def _runs(offsets: np.ndarray, sizes: np.ndarray) -> list[tuple[int, int]]:
    """(offset, length) of each stretch of samples that lie back to back in the source."""
    ends = offsets + sizes
    breaks = np.flatnonzero(offsets[1:] != ends[:-1]) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [len(offsets)]))
    return [(int(offsets[a]), int(ends[b - 1] - offsets[a])) for a, b in zip(starts, stops)]


def _copy(src: int, dst: int, at: int, n: int) -> None:
    """n bytes from offset `at` of src to dst's current position, in the kernel when it can."""
    while n > 0:
        try:
            done = KERNEL_COPY(src, dst, n, at)
        except (OSError, TypeError) as e:   # across filesystems on older kernels, or not Linux
            if isinstance(e, OSError) and e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                                                          errno.EOPNOTSUPP, errno.EBADF):
                raise
            done = _write_all(dst, os.pread(src, min(n, 1 << 22), at))
        if done <= 0:
            raise OSError(errno.EIO, "the source file ended early (was it truncated?)")
        at, n = at + done, n - done


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", len(body) + 8, kind) + body


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


def _rle(values: np.ndarray) -> np.ndarray:
    """(count, value) rows for runs of equal values, as stts/ctts store them."""
    breaks = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate(([0], breaks))
    counts = np.diff(np.append(starts, len(values)))
    return np.stack([counts, values[starts]], axis=1)


def _moov(track: Mp4Track, durations, ctts, sl: slice, count: int, start: int, length: int,
          data_at: int) -> bytes:
    scale, total = track.timescale, int(durations.sum())
    v = 1 if max(length, total) > U32 else 0
    times = struct.pack(">QQIQ" if v else ">IIII", 0, 0, scale, length)
    mvhd = _full(b"mvhd", v, 0, times, struct.pack(">IH10x", 0x10000, 0x100), UNITY, bytes(24),
                 struct.pack(">I", 2))
    ids = struct.pack(">QQIIQ" if v else ">IIIII", 0, 0, 1, 0, length)
    tkhd = _full(b"tkhd", v, 3, ids, bytes(8), struct.pack(">hhhH", 0, 0, 0, 0), track.matrix,
                 struct.pack(">II", track.width, track.height))
    # B-frames: the keyframe is shown `start` after it is decoded; the edit list makes that 0.
    edts = b""
    if start:
        ev = 1 if max(length, start) > 0x7FFFFFFF else 0
        entry = struct.pack(">Qq" if ev else ">Ii", length, start) + struct.pack(">hh", 1, 0)
        edts = _box(b"edts", _full(b"elst", ev, 0, struct.pack(">I", 1), entry))
    mdhd = _full(b"mdhd", 1 if total > U32 else 0, 0,
                 struct.pack(">QQIQ" if total > U32 else ">IIII", 0, 0, scale, total),
                 struct.pack(">HH", track.language, 0))
    hdlr = _full(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\0")
    vmhd = _full(b"vmhd", 0, 1, bytes(8))
    dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
    stbl = _box(b"stbl", *_sample_tables(track, durations, ctts, sl, count, data_at))
    minf = _box(b"minf", vmhd, dinf, stbl)
    trak = _box(b"trak", tkhd, edts, _box(b"mdia", mdhd, hdlr, minf))
    return _box(b"moov", mvhd, trak)


def _sample_tables(track: Mp4Track, durations, ctts, sl: slice, count: int, data_at: int) -> list[bytes]:
    entry = track.entry
    if track.codec == "hevc":
        entry = entry[:4] + b"hvc1" + entry[8:]
    tables = [_full(b"stsd", 0, 0, struct.pack(">I", 1), entry),
              _full(b"stts", 0, 0, _entries(_rle(durations), ">u4"))]
    if ctts is not None:
        neg = bool((ctts < 0).any())
        tables.append(_full(b"ctts", 1 if neg else 0, 0, _entries(_rle(ctts), ">i4" if neg else ">u4")))
    keys = track.keys[sl]
    if not keys.all():
        tables.append(_full(b"stss", 0, 0, _entries(np.flatnonzero(keys) + 1, ">u4")))
    sizes = track.sizes[sl]
    tables.append(_full(b"stsc", 0, 0, _entries(np.array([[1, count, 1]]), ">u4")))
    if (sizes == sizes[0]).all():
        tables.append(_full(b"stsz", 0, 0, struct.pack(">II", int(sizes[0]), count)))
    else:
        tables.append(_full(b"stsz", 0, 0, struct.pack(">II", 0, count), sizes.astype(">u4").tobytes()))
    # One chunk holds every sample; its offset is where mdat's payload starts, right after
    # ftyp and moov, so it always fits stco's 32 bits (no co64 needed, however big the clip).
    tables.append(_full(b"stco", 0, 0, struct.pack(">II", 1, data_at)))
    return tables


def _entries(rows: np.ndarray, fmt: str) -> bytes:
    """An entry count and the rows, big-endian."""
    return struct.pack(">I", len(rows)) + np.ascontiguousarray(rows).astype(fmt).tobytes()
