"""A long video file decoded on several cores, for `scan`: chunks that start at
clean keyframes (sources.cuts) are decoded side by side in worker processes
(sources.chunk_decode) while this process detects on their frames in order.

The detector's state at a frame depends on every frame before it (the
background and the per-pixel variability are averages over tens of seconds),
so a file cannot be detected in segments and joined without its events
differing from a scan in one pass (docs/scanning.md). Decoding can: a chunk
decoded from a clean keyframe gives the very frames a decode of the whole file
gives. So only decoding is spread, which is most of the work, and the frames
reach the one detector in the same order with the same pictures: the events
are those of `--jobs 1`, by construction.

What crosses between processes is, per frame the capture loop will analyse,
its luma at detection size (320x180 for 720p: 57 kB); frames it will not analyse
are only counted, and one found due after all is decoded here from its keyframe.
Saved pictures are decoded again at full quality, as with detection.fast_decode.
The packets for clips are demuxed here, in step with the frames handed out, so
the pre-roll ring holds what it holds in a one-pass scan.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import av

from motionwatch.errors import SourceError
from motionwatch.media.frames import SmallFrame, turned
from motionwatch.media.packet_times import packets_to_decode
from motionwatch.sources.base import redact
from motionwatch.sources.chunk_decode import ChunkJob, ChunkResult, Entry, chunk_entries, decode_chunk, forget, init_worker
from motionwatch.sources.cuts import CUTTABLE, Cutter
from motionwatch.sources.pyav import SPREAD_WORK, AvFileSource, scan_threads

log = logging.getLogger("motionwatch")

# Containers whose seeks land on the keyframe asked for (they carry an index).
SEEKABLE = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
# Seconds of video per chunk, at least: a worker opens the file and seeks for
# each (a few ms), and chunks decoded but not yet detected wait in memory.
CHUNK_S = 8.0
# A chunk that has found no clean keyframe to end at by then (open GOPs, a keyframe
# a minute) is the rest of the file, decoded in this process as it goes: its
# pictures would not fit in memory at once.
MAX_CHUNK_S = 40.0
# Files with less decoding work (frames x pixels) are decoded in this process: a
# worker costs about 0.3 s of CPU to start (PyAV, OpenCV, the config models) and
# 10 ms a chunk to open the file, 0.7 s for two on a 720p file. 2e9 is about 5 s of
# one core's decoding (720p: 2,200 frames, 1.5 minutes at 25 fps; 1080p: 40 s;
# 640x480: 4.3 minutes), where that is 13 % of the CPU for half the wall time.
# MOTIONWATCH_PARALLEL_MIN_WORK sets another floor (the tests' short clips: 0).
MIN_PARALLEL_WORK = SPREAD_WORK
# Chunks decoding or decoded ahead of the detector, beyond one per worker: enough
# that no worker waits for the next, few enough that waiting pictures stay small
# (8 s at detection.fps 15: 7 MB).
AHEAD_SPARE = 2
# Packets pushed to the clip ring ahead of the frame handed out (a decoder's
# reorder delay), as a one-pass decode has them pushed.
RING_LEAD = 3


def parallel_worth(workers: int, codec: str, container_format: str, frames: int, size) -> bool:
    return (workers >= 2 and codec in CUTTABLE and container_format in SEEKABLE and size is not None
            and frames * size[0] * size[1] >= MIN_PARALLEL_WORK)


class ParallelFileSource(AvFileSource):
    """A video file for `scan`, decoded by `options.decode_jobs` worker processes
    when it is long enough and cut at clean keyframes; otherwise exactly an AvFileSource."""

    def __init__(self, spec, options=None):
        super().__init__(spec, options)
        self.parallel = False
        self._pool: ProcessPoolExecutor | None = None
        self._left_out = 0
        self._pushed = 0      # packets pushed to the clip ring
        self._broken = False  # a worker died: the rest is decoded here
        self._shift = 0       # frame index minus packet position, as found (sources.cuts guesses 0)

    def open(self) -> None:
        super().open()
        fmt = self.container.format.name
        self.parallel = parallel_worth(self.options.decode_jobs, self.codec, fmt, self.total_frames, self.size)

    def _decode(self):
        if not self.parallel:
            yield from super()._decode()
            return
        ring = packets_to_decode(self.container.demux(self.stream), self.stream) if self.packets is not None else None
        for chunk, job, future in self._ordered():
            if future is None:   # decoded here as it goes: the first chunk, or the uncut rest of the file
                out = ChunkResult()
                # The rest of the file on frame threads; the first chunk on one, as the workers start.
                threads = 1 if chunk.count is not None else \
                    scan_threads(self.options.decoder_threads, self.size, self.total_frames)
                yield from self._hand_out(chunk_entries(replace(job, threads=threads), out), out, ring)
            else:
                out = self._result(chunk, job, future)
                yield from self._hand_out(out.entries, out, ring)
            if out.ended:
                return

    def _hand_out(self, entries, out: ChunkResult, ring):
        """A chunk's entries in order, with the damaged packets counted where they fell
        and the clip ring fed in step."""
        base = self.decode_failures
        for e in entries:
            if ring is not None:
                self._feed_ring(ring)
            self.decode_failures = base + e.failures
            yield e
        self.decode_failures = base + out.failures
        self._left_out += out.left_out

    def _ordered(self):
        """(chunk, job, future) in file order, with workers kept busy ahead of the
        detector; the future is None for a chunk decoded here (the first, and the uncut rest of a file)."""
        pending: deque = deque()
        chunks = self._chunks()
        ahead = self.options.decode_jobs + AHEAD_SPARE
        first = True
        while True:
            while len(pending) < ahead and (chunk := next(chunks, None)) is not None:
                job = self._job(chunk)
                # The first chunk is decoded here: the detector would otherwise wait for a
                # worker to start and decode it, with nothing to do.
                here = first or chunk.count is None
                pending.append((chunk, job, None if here else self._submit(job)))
                first = False
                if chunk.count is None:
                    break
            if not pending:
                return
            if pending[0][1].first != self._position():
                self._replan(pending)
            yield pending.popleft()

    def _replan(self, pending: deque) -> None:
        """The next chunk does not begin at the frame its job assumed: the file has
        fewer frames than packets (an MP4 edit list hiding the first ones, field
        pictures) or more. The waiting chunks would leave the wrong frames undecoded,
        so they are planned again from the true index, and later ones follow."""
        shift = self._position() - pending[0][1].first
        log.debug("%s: frame %d is where frame %d was expected; planning the chunks again",
                  self.spec, self._position(), pending[0][1].first)
        self._shift += shift
        again = [chunk for chunk, _, _ in pending]
        for _, _, future in pending:
            if future is not None:
                future.cancel()
        pending.clear()
        for chunk in again:
            job = self._job(chunk)
            pending.append((chunk, job, self._submit(job) if chunk.count is not None else None))

    def _result(self, chunk, job, future):
        """A chunk's result; one whose worker failed (killed, out of memory) is decoded
        here instead, which gives the same frames."""
        try:
            return future.result()
        except LookupError as e:
            raise SourceError(f"{redact(self.spec)}: cannot decode the part from frame {chunk.first} "
                              f"on its own ({e}); --jobs 1 scans it in one pass") from None
        except Exception as e:   # noqa: BLE001  (a dead process, a lost cluster: decoding here gives the same frames)
            log.warning("%s: a decoding worker failed (%s); decoding frames from %d here",
                        redact(self.spec), type(e).__name__, chunk.first)
            self._abandon_pool()
        return decode_chunk(job)

    def _start_pool(self):
        if self.options.decode_cluster:
            log.info("%s: decoding on the cluster's workers, detecting here", redact(self.spec))
            return ClusterPool(self.options.decode_cluster)
        log.info("%s: decoding on %d worker processes, detecting here", redact(self.spec), self.options.decode_jobs)
        ctx = multiprocessing.get_context("spawn")   # the scan holds threads and SQLite: no fork
        return ProcessPoolExecutor(self.options.decode_jobs, mp_context=ctx, initializer=init_worker)

    def _abandon_pool(self) -> None:
        """Kill the workers of a broken pool and decode here from now on. The executor's
        own clean-up joins the survivors after a SIGTERM, and was seen to wait for ever."""
        pool, self._pool, self._broken = self._pool, None, True
        if pool is None:
            return
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, job: ChunkJob) -> Future:
        if self._broken:
            failed: Future = Future()
            failed.set_exception(BrokenProcessPool("the decoding workers are gone"))
            return failed
        if self._pool is None:
            self._pool = self._start_pool()
        try:
            return self._pool.submit(decode_chunk, job)
        except (BrokenProcessPool, RuntimeError):   # the pool is gone: `_result` decodes it here
            self._abandon_pool()
            return self._submit(job)

    def _chunks(self):
        """The file's chunks, found by a demux of its own that runs ahead of the frames."""
        cutter = Cutter(self.codec, self._prefix, round(CHUNK_S * self.fps), round(MAX_CHUNK_S * self.fps))
        with av.open(self.spec) as container:
            try:
                for pkt in container.demux(container.streams[self.stream_index]):
                    if pkt.size:
                        chunk = cutter.feed(pkt.pts, pkt.is_keyframe, pkt if pkt.is_keyframe else None)
                        if chunk is not None:
                            yield chunk
                        if cutter.rest is not None:
                            return
            except av.FFmpegError as e:   # a damaged container: the workers stop where it does
                log.debug("%s: demuxing stopped: %s", self.spec, e)
        yield from cutter.end()

    def _job(self, chunk) -> ChunkJob:
        first, due = chunk.first + self._shift, None
        if chunk.count is None:   # decoded here, in step with the loop: it can be asked frame by frame
            due = _Asking(self.options.wanted) if self.options.wanted is not None else None
        elif self.options.wanted_range is not None:
            due = self.options.wanted_range(first, first + chunk.count)
        passing = self.options.passing is not None and self.options.passing()
        return ChunkJob(self.spec, chunk.key_pts, first, chunk.count, due, self.options.detect_width,
                        self._fast, self.codec, self._prefix, stream=self.stream_index, passing=passing)

    def _feed_ring(self, ring) -> None:
        while self._pushed <= self.frames_read + RING_LEAD:   # frames_read: the entries handed out
            pkt = next(ring, None)
            if pkt is None:
                self._pushed = 1 << 62
                return
            if pkt.size:
                self.packets.push(pkt)
                self._pushed += 1

    def _frame_for(self, item, i: int, ts: float, wall: float):
        if not isinstance(item, Entry):
            return super()._frame_for(item, i, ts, wall)
        if item.size is not None:
            self._last_size, self.rotation = turned(item.size, item.rotation), item.rotation
            if self.packets is not None:
                self.packets.follow_size(item.size, item.rotation)
        if item.picture is None:
            return self._undecoded(item.pts, i, ts, wall, item.passes)
        return SmallFrame(item.picture, item.pts, self._last_size, i, ts, wall, self._redecode, item.passes,
                          self._aspect.at(item.size), item.damaged)

    def stats(self):
        stats = super().stats()
        return replace(stats, undecoded=self._left_out) if self.parallel else stats

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        forget()   # a chunk decoded here after a worker failed kept the file open
        super().close()


class _Asking:
    """The capture loop's `wanted`, as the set of due frames a chunk job takes."""

    def __init__(self, wanted):
        self.wanted = wanted

    def __contains__(self, index: int) -> bool:
        return self.wanted(index)


class ClusterPool:
    """Chunks decoded by a Dask cluster's workers (`scan --cluster` of a lone file),
    as the local pool's processes would: the workers read the file by the same path.
    A worker that dies has its chunk run again elsewhere by Dask."""

    def __init__(self, address: str):
        from distributed import Client
        try:
            self.client = Client(address, timeout=15, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise SourceError(f"--cluster {address}: cannot reach the Dask scheduler: {e}") from None

    def submit(self, fn, job):
        return self.client.submit(fn, job, pure=False)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.client.close()
