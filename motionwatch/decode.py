"""Fast decoding of video files: the decoder's luma plane, a decode thread, colour on demand.

Converting every decoded frame to BGR costs as much CPU as the whole motion
detection, yet only the handful of frames that become snapshots need colour.
So a file is decoded with OpenCV's `CAP_PROP_CONVERT_RGB` off, which on the
FFmpeg backend hands back the Y (luma) plane of 8-bit YUV video, and a frame's
BGR picture is made only when something asks for `frame.image`: a second
decoder seeks to that frame and checks it against the luma it already has.

The raw plane is only trusted after a check at open: the first frame is
decoded both ways and the plane must have the picture's size and correlate
with the BGR frame's grey (10-bit or packed formats do not, and then the file
is decoded to BGR as before). When every frame needs colour (clips, the live
view) the reader is opened with `colour=True`.

In `scan` a decode thread feeds the detector through a small bounded queue, so
decoding and detection use both cores, and the queue never holds more than a
few frames.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading

import cv2
import numpy as np

from motionwatch.gop_fetch import GopIndex
from motionwatch.model import Frame

log = logging.getLogger("motionwatch")

# Frames the decode thread may run ahead of the detector: enough to absorb
# jitter, few enough that memory stays flat (a 1080p luma plane is 2 MB).
QUEUE_DEPTH = 4
# The raw plane must match the BGR frame's grey this well to count as luma.
LUMA_MIN_CORR = 0.98
# A colour request this far ahead of the colour decoder reads forward instead of seeking.
FORWARD_LIMIT = 50
# Frames either side searched when a seek lands on the wrong frame.
SEARCH = 3
# FFmpeg decoder threads for a file played at its own rate (`run`).
PACED_DECODER_THREADS = 1
# FFmpeg decoder threads in `scan`: detection runs on its own thread, so FFmpeg
# gets the other cores. On 2 cores one decoder thread cost 8-25% less CPU than
# FFmpeg's default (a thread per core, fighting detection for the cores) at
# the same frames/s (measured at 640x480 and 1280x720 H.264).
SCAN_DECODER_THREADS = max(1, (os.cpu_count() or 2) - 1)
# From about 1080p frame threading pays even there: two decoder threads gave
# 10-12% more frames/s for 5-8% more CPU at 1920x1080, and nothing at 1280x720.
BIG_FRAME_PIXELS = 1_500_000


def scan_decoder_threads(pixels: int) -> int:
    """Decoder threads for scanning frames of `pixels` (0: unknown size)."""
    if pixels >= BIG_FRAME_PIXELS and (os.cpu_count() or 1) >= 2:
        return max(SCAN_DECODER_THREADS, 2)
    return SCAN_DECODER_THREADS

_quieted = False


def quiet_opencv() -> None:
    """OpenCV warns once per frame that it returns the raw plane as 8UC1, which is what we ask for."""
    global _quieted
    # A user who set OPENCV_LOG_LEVEL asked to see OpenCV's messages (README: reliability).
    if not _quieted and "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        _quieted = True


def open_capture(path: str, luma: bool, threads: int = 0) -> cv2.VideoCapture:
    """`threads` = FFmpeg decoder threads (0: FFmpeg's choice, one per core)."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads] if threads else [])
    if luma and cap.isOpened():
        quiet_opencv()
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
    return cap


def probe_luma(path: str, threads: int = 0):
    """Decode the first frame both as BGR and as the raw plane.

    Returns (levels, raw_cap, raw0, bgr_cap, bgr0): `levels` is the (scale,
    offset) mapping the raw plane onto BGR grey, or None when the plane is not a
    trustworthy 8-bit luma plane (then decode to BGR). Both captures are left
    open one frame in, so neither first frame is decoded twice."""
    # The BGR capture only re-decodes the odd saved frame: one thread is plenty.
    bgr_cap, raw_cap = open_capture(path, False, 1), open_capture(path, True, threads)
    ok1, bgr = bgr_cap.read()
    ok2, raw = raw_cap.read()
    levels = _levels(bgr, raw) if ok1 and ok2 else None
    return levels, raw_cap, raw, bgr_cap, bgr


def _levels(bgr: np.ndarray | None, raw: np.ndarray | None) -> tuple[float, float] | None:
    if bgr is None or raw is None or bgr.ndim != 3:
        return None
    if raw.ndim != 2 or raw.dtype != np.uint8 or raw.shape != bgr.shape[:2]:
        return None
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[::4, ::4].ravel().astype(np.float32)
    y = raw[::4, ::4].ravel().astype(np.float32)
    if y.std() < 2.0 or grey.std() < 2.0:
        # A flat first frame proves nothing; trust the plane only if it equals the grey.
        return (1.0, 0.0) if abs(float(y.mean()) - float(grey.mean())) < 3.0 else None
    # Correlation and least-squares line from centred sums: no BLAS call (see __init__).
    dy, dg = y - y.mean(), grey - grey.mean()
    syy, sgg, syg = (float(np.sum(a * b, dtype=np.float64)) for a, b in ((dy, dy), (dg, dg), (dy, dg)))
    if syg / math.sqrt(syy * sgg) < LUMA_MIN_CORR:
        return None
    scale = syg / syy
    offset = float(grey.mean()) - scale * float(y.mean())
    # Limited-range video (Y 16..235) maps to full-range grey at about 1.164x - 18.6.
    return float(scale), float(offset)


class ColourFetcher:
    """Decodes single frames in colour for the few frames that are saved.

    A second capture seeks to the frame (or reads forward when it is close) and
    the result is checked against the luma plane the scan already has, so a
    seek that lands a frame off is caught and corrected.
    """

    def __init__(self, path: str, levels: tuple[float, float], cap: cv2.VideoCapture | None = None,
                 pos: int = 0, mp4_track=None):
        self.path = path
        self.levels = levels
        self.cap = cap
        self.pos = pos            # index of the frame the capture returns next
        self.lock = threading.Lock()
        self.fetched = 0
        self.tolerance = 1.5
        self.seekable = True      # False once a seek has missed: then read forward only
        self._warned = False
        # An MP4's keyframe index, loaded at the first seek (False: none to use): a frame
        # just after a keyframe is decoded from that keyframe, not from the GOP before.
        self.gops: GopIndex | None | bool = None
        self.mp4_track = mp4_track   # the file's MP4 index when the clip planner read it already

    def fetch(self, index: int, luma: np.ndarray) -> np.ndarray:
        with self.lock:
            self.fetched += 1
            bgr = self._from_gop(index)
            if bgr is not None:
                if self._distance(bgr, luma) <= self.tolerance:
                    return bgr
                self.gops = False   # the index numbers frames differently from the decoder
            else:
                bgr = self._read_at(index)
                if bgr is not None and self._distance(bgr, luma) <= self.tolerance:
                    return bgr
            if self.seekable:
                bgr = self._search(index, luma)
                if bgr is not None:
                    return bgr
                # Seeking does not work in this file (a raw stream without an index):
                # from now on reach frames by reading forward, which is exact.
                self.seekable = False
                bgr = self._read_at(index)
                if bgr is not None and self._distance(bgr, luma) <= self.tolerance:
                    return bgr
            if not self._warned:
                log.warning("%s: could not decode frame %d in colour again; saving it in grey",
                            self.path, index)
                self._warned = True
            return cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)

    def _from_gop(self, index: int) -> np.ndarray | None:
        """Frame `index` decoded from its own keyframe, when that beats seeking to it."""
        if not self.seekable or 0 <= index - self.pos <= FORWARD_LIMIT:
            return None   # reading forward is cheaper still
        gops = self._gop_index()
        plan = gops.plan(index) if gops is not None and gops.saves(index) else None
        if plan is None:
            return None
        # One decoder at a time: the seek capture's frames would stay allocated
        # beside the GOP decoder's (40 MB at 1080p); it is reopened when needed.
        self._release_cap()
        return gops.decode(index, plan)

    def _read_at(self, index: int) -> np.ndarray | None:
        if self.seekable and not 0 <= index - self.pos <= FORWARD_LIMIT:
            self._capture().set(cv2.CAP_PROP_POS_FRAMES, index)
            self.pos = index
        elif index < self.pos:
            # Behind us in a file that cannot seek: start again from the beginning.
            self._release_cap()
        cap = self._capture()
        while self.pos < index:
            if not cap.grab():
                return None
            self.pos += 1
        ok, bgr = cap.read()
        self.pos += 1
        return bgr if ok else None

    def _capture(self) -> cv2.VideoCapture:
        """The seeking decoder, opened on first use (and after a GOP decode released it)."""
        if self.cap is None:
            self.cap = open_capture(self.path, False, 1)
            self.pos = 0
        return self.cap

    def _gop_index(self) -> GopIndex | None:
        if self.gops is None:
            self.gops = GopIndex.of(self.path, self.mp4_track) or False
            self.mp4_track = None
        return self.gops or None

    def _search(self, index: int, luma: np.ndarray) -> np.ndarray | None:
        """The best-matching frame within SEARCH frames of `index`."""
        start = max(0, index - SEARCH)
        cap = self._capture()
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        self.pos = start
        best, best_d = None, float("inf")
        for _ in range(2 * SEARCH + 1):
            ok, bgr = cap.read()
            if not ok:
                break
            self.pos += 1
            d = self._distance(bgr, luma)
            if d < best_d:
                best, best_d = bgr, d
        return best if best_d <= 3 * self.tolerance else None

    def _distance(self, bgr: np.ndarray, luma: np.ndarray) -> float:
        """Mean grey-level difference between a colour frame and a luma plane (subsampled)."""
        if bgr.shape[:2] != luma.shape:
            return float("inf")
        grey = cv2.cvtColor(bgr[::4, ::4], cv2.COLOR_BGR2GRAY).astype(np.float32)
        y = luma[::4, ::4].astype(np.float32) * self.levels[0] + self.levels[1]
        return float(np.abs(grey - y).mean())

    def calibrate(self, bgr: np.ndarray, luma: np.ndarray) -> None:
        """Set the match tolerance from a frame known to be the same in both forms."""
        self.tolerance = max(1.0, 1.5 * self._distance(bgr, luma))

    def _release_cap(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        self.pos = 0   # a new capture starts at the first frame

    def close(self) -> None:
        with self.lock:
            self._release_cap()


class LumaFrame(Frame):
    """A frame decoded as its luma plane (`gray`); `image` (BGR) is made on first use.

    Everything that only detects reads `gray`; the snapshot writer, clip writer
    or live view read `image` as for any Frame and get colour, made once.
    """

    __slots__ = ("_bgr", "_fetcher")

    def __init__(self, luma: np.ndarray, index: int, ts: float, wall: float, fetcher: ColourFetcher):
        Frame.__init__(self, None, index, ts, wall, luma)
        self._fetcher = fetcher

    @property
    def image(self) -> np.ndarray:
        if self._bgr is None:
            self._bgr = self._fetcher.fetch(self.index, self.gray)
        return self._bgr

    @image.setter
    def image(self, value) -> None:
        self._bgr = value

    @property
    def size(self) -> tuple[int, int]:
        """The luma plane is full size: no need to decode colour to know it."""
        h, w = self.gray.shape[:2]
        return w, h

    def __repr__(self) -> str:  # the dataclass repr would decode the colour frame
        return f"LumaFrame(index={self.index}, ts={self.ts:.3f}, shape={self.gray.shape})"


class DecodeThread:
    """Reads a capture on its own thread into a small bounded queue (file order kept)."""

    _END = object()

    def __init__(self, cap: cv2.VideoCapture, max_bad: int, depth: int = QUEUE_DEPTH):
        self.cap = cap
        self.max_bad = max_bad
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._run, name="decode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # Failed reads are passed on (the source skips damaged frames); only a
        # long run of them means the end of the file.
        bad = 0
        try:
            while not self.stop.is_set() and bad < self.max_bad:
                ok, img = self.cap.read()
                ok = ok and img is not None
                bad = 0 if ok else bad + 1
                if not self._put(img if ok else None):
                    return
        finally:
            # The file is done: free the decoder's frames now, not at close, so the
            # last event's snapshot decode does not stack its own on top of them.
            self.cap.release()
            self._put(self._END)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.done:
            return False, None
        item = self.q.get()
        if item is self._END:
            self.done = True
            return False, None
        return item is not None, item

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():
            try:  # unblock a put() waiting on a full queue
                self.q.get(timeout=0.05)
            except queue.Empty:
                pass
        self.thread.join()


class FileReader:
    """Decodes a video file for FileSource: luma plane when verified, else BGR;
    on a decode thread when `threaded` (scan), in the caller otherwise (paced run)."""

    def __init__(self, path: str, *, threaded: bool, colour: bool = False, max_bad: int = 250,
                 pixels: int = 0, mp4_track=None):
        self.path = path
        # Paced (live) decoding has a frame interval to spare: one decoder thread
        # costs 10-20% less CPU than FFmpeg's frame threads waking for each frame.
        threads = scan_decoder_threads(pixels) if threaded else PACED_DECODER_THREADS
        self.levels = None
        self.fetcher: ColourFetcher | None = None
        self._first: tuple[np.ndarray, np.ndarray] | None = None
        if not colour:
            self.levels, raw_cap, raw0, bgr_cap, bgr0 = probe_luma(path, threads)
            if self.levels is None:
                raw_cap.release()
                bgr_cap.release()
            else:
                # The probe's captures go on: the raw one feeds the scan, the BGR one
                # re-decodes saved frames; frame 0 was decoded both ways already.
                self.cap = raw_cap
                self.fetcher = ColourFetcher(path, self.levels, cap=bgr_cap, pos=1, mp4_track=mp4_track)
                self.fetcher.calibrate(bgr0, raw0)
                self._first = (raw0, bgr0)
        self.luma = self.levels is not None
        if not self.luma:
            self.cap = open_capture(path, False, threads)
        self.thread = DecodeThread(self.cap, max_bad) if threaded else None

    @property
    def luma_levels(self) -> tuple[float, float] | None:
        """(scale, offset) turning luma grey levels into BGR-grey levels, when not the identity."""
        if self.levels is None or (abs(self.levels[0] - 1) < 0.02 and abs(self.levels[1]) < 2):
            return None
        return self.levels

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None and self._first[0] is not None:
            raw0 = self._first[0]
            self._first = (None, self._first[1])
            return True, raw0
        if self.thread is not None:
            return self.thread.read()
        ok, img = self.cap.read()
        return ok and img is not None, img

    def frame(self, img: np.ndarray, index: int, ts: float, wall: float) -> Frame:
        if not self.luma:
            return Frame(img, index, ts, wall)
        f = LumaFrame(img, index, ts, wall, self.fetcher)
        if self._first is not None:
            f.image = self._first[1]   # the probe's colour decode of this same frame
            self._first = None
        return f

    def close(self) -> None:
        if self.thread is not None:
            self.thread.close()
        self.cap.release()
        if self.fetcher is not None:
            self.fetcher.close()
