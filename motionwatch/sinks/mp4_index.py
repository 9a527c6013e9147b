"""The video track of an MP4/MOV file, read from its `moov` box: what cutting clips needs.

Reading the sample table in process replaces one ffprobe run per source file
(starting the program and demuxing cost ~50 ms of CPU): only the box headers
and the `moov` box are read, never the media data. The timestamps are the ones
ffmpeg 5.1 (and so ffprobe) reports: the track's edit list shifts them, as the
common `elst` ffmpeg/x264 write for B-frames does (first shown frame at 0, the
decode times of the frames before it negative).

Only the plain layouts are taken; anything else raises `Unsupported`, and the
caller lists the packets with ffprobe as before: a fragmented file (`moof`,
`mvex`), several sample descriptions, an edit list other than one media edit
(optionally after one empty edit that delays the track), an edit that hides
frames at either end, an empty `stss`, `stps`, or tables that disagree.
Box layouts: ISO/IEC 14496-12 (8.6.x sample tables, 8.6.6 edit list).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from motionwatch.sinks import h264_sps

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"meta", b"pdin"}
MAX_MOOV = 256 << 20      # an index bigger than this is not a camera file; let ffprobe deal with it
MAX_SAMPLES = 50_000_000  # 23 days at 25 fps
CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}


class Unsupported(Exception):
    """This file's layout is not one the in-process reader takes (the message says why)."""


@dataclass(eq=False)
class Mp4Track:
    """The first video track: stream facts and one row per sample in decode order."""

    codec: str                # h264 / hevc; anything else is refused before this exists
    yuv420_8bit: bool | None  # None: could not tell (the caller asks ffprobe)
    entry: bytes              # the `stsd` sample entry, verbatim (avcC/hvcC, colour boxes)
    timescale: int
    language: int             # mdhd's packed ISO-639 code
    width: int                # tkhd 16.16 fixed point, as stored
    height: int
    matrix: bytes             # tkhd's 36-byte display matrix (rotation)
    pts: np.ndarray           # int64, ffprobe's presentation times (time base 1/timescale)
    dts: np.ndarray           # int64, decode times from 0 (no edit list applied)
    durations: np.ndarray     # int64
    ctts: np.ndarray | None   # int64 composition offsets, None when the file has no ctts
    keys: np.ndarray          # bool
    offsets: np.ndarray       # int64 byte offset of each sample in the file
    sizes: np.ndarray         # int64

    @property
    def time_base(self) -> Fraction:
        return Fraction(1, self.timescale)

    @property
    def duration(self) -> float:
        return float(self.durations.sum()) / self.timescale

    @property
    def fps(self) -> float:
        """ffprobe's avg_frame_rate: samples over the summed sample durations."""
        total = int(self.durations.sum())
        return len(self.durations) * self.timescale / total if total else 0.0


def read_track(path: str) -> Mp4Track:
    """The first video track of the MP4/MOV at `path`; Unsupported (or OSError) otherwise."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        moov = _find_moov(f, size)
    try:
        return _video_track(moov, size)
    except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
        raise Unsupported(f"its MP4 index is damaged ({e})") from None


def sample_count(path: str) -> int | None:
    """How many samples the first track's `stsz` lists (None when unreadable): the
    check that an MP4 ffmpeg wrote holds the frames asked for."""
    try:
        with open(path, "rb") as f:
            moov = _find_moov(f, os.fstat(f.fileno()).st_size)
        for kind, start, end in _children(moov):
            if kind == b"trak":
                stsz = _tree(moov, start, end).get(b"stsz")
                return struct.unpack_from(">I", moov, stsz[0] + 8)[0] if stsz else None
    except (OSError, Unsupported, struct.error, ValueError):
        pass
    return None


def _find_moov(f, file_size: int) -> bytes:
    """The `moov` box's body, found by reading only top-level box headers."""
    pos, moov = 0, None
    while pos + 8 <= file_size:
        f.seek(pos)
        head = f.read(16)
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                break
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            size = file_size - pos
        if pos == 0 and kind not in TOP_LEVEL:
            raise Unsupported("it is not an MP4/MOV file")
        if size < header:
            raise Unsupported("its MP4 boxes are damaged")
        if kind == b"moof":
            raise Unsupported("it is a fragmented MP4")
        if kind == b"moov":
            if size > MAX_MOOV or pos + size > file_size:
                raise Unsupported("its moov box is truncated or too big")
            moov = f.read(size - header) if header == 16 else head[8:] + f.read(size - 16)
        pos += size
    if moov is None:
        raise Unsupported("it has no moov box (not an MP4/MOV file, or an unfinished recording)")
    return moov


def _children(buf: bytes, start: int = 0, end: int | None = None):
    """(kind, body start, body end) of each box in buf[start:end]."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} overruns its parent")
        yield kind, pos + header, pos + size
        pos += size


def _tree(buf: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """The first box of each kind under a `trak`, by kind (paths are unambiguous there)."""
    found: dict[bytes, tuple[int, int]] = {}
    for kind, s, e in _children(buf, start, end):
        found.setdefault(kind, (s, e))
        if kind in CONTAINERS:
            for k, v in _tree(buf, s, e).items():
                found.setdefault(k, v)
    return found


def _video_track(moov: bytes, file_size: int) -> Mp4Track:
    top = list(_children(moov))
    if any(kind == b"mvex" for kind, _, _ in top):
        raise Unsupported("it is a fragmented MP4")
    mvhd = next(((s, e) for kind, s, e in top if kind == b"mvhd"), None)
    if mvhd is None:
        raise ValueError("no mvhd")
    version = moov[mvhd[0]]
    movie_scale = struct.unpack_from(">I", moov, mvhd[0] + (20 if version == 1 else 12))[0]
    for kind, s, e in top:
        if kind == b"trak":
            boxes = _tree(moov, s, e)
            if b"hdlr" in boxes and moov[boxes[b"hdlr"][0] + 8:boxes[b"hdlr"][0] + 12] == b"vide":
                return _track(moov, boxes, movie_scale, file_size)
    raise Unsupported("it has no video track")


def _full(buf: bytes, box: tuple[int, int]) -> tuple[int, int]:
    """(version, offset of the body after version/flags)."""
    return buf[box[0]], box[0] + 4


def _table(buf: bytes, box: tuple[int, int], skip: int, fmt: str, width: int) -> np.ndarray:
    """A full box's entry table: `count` at body+skip, then count x `width` big-endian values."""
    at = box[0] + 4 + skip
    count = struct.unpack_from(">I", buf, at)[0]
    raw = np.frombuffer(buf, dtype=fmt, count=count * width, offset=at + 4)
    return raw.astype(np.int64).reshape(count, width)


def _track(buf: bytes, boxes: dict, movie_scale: int, file_size: int) -> Mp4Track:
    for need in (b"tkhd", b"mdhd", b"stsd", b"stts", b"stsc", b"stco" if b"co64" not in boxes else b"co64"):
        if need not in boxes:
            raise Unsupported(f"its video track has no {need.decode()} box")
    if b"stps" in boxes or b"stz2" in boxes or b"stsz" not in boxes:
        raise Unsupported("its sample table uses boxes the reader does not take (stps/stz2)")
    # stsd: exactly one sample entry, an MP4 video codec
    v, at = _full(buf, boxes[b"stsd"])
    if struct.unpack_from(">I", buf, at)[0] != 1:
        raise Unsupported("its video has more than one sample description")
    esize, etype = struct.unpack_from(">I4s", buf, at + 4)
    entry = bytes(buf[at + 4:at + 4 + esize])
    if etype not in CODECS or len(entry) != esize:
        raise Unsupported(f"its video is {etype.decode('latin-1')}, not H.264/HEVC")
    codec = CODECS[etype]
    # mdhd: timescale, language
    v, at = _full(buf, boxes[b"mdhd"])
    scale_at = at + (16 if v == 1 else 8)
    timescale = struct.unpack_from(">I", buf, scale_at)[0]
    language = struct.unpack_from(">H", buf, scale_at + (12 if v == 1 else 8))[0]
    # tkhd: display matrix and size
    v, at = _full(buf, boxes[b"tkhd"])
    m_at = at + (48 if v == 1 else 36)
    matrix = bytes(buf[m_at:m_at + 36])
    width, height = struct.unpack_from(">II", buf, m_at + 36)

    v, at = _full(buf, boxes[b"stsz"])
    fixed, count = struct.unpack_from(">II", buf, at)
    stts = _table(buf, boxes[b"stts"], 0, ">u4", 2)
    # Counts are checked before the tables are expanded: a damaged count must not allocate gigabytes.
    if count > MAX_SAMPLES or int(stts[:, 0].sum()) != count:
        raise Unsupported("its sample tables disagree about the number of frames")
    durations = np.repeat(stts[:, 1], stts[:, 0])
    n = len(durations)
    sizes = (np.full(count, fixed, np.int64) if fixed else
             np.frombuffer(buf, ">u4", count, at + 8).astype(np.int64))
    ctts = None
    if b"ctts" in boxes:
        t = _table(buf, boxes[b"ctts"], 0, ">i4", 2)   # ffmpeg reads offsets as signed in either version
        if (t[:, 0] < 0).any() or int(t[:, 0].sum()) != n:
            raise Unsupported("its sample tables disagree about the number of frames")
        ctts = np.repeat(t[:, 1], t[:, 0])
    keys = np.ones(n, bool)
    if b"stss" in boxes:
        sync = _table(buf, boxes[b"stss"], 0, ">u4", 1)[:, 0]
        if not len(sync) or sync.min() < 1 or sync.max() > n:
            raise Unsupported("its sync sample table is empty or out of range")
        keys[:] = False
        keys[sync - 1] = True
    offsets = _sample_offsets(buf, boxes, sizes)
    if n == 0 or count != n or len(offsets) != n or (ctts is not None and len(ctts) != n):
        raise Unsupported("its sample tables disagree about the number of frames")
    if timescale == 0 or (durations <= 0).any() or int((offsets + sizes).max()) > file_size:
        raise Unsupported("its sample table points past the end of the file (truncated?)")

    dts = np.zeros(n, np.int64)
    np.cumsum(durations[:-1], out=dts[1:])
    shown = dts + (ctts if ctts is not None else 0)
    pts = shown + _edit_shift(buf, boxes, movie_scale, timescale, shown, durations)
    return Mp4Track(codec, h264_sps.yuv420_8bit(codec, entry), entry, timescale, language, width, height, matrix,
                    pts, dts, durations, ctts, keys, offsets, sizes)


def _sample_offsets(buf: bytes, boxes: dict, sizes: np.ndarray) -> np.ndarray:
    """Each sample's file offset: its chunk's offset plus the sizes of the samples before it in the chunk."""
    chunks = (_table(buf, boxes[b"co64"], 0, ">u8", 1) if b"co64" in boxes else
              _table(buf, boxes[b"stco"], 0, ">u4", 1))[:, 0]
    stsc = _table(buf, boxes[b"stsc"], 0, ">u4", 3)
    if not len(stsc) or (stsc[:, 2] != 1).any() or stsc[0, 0] != 1 or (np.diff(stsc[:, 0]) <= 0).any():
        raise Unsupported("its sample-to-chunk table is unusual")
    runs = np.diff(np.append(stsc[:, 0], len(chunks) + 1))
    if (runs < 0).any():
        raise Unsupported("its sample-to-chunk table is unusual")
    per_chunk = np.repeat(stsc[:, 1], runs)
    if int(per_chunk.sum()) != len(sizes):
        return np.zeros(0, np.int64)
    chunk_of = np.repeat(np.arange(len(chunks)), per_chunk)
    before = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=before[1:])
    first_in_chunk = np.zeros(len(chunks), np.int64)
    np.cumsum(per_chunk[:-1], out=first_in_chunk[1:])
    return chunks[chunk_of] + before[:-1] - before[first_in_chunk[chunk_of]]


def _edit_shift(buf: bytes, boxes: dict, movie_scale: int, timescale: int,
                shown: np.ndarray, durations: np.ndarray) -> int:
    """What ffmpeg adds to dts + ctts for this track's edit list (media timescale)."""
    if b"elst" not in boxes:
        return 0
    v, at = _full(buf, boxes[b"elst"])
    fmt = ">Qq" if v == 1 else ">Ii"
    step = 20 if v == 1 else 12
    count = struct.unpack_from(">I", buf, at)[0]
    edits = [struct.unpack_from(fmt + "hh", buf, at + 4 + i * step) for i in range(count)]
    delay = 0
    if len(edits) == 2 and edits[0][1] == -1:       # an empty edit first: the track starts later
        delay = edits[0][0] * timescale // movie_scale if movie_scale else 0
        edits = edits[1:]
    if len(edits) != 1 or edits[0][1] < 0 or edits[0][2:] != (1, 0):
        raise Unsupported("its edit list is not a single plain edit")
    length, media_time = edits[0][0], edits[0][1]
    if int(shown.min()) < media_time:
        raise Unsupported("its edit list hides frames at the start")
    # ffmpeg writes the edit's length rounded to the movie timescale; one tick of that is slack.
    end = media_time + (length * timescale + movie_scale - 1) // movie_scale if movie_scale else 0
    if length and int((shown + durations).max()) > end + timescale // max(movie_scale, 1) + 1:
        raise Unsupported("its edit list hides frames at the end")
    return delay - media_time
