"""What every frame source shares: typed open options and stats, the live reader thread.

File sources in `scan` mode return every frame in order as fast as they decode;
everything else is live: a reader thread keeps only the newest frame so the
detector never falls behind the camera, and counts what it had to drop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from motionwatch.errors import SourceError
from motionwatch.model import Frame
from motionwatch.config.source_spec import URL_SCHEMES, is_index, redact, source_kind  # noqa: F401

log = logging.getLogger("motionwatch")

# Open/read timeouts for network streams, so a dead camera cannot hang the loop
# (the camera's timeout_seconds replaces them when given).
OPEN_TIMEOUT_MS = 10000
READ_TIMEOUT_MS = 10000
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                  ".mjpeg", ".mjpg", ".wmv", ".flv", ".3gp", ".h264", ".264", ".hevc", ".h265", ".265",
                  ".mts", ".m2ts", ".m2t", ".vob", ".asf", ".ogv", ".ivf", ".mxf", ".nut", ".f4v", ".3g2",
                  ".dav"}   # .dav: Dahua NVR exports (FFmpeg's dhav demuxer)


@dataclass(frozen=True)
class SourceOptions:
    """What the capture loop tells a source when it opens it."""

    scan: bool = False                  # a file read as fast as it decodes (else paced / live)
    start_wall: float | None = None     # epoch time of a file's first frame (None: mtime - length)
    timeout: float | None = None        # seconds a network stream may take to open or give a frame
    cancel: threading.Event | None = None   # set: a waiting read() returns at once
    detect_width: int = 320             # JPEG sources decode their grey about this wide
    gray_on_demand: bool = False        # ... when `gray` is first asked (the caller skips a frame whose gray is None)
    packet_seconds: float = 0.0         # compressed video kept for clips before an event (the pre-roll)
    copy_codecs: frozenset = frozenset()    # clips are stream copies when the source's codec is one of these
    copy_max_width: int = 0             # ... and its picture no wider than this (0: any width)
    encode_packets: bool = False        # other clips are encoded from the kept packets too (else from frames)
    fast_decode: bool = False           # analyse a cheaper decode (skip_loop_filter); saved frames are decoded fully
    decoder_threads: int = 0            # FFmpeg decoder threads (0: the source's own choice for its kind)
    # (frame index[, seconds since the first frame it will be handed out at, and a
    # live source's `arrived(index)`: the times frames came, where it knows them])
    # -> whether the capture loop will analyse that frame. Frames it will not are
    # handed out with the next one it will, one wake-up for them all.
    analysed: Callable[..., bool] | None = None
    # The same question, answered True also when the frame's picture is needed
    # anyway (clips made from decoded frames). Frames it is not, whose pictures
    # nothing refers to, may go undecoded (sources.undecoded).
    wanted: Callable[..., bool] | None = None
    # () -> whether the loop lets a due frame pass its turn to be analysed to the next
    # frame (sources.undecoded): a file's frames that do are left undecoded when due.
    passing: Callable[[], bool] | None = None
    # (first, stop) -> the frame indices in that range of a file the capture loop will
    # analyse (None: all of them), for sources that decode ahead in other processes.
    wanted_range: Callable[[int, int], frozenset | None] | None = None
    decode_jobs: int = 0                # worker processes a long file may be decoded on (sources.parallel)
    decode_cluster: str | None = None   # ... a Dask scheduler's address: its workers decode instead


@dataclass(frozen=True)
class SourceStats:
    """What a source counted, for the status page and `scan`'s damage report."""

    frames_read: int = 0
    dropped: int = 0
    decode_failures: int = 0     # damaged frames skipped (files)
    missing_at_end: int = 0      # frames the container promised but never came (a truncated file)
    total_frames: int = 0        # files only; 0 when unknown
    undecoded: int = 0           # frames counted but never decoded (SourceOptions.wanted)
    ended: bool = False          # a live stream ended (rather than went silent)
    error: str | None = None     # why it ended, when it said


class FrameSource:
    """What every source offers. `read()` returns the next Frame, or None when
    the source has ended (files) or gave nothing for `timeout` seconds (live)."""

    kind = "source"
    live = True

    def __init__(self, spec: str, options: SourceOptions | None = None):
        self.spec = spec
        self.options = options or SourceOptions()
        self.fps = 0.0
        self.size: tuple[int, int] | None = None
        self.frames_read = 0
        self.dropped = 0
        self.total_frames = 0  # files only; 0 when unknown
        # The compressed packet ring (media.ring.PacketRing) that clips are made from,
        # the codec parameters to mux or decode its packets with, and whether clips
        # are its packets as they are (stream copy) rather than encoded from them.
        self.packets = None
        self.template = None
        self.copying = False
        # (scale, offset) from the frames' `gray` to full-range grey levels, for
        # limited-range (tv) video; None when `gray` is full range already.
        self.luma_levels: tuple[float, float] | None = None
        self.codec: str | None = None    # the compressed video's decoder, when the source has one
        self.coding: str | None = None   # ... its format (media.probe.StreamFacts.coding: av1 for libdav1d)
        # The display turn of the frames handed out (media.frames.display_rotation; their
        # pictures and sizes are upright), known once one was decoded.
        self.rotation = 0

    def open(self) -> None:
        raise NotImplementedError

    def read(self, timeout: float = 10.0) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def stats(self) -> SourceStats:
        return SourceStats(frames_read=self.frames_read, dropped=self.dropped, total_frames=self.total_frames)

    def describe(self) -> str:
        return f"{self.kind} {self.spec}"


# --- live sources ------------------------------------------------------------

# A reader thread that has not returned this long after close() is left behind
# (it is a daemon and releases its capture when the driver lets go); at most
# MAX_STUCK_READERS such threads per source before reconnects wait for them,
# so a driver that never returns cannot leak threads and sockets without bound.
CLOSE_WAIT_S = 2.0
# Frames the capture loop will not analyse that a live source keeps for it to take
# with the next one (LiveSource._keep_for_loop); beyond that they are dropped.
MAX_HELD = 8
# A source whose frames are small to keep (JPEG bytes, pictures up to 1280x720), and a
# file played at its own rate, hand them to the loop in batches of up to this many
# seconds: a wake-up of the loop for each analysed frame made the work after it dearer
# (docs/performance.md, 2026-12-06 00:50 UTC). Events keep the frames' own times; a
# batch is analysed at most this much later (plus the loop's 0.25 s poll).
LIVE_BATCH_S = 0.2
# ... or once this many wait besides the newest, leaving room for the frames that come
# while the loop takes them (60 fps: batches of 7).
BATCH_HELD = MAX_HELD - 2
# Arrival times of the frames last handed out that the source remembers for the
# loop's schedule run ahead (LiveSource._arrived): the loop is at most a frame behind.
HANDED_KEPT = 4
MAX_STUCK_READERS = 3
MAX_CAMERA_INDEX = 9999


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):  # a NUL byte or an over-long name is no file either
        return False


class LiveSource(FrameSource):
    """A reader thread grabs continuously; `read()` hands out the newest frame.

    Each `open()` starts a new connection with its own reader thread and stop
    flag. Subclasses implement `_connect()` (may return a handle that the reader
    owns), `_grab()` or `_grab_from(handle)`, and optionally `_release(handle)`
    (runs on the reader thread once it has stopped reading, so a capture is
    never released under a blocked read) and `_disconnect()` (runs on the
    closing thread to unblock the reader, e.g. kill a child process).
    """

    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._latest_mono = 0.0
        self._seq = 0
        self._taken = 0
        # Frames the capture loop will not analyse, kept (oldest first) for it to take
        # with the next frame it will instead of waking it for each (_keep_for_loop).
        self._held: list[tuple[object, float]] = []
        self._latest_held = False
        self._handed: deque[tuple[int, tuple]] = deque(maxlen=HANDED_KEPT)   # (index, _arrived's answer)
        self.batch_s = 0.0     # LIVE_BATCH_S where the connection's frames are small to keep
        self._draining = False     # the loop is taking a batch that was due
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stuck: list[threading.Thread] = []
        self._t0: float | None = None
        self.ended = False
        self.error: str | None = None

    def open(self) -> None:
        self._stuck = [t for t in self._stuck if t.is_alive()]
        if len(self._stuck) >= MAX_STUCK_READERS:
            raise SourceError(f"{self.describe()}: {len(self._stuck)} earlier connections are still stuck "
                              "in the driver; not opening another until they let go")
        stop = threading.Event()
        with self._cond:
            self._stop = stop
            self._seq = self._taken = 0
            self._latest = None
            self._held, self._latest_held = [], False
            self._handed.clear()
            self._draining = False
            self.ended = False
            self.error = None
        handle = self._connect()
        self._thread = threading.Thread(target=self._run, args=(stop, handle), name=f"grab-{self.kind}",
                                        daemon=True)
        self._thread.start()

    def _connect(self):
        raise NotImplementedError

    def _grab(self) -> np.ndarray | None:
        """Block for the next picture; None means the source has gone."""
        raise NotImplementedError

    def _grab_from(self, handle) -> np.ndarray | None:
        return self._grab()

    def _release(self, handle) -> None:
        pass

    def _disconnect(self) -> None:
        pass

    def _run(self, stop: threading.Event, handle) -> None:
        try:
            while not stop.is_set():
                try:
                    img = self._grab_from(handle)
                except Exception as e:  # a driver error must end the stream, not the process
                    with self._cond:
                        if self._stop is stop:
                            self.error = str(e) or type(e).__name__
                    img = None
                if img is None:
                    break
                with self._cond:
                    if stop.is_set():   # closed while we were blocked: this frame is stale
                        break
                    if self._seq > self._taken:
                        self._keep_or_drop()
                    self._latest = img
                    self._latest_mono = time.monotonic()
                    self._seq += 1
                    self._latest_held = self._keep_for_loop(self._latest_mono)
                    if not self._latest_held:
                        self._cond.notify_all()
        finally:
            try:
                self._release(handle)
            except Exception:
                pass  # releasing a dead device may fail; there is nothing left to do with it
            with self._cond:
                if self._stop is stop:
                    self.ended = True
                    self._cond.notify_all()

    def _keep_or_drop(self) -> None:
        """The newest frame was not taken before the next one came: it is kept for the
        loop (at most MAX_HELD) if the loop will not analyse it, or takes a batch now,
        or the source batches; otherwise it is dropped, and the loop gets the newer."""
        if (self._latest_held or self._draining or self.batch_s) and len(self._held) < MAX_HELD:
            self._held.append((self._latest, self._latest_mono))
        else:
            self.dropped += 1

    def _keep_for_loop(self, mono: float) -> bool:
        """Whether the newest frame, come at `mono`, can wait for the next one: its batch
        is not due yet (batch_s), or the capture loop will not analyse it
        (SourceOptions.analysed), so it takes it along with that one. A wake-up of the
        loop for each frame cost more than the frame's own work. A picture nobody will
        look at is let go now (`_let_go`)."""
        batching = self._batch_left(mono) > 0
        if batching and not self.lets_go:
            return True
        analysed = self.options.analysed
        if analysed is None or self._t0 is None:
            return batching
        index, ts = self.frames_read + len(self._held), mono - self._t0
        if analysed(index, ts, self._arrived):
            return batching
        wanted = self.options.wanted
        if wanted is not None and not wanted(index, ts, self._arrived):
            self._latest = self._let_go(self._latest)
        return True

    def _arrived(self, index: int) -> tuple[float, bool] | None:
        """When frame `index` came (seconds since the first frame, the `ts` it is or will
        be handed out with), and whether it has a picture the loop can analyse, while
        the source knows: handed out lately, waiting, or the newest; None for any other."""
        with self._cond:
            if self._t0 is None:
                return None
            k = index - self.frames_read
            if k < 0:
                return next((known for i, known in self._handed if i == index), None)
            if k < len(self._held):
                item, mono = self._held[k]
            elif k == len(self._held) and self._seq > self._taken:
                item, mono = self._latest, self._latest_mono
            else:
                return None
            return mono - self._t0, not self._bare(item)

    def _bare(self, item) -> bool:
        """Whether a grabbed item has no picture and cannot get one (a live frame left
        undecoded): the loop passes its turn on to the next frame (CameraLoop._process)."""
        return False

    # Whether the source lets go of pictures nobody will look at (`_let_go`).
    lets_go = False

    def _let_go(self, item):
        """What to keep of a grabbed item whose picture neither the capture loop nor a
        clip will want (`lets_go` sources: decoded pictures pin decoder buffers)."""
        return item

    def _batch_left(self, now: float) -> float:
        """Seconds the unread frames may still wait for more (batch_s after the oldest
        came); 0 once the batch is due, or full, or with no batching."""
        if not self.batch_s or len(self._held) >= BATCH_HELD or self._seq == self._taken:
            return 0.0
        oldest = self._held[0][1] if self._held else self._latest_mono
        return max(0.0, oldest + self.batch_s - now)

    def _next_index(self) -> int:
        """The index the next frame to come will have: after those handed out, those
        kept for the loop and the newest one if it was not taken yet."""
        return self.frames_read + len(self._held) + (self._seq > self._taken)

    def read(self, timeout: float = 10.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._stop.is_set():   # closed: what it read last is not handed out
                return None
            while self._seq == self._taken or (not self._draining and self._batch_left(time.monotonic()) > 0):
                if self._stop.is_set() or (self.options.cancel is not None and self.options.cancel.is_set()):
                    return None
                left = deadline - time.monotonic()
                if self.ended or left <= 0:
                    break
                self._cond.wait(min(left, 0.25, self._batch_left(time.monotonic()) or 0.25))
            if self._seq == self._taken:
                return None
            # A batch once due is taken whole, though the next oldest frame is younger.
            self._draining = True
            if self._held:
                img, mono = self._held.pop(0)
            else:
                img, mono = self._latest, self._latest_mono
                self._taken = self._seq
                self._draining = False
            # Counted here, where the reader reads it (_keep_for_loop).
            i = self.frames_read
            self.frames_read += 1
            if self._t0 is None:
                self._t0 = mono
            self._handed.append((i, (mono - self._t0, not self._bare(img))))
        now_wall = time.time() - (time.monotonic() - mono)
        return self._frame(img, i, mono - self._t0, now_wall)

    def _frame(self, item, index: int, ts: float, wall: float) -> Frame:
        """The Frame for what the reader grabbed; runs on the caller's thread, so a
        subclass can leave decoding until here and never pay for dropped frames."""
        return Frame(item, index, ts, wall)

    def close(self) -> None:
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        self._disconnect()
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return
        thread.join(CLOSE_WAIT_S)
        if thread.is_alive():
            self._stuck.append(thread)
            log.warning("%s: the reader is stuck in the driver; leaving it behind (%d stuck)",
                        self.describe(), len(self._stuck))

    def stats(self) -> SourceStats:
        return SourceStats(frames_read=self.frames_read, dropped=self.dropped, ended=self.ended, error=self.error)

    @property
    def stuck_readers(self) -> int:
        return sum(t.is_alive() for t in self._stuck)
