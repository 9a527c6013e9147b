"""Decoding one chunk of a file (sources.cuts) in a worker process, for
`sources.parallel`.

The worker decodes the chunk's packets as the file source's own decoder would
(one thread, the same fast-decode option, the same disposable packets left out)
and hands back, in display order, each frame's time and size and, for the frames
the capture loop will analyse, the luma plane already shrunk to detection size
with the resize the detector's Preprocess makes: only that small picture
crosses between processes, and the shrinking is done on the worker's core.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Container
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from motionwatch.model import detection_size, detection_width
from motionwatch.media.damage import DamageRun
from motionwatch.media.frames import StreamTurn, luma_view, upright
from motionwatch.media.packet_times import packets_to_decode
from motionwatch.sources.pyav import MAX_BAD_IN_ROW, MAX_SEEK_BACK_S, decoder
from motionwatch.sources.undecoded import SkipPlan



@dataclass(frozen=True)
class ChunkJob:
    path: str
    key_pts: int | None       # the keyframe to start at (None: the file's start)
    first: int                # the index the chunk's first frame has, if no earlier packet was damaged
    count: int | None         # packets to decode (None: to the file's end)
    due: Container[int] | None   # frame indices the loop will analyse (None: all)
    detect_width: int
    fast: bool                # skip_loop_filter, as the file source decodes for analysis
    codec: str
    prefix: int | None        # media.nal.length_size: None when no packet can be left out
    threads: int = 1          # decoder threads: one in a worker, whose core is one of the jobs
    passing: bool = False     # due frames that pass their turn on (sources.undecoded) are left out
    stream: int = 0           # the index of the file's video stream (media.probe.video_stream picked it)


@dataclass(frozen=True)
class Entry:
    """One frame, in display order."""

    pts: int | None
    size: tuple[int, int] | None     # None: left undecoded
    failures: int                    # damaged packets in the chunk before this frame came out
    picture: np.ndarray | None = None   # upright luma at detection size, for a frame that is due
    rotation: int = 0                # the display turn (media.frames.display_rotation); `size` is coded
    passes: bool = False             # it passes its turn to be analysed on (sources.undecoded)
    damaged: bool = False            # it shows damage (media.damage): not analysed
    dts: int | None = None           # the picture's decode timestamp (media.clock)


@dataclass
class ChunkResult:
    entries: list[Entry] = field(default_factory=list)
    failures: int = 0
    left_out: int = 0
    ended: bool = False       # the file ended inside the chunk (damage, a cut-off container)


def init_worker() -> None:
    """Ctrl-C reaches the whole process group: the scan decides what stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


# A worker's open file, kept from one chunk to the next: opening an MP4 parses its
# index (10 ms for a 10-minute file), a seek on the open one costs next to nothing.
_kept: dict = {}


def decode_chunk(job: ChunkJob) -> ChunkResult:
    """The chunk's frames, all at once (in a worker: one result to send back)."""
    out = ChunkResult()
    if job.key_pts is None:   # from the file's start: a file just opened is there
        out.entries.extend(chunk_entries(job, out))
        return out
    container = _container(job)
    try:
        out.entries.extend(_decode(container, job, out))
    except BaseException:
        forget()   # left in a state nobody knows: the next chunk opens the file anew
        raise
    if out.ended:
        forget()
    else:
        container.streams[job.stream].codec_context.flush_buffers()   # drained: ready for the next chunk
    return out


def forget() -> None:
    """Close the file kept open for the next chunk."""
    for container in _kept.values():
        container.close()
    _kept.clear()


def _container(job: ChunkJob):
    """The worker's open file for this job (same file, same decoder settings), or a new
    one. A Dask worker outlives scans: a file rewritten since (same path, another size
    or time) is opened anew."""
    st = os.stat(job.path)
    key = (job.path, st.st_size, st.st_mtime_ns, st.st_ino, job.threads, job.fast, job.stream)
    if key not in _kept:
        forget()
        container = av.open(job.path)
        decoder(container.streams[job.stream], job.threads, job.fast)
        _kept[key] = container
    return _kept[key]


def chunk_entries(job: ChunkJob, out: ChunkResult):
    """The chunk's frames one by one, as they come out of the decoder, from a file
    opened for it; `out` counts the damaged packets and those left out as it goes,
    and says if the file ended."""
    with av.open(job.path) as container:
        decoder(container.streams[job.stream], job.threads, job.fast)
        yield from _decode(container, job, out)


def _decode(container, job: ChunkJob, out: ChunkResult):
    """The frames of `job`'s chunk from an open file."""
    stream = container.streams[job.stream]
    plan = SkipPlan(job.codec, job.prefix, job.due.__contains__, lambda: job.passing) \
        if job.prefix is not None and job.due is not None else None
    handed = 0
    bad = 0

    def position() -> int:
        return job.first + handed + out.failures

    turn = StreamTurn()
    # A chunk starts on a keyframe: damage before it is gone.
    damage = DamageRun(stream.guessed_rate, container.format.name)
    # The last frame was due and may pass its turn on: the next one out (perhaps from a
    # later packet's decode) comes with its picture.
    owed = [False]

    def entries(frames):
        nonlocal handed
        for entry in _entries(frames, plan, job, position, out, turn, owed, damage):
            yield entry
            handed += 1

    try:
        for pkt in _packets(container, stream, job):
            damage.arrived(pkt)
            if plan is not None and plan.leave_out(pkt, position()):
                continue
            try:
                frames = stream.decode(pkt)
            except av.InvalidDataError:
                bad += 1
                out.failures += 1
                damage.lost()
                if plan is not None:
                    plan.stopped = True
                if bad >= MAX_BAD_IN_ROW:
                    out.ended = True
                    break
                continue
            bad = 0
            yield from entries(frames)
        if not out.ended:
            yield from entries(_drain(stream, out))
    except av.FFmpegError:   # a truncated or damaged container: what was decoded stands
        out.ended = True
    if plan is not None:
        yield from (Entry(pts, None, out.failures, passes=plan.passes_on(pts)) for pts in plan.rest())
        out.left_out = plan.left_out


def _drain(stream, out: ChunkResult) -> list:
    """The frames the decoder still holds at the chunk's end."""
    try:
        return stream.decode(None)
    except av.InvalidDataError:
        out.failures += 1
        return []


def _entries(frames, plan: SkipPlan | None, job: ChunkJob, position, out: ChunkResult, turn: StreamTurn,
             owed: list[bool], damage: DamageRun):
    """`owed[0]`: the frame before was due and may pass its turn on (the loop decides
    whether it does), so this one's picture is sent too."""
    for f in frames:
        if plan is not None:
            for pts in plan.before(f.pts):
                passes = plan.passes_on(pts)
                owed[0] = passes and position() in job.due
                yield Entry(pts, None, out.failures, passes=passes)
        # A frame without a time cannot be decoded again later: it always comes with its picture.
        due = job.due is None or position() in job.due or f.pts is None or owed[0]
        passes = plan is not None and plan.passes_on(f.pts)
        owed[0] = passes and due
        rotation = turn.of(f)
        yield Entry(f.pts, (f.width, f.height), out.failures,
                    _small(f, rotation, job.detect_width) if due else None, rotation, passes, damage.damaged(f),
                    f.dts)


def _small(frame: av.VideoFrame, rotation: int, width: int) -> np.ndarray:
    """What detect.preprocess.Preprocess's resize makes of the frame's upright luma
    plane (AvFrame.gray: same turn, same call, same interpolation), so its own
    resize is then a copy."""
    luma = upright(luma_view(frame), rotation)
    size = luma.shape[1], luma.shape[0]
    return cv2.resize(luma, detection_size(*size, detection_width(size, width, rotation)),
                      interpolation=cv2.INTER_LINEAR)


def _packets(container, stream, job: ChunkJob):
    """The chunk's packets with data, in decode order, from its keyframe."""
    it = _from_key(container, stream, job.key_pts) if job.key_pts is not None else container.demux(stream)
    it = packets_to_decode(it, stream)   # times from the keyframe on, as the file's own reader fills them
    n = 0
    for pkt in it:
        if pkt.size == 0:
            continue
        yield pkt
        n += 1
        if n == job.count:   # never, for None: to the end
            return


def _from_key(container, stream, key_pts: int):
    """Demuxed packets starting at the keyframe shown at `key_pts`: a seek lands on
    it (MP4) or before it (MPEG-TS lands anywhere; then packets are passed over,
    and a seek that landed after it is tried again further back)."""
    second = max(1, round(1 / stream.time_base))
    back = 0
    while True:
        container.seek(key_pts - back, stream=stream, backward=True)
        packets = container.demux(stream)
        for pkt in packets:
            if pkt.size == 0 or pkt.pts is None:
                continue
            if pkt.pts == key_pts and pkt.is_keyframe:
                yield pkt
                yield from packets
                return
            if pkt.is_keyframe and pkt.pts > key_pts:
                break   # landed after it
        if back >= MAX_SEEK_BACK_S * second:
            raise LookupError(f"the keyframe at pts {key_pts} is not where the file's first read found it")
        back = 2 * back or second
