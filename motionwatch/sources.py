"""Frame sources: files, cameras, network streams and the demo scene.

`open_source(spec)` picks a class from the string. File sources in `scan`
mode return every frame in order as fast as they decode; everything else is
live: a reader thread keeps only the newest frame so the detector never falls
behind the camera, and counts what it had to drop.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from motionwatch.decode import FileReader
from motionwatch.errors import SourceError
from motionwatch.model import Frame

log = logging.getLogger("motionwatch")

# A camera retried for days must not fill the log with FFmpeg's and OpenCV's own
# chatter ("Connection refused", "backend is generally available but..."): our
# one-line messages say what happened. Set either variable to see theirs again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used
if "OPENCV_LOG_LEVEL" not in os.environ:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")
# Open/read timeouts for network streams, so a dead camera cannot hang the loop
# (the camera's timeout_seconds replaces them when given).
OPEN_TIMEOUT_MS = 10000
READ_TIMEOUT_MS = 10000
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                  ".mjpeg", ".mjpg", ".wmv", ".flv", ".3gp", ".h264", ".264", ".hevc"}


class FrameSource:
    """What every source offers. `read()` returns the next Frame, or None when
    the source has ended (files) or gave nothing for `timeout` seconds (live)."""

    kind = "source"
    live = True

    def __init__(self, spec: str):
        self.spec = spec
        self.fps = 0.0
        self.size: tuple[int, int] | None = None
        self.frames_read = 0
        self.dropped = 0
        self.total_frames = 0  # files only; 0 when unknown

    def open(self) -> None:
        raise NotImplementedError

    def read(self, timeout: float = 10.0) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.kind} {self.spec}"


# --- files -------------------------------------------------------------------

class FileSource(FrameSource):
    """A video file; `paced=True` plays it at its own frame rate like a camera."""

    kind = "video file"

    def __init__(self, spec: str, paced: bool = False, start_wall: float | None = None):
        super().__init__(spec)
        self.paced = paced
        self.live = False
        self.start_wall = start_wall
        self.decode_failures = 0   # damaged frames skipped mid-file
        self._bad_in_row = 0
        self._t0 = 0.0   # monotonic time of the first read (paced playback)
        # Decode every frame to BGR (set before the first read when clips or the
        # live view need colour); otherwise frames carry the luma plane and make
        # colour only for the frames that are saved (motionwatch.decode).
        self.colour = False
        # The file's MP4 index (sinks.mp4_index.Mp4Track) when the clip planner has read
        # it: snapshots are re-decoded from its keyframes without reading it again.
        self.mp4_track = None
        self.reader: FileReader | None = None
        self._open = False

    def open(self) -> None:
        path = Path(self.spec)
        if not _exists(self.spec):
            raise SourceError(f"{_redact(self.spec)}: no such file (tried it as a video file; "
                              "sources are a camera index, /dev/videoN, a URL, a file, pipe:COMMAND or demo)")
        if path.is_dir():
            raise SourceError(f"{_redact(self.spec)}: is a folder, not a video file")
        if not os.access(path, os.R_OK):
            raise SourceError(f"{_redact(self.spec)}: permission denied")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{_redact(self.spec)}: cannot read any video from it (tried OpenCV's FFmpeg backend): "
                              "not a video, or damaged (an MP4 cut off while recording has no index)")
        self.fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS))
        self.total_frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        if self.start_wall is None:
            # Best guess at when the recording began: its mtime minus its length.
            length = self.total_frames / self.fps if self.total_frames else 0.0
            self.start_wall = path.stat().st_mtime - length
        cap.release()  # it told us the facts; FileReader decodes on the first read
        self._open = True

    @property
    def luma_levels(self) -> tuple[float, float] | None:
        return self.reader.luma_levels if self.reader is not None else None

    def read(self, timeout: float = 10.0) -> Frame | None:
        if self.reader is None:
            if not self._open:
                return None
            pixels = self.size[0] * self.size[1] if self.size else 0
            self.reader = FileReader(self.spec, threaded=not self.paced, colour=self.colour,
                                     max_bad=MAX_BAD_IN_ROW, pixels=pixels, mp4_track=self.mp4_track)
            self._t0 = time.monotonic()
        ok, img = self.reader.read()
        while not ok or img is None:
            if not self._past_damage():
                return None
            ok, img = self.reader.read()
        self.decode_failures += self._bad_in_row  # damaged frames we got past
        self._bad_in_row = 0
        i = self.frames_read + self.decode_failures  # position in the file, damaged frames included
        self.frames_read += 1
        ts = i / self.fps
        if self.paced:
            delay = self._t0 + ts - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            wall = time.time()
        else:
            wall = self.start_wall + ts
        return self.reader.frame(img, i, ts, wall)

    def _past_damage(self) -> bool:
        """A read failed: try the next frame while the file says more follow.

        FFmpeg fails one read per damaged frame and then carries on, so a
        corrupt patch mid-file costs only its own frames; at the real end (or a
        truncation) reads keep failing and we stop."""
        self._bad_in_row += 1
        if self.total_frames and self.frames_read + self.decode_failures + self._bad_in_row >= self.total_frames:
            return False
        return self._bad_in_row < MAX_BAD_IN_ROW

    @property
    def missing_at_end(self) -> int:
        """Frames the container promised but that never came (a truncated file).

        Frame counts are estimates in some containers, so a couple are forgiven."""
        missing = self.total_frames - self.frames_read - self.decode_failures
        return missing if missing > max(2, self.total_frames // 100) else 0

    def close(self) -> None:
        self._open = False
        if self.reader is not None:
            self.reader.close()
            self.reader = None


# Consecutive undecodable frames after which a file counts as ended.
MAX_BAD_IN_ROW = 250


def _sane_fps(fps: float, unknown: float = 25.0) -> float:
    """The rate a container or driver reports, or `unknown` when it is missing or absurd."""
    return float(fps) if fps and 0.5 <= fps <= 240 else unknown


# --- live sources ------------------------------------------------------------

# A reader thread that has not returned this long after close() is left behind
# (it is a daemon and releases its capture when the driver lets go); at most
# MAX_STUCK_READERS such threads per source before reconnects wait for them,
# so a driver that never returns cannot leak threads and sockets without bound.
CLOSE_WAIT_S = 2.0
MAX_STUCK_READERS = 3
MAX_CAMERA_INDEX = 9999


def _is_index(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '¹' and '٣', which int() refuses."""
    return text.isascii() and text.isdigit()


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

    def __init__(self, spec: str):
        super().__init__(spec)
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._latest_mono = 0.0
        self._seq = 0
        self._taken = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stuck: list[threading.Thread] = []
        self._t0: float | None = None
        self.ended = False
        self.error: str | None = None
        # Set by the owner (the capture loop's stop flag) so a waiting read() returns at once.
        self.cancel: threading.Event | None = None

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
                        self.dropped += 1
                    self._latest = img
                    self._latest_mono = time.monotonic()
                    self._seq += 1
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

    def read(self, timeout: float = 10.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq == self._taken and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or (self.cancel is not None and self.cancel.is_set()):
                    return None
                self._cond.wait(min(left, 0.25))
            if self._seq == self._taken:
                return None
            img, mono = self._latest, self._latest_mono
            self._taken = self._seq
        now_wall = time.time() - (time.monotonic() - mono)
        if self._t0 is None:
            self._t0 = mono
        i = self.frames_read
        self.frames_read += 1
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

    @property
    def stuck_readers(self) -> int:
        return sum(t.is_alive() for t in self._stuck)


class CaptureSource(LiveSource):
    """A camera (index or device path) or a network URL, through OpenCV.

    Each connection's VideoCapture belongs to its reader thread, which releases
    it after its last read; FFmpeg's open/read timeouts are set to the camera's
    `timeout_seconds`, so even a reader left behind on a stalled stream ends.
    """

    def __init__(self, spec: str, timeout: float | None = None):
        super().__init__(spec)
        self.cap: cv2.VideoCapture | None = None
        ms = int(1000 * timeout) if timeout else READ_TIMEOUT_MS
        self._timeout_s = ms / 1000
        if _is_index(spec):
            self.kind = "camera"
            self._target, self._api, self._params = int(spec), cv2.CAP_ANY, []
        elif spec.startswith("/dev/"):
            self.kind = "camera"
            self._target, self._api, self._params = spec, cv2.CAP_V4L2, []
        else:
            self.kind = "stream"
            self._target, self._api = spec, cv2.CAP_FFMPEG
            self._params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]

    def _connect(self) -> cv2.VideoCapture:
        if self.kind == "camera" and isinstance(self._target, str) and not _exists(self._target):
            raise SourceError(f"{_redact(self.spec)}: no such camera device")
        if isinstance(self._target, int) and self._target > MAX_CAMERA_INDEX:
            raise SourceError(f"{_redact(self.spec)}: camera index out of range; allowed: 0..{MAX_CAMERA_INDEX}")
        t0 = time.monotonic()
        try:
            cap = cv2.VideoCapture(self._target, self._api, self._params)
        except cv2.error as e:  # OpenCV rejects what it cannot even try (odd characters, sizes)
            raise SourceError(f"{_redact(self.spec)}: cannot open {self.kind}: "
                              f"{str(e).strip().splitlines()[-1]}") from None
        if not cap.isOpened():
            cap.release()
            tried = "OpenCV's FFmpeg backend" if self.kind == "stream" else "OpenCV's camera backends"
            silent = self.kind == "stream" and time.monotonic() - t0 >= 0.9 * self._timeout_s
            why = f": no answer within {self._timeout_s:g} s" if silent else ""
            raise SourceError(f"{_redact(self.spec)}: cannot open {self.kind}{why} (tried {tried})")
        self.cap = cap
        self.fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS), unknown=0.0)  # 0: unknown
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        return cap

    def _grab_from(self, cap: cv2.VideoCapture) -> np.ndarray | None:
        ok, img = cap.read()
        return img if ok and img is not None and img.size else None

    def _release(self, cap: cv2.VideoCapture) -> None:
        cap.release()
        if self.cap is cap:
            self.cap = None

    def describe(self) -> str:
        return f"{self.kind} {_redact(self.spec)}"


class DemoSource(LiveSource):
    """The built-in demo camera: an endless generated room, paced at its frame rate."""

    kind = "demo scene"

    def __init__(self, spec: str = "demo", fps: float = 15.0, paced: bool = True):
        super().__init__(spec)
        from motionwatch.synth import demo_scene   # only the demo draws scenes: 3 ms less start-up for the rest
        seed = int(spec.split(":", 1)[1]) if ":" in spec and _is_index(spec.split(":", 1)[1]) else 1
        self.scene = demo_scene(seed=seed, fps=fps)
        self.fps = fps
        self.size = (self.scene.width, self.scene.height)
        self.paced = paced
        self._renderer = None
        self._i = 0
        self._start = 0.0

    def _connect(self) -> None:
        from motionwatch.synth import SceneRenderer
        self._renderer = SceneRenderer(self.scene)
        self._i = 0
        self._start = time.monotonic()

    def _grab(self) -> np.ndarray | None:
        due = self._start + self._i / self.fps
        if self.paced:
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return None
        img = self._renderer.render(self._i % self.scene.frames)
        self._i += 1
        return img


def _redact(spec: str) -> str:
    """The spec as messages show it: a password in rtsp://user:pass@host hidden, and
    quoted when it holds line breaks or other unprintables, so a message stays one line."""
    shown = re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", spec)
    return shown if shown.isprintable() else repr(shown)


def source_kind(spec: str) -> str:
    """Which kind of source a spec names, for messages and the camera's default name."""
    if spec == "demo" or spec.startswith("demo:"):
        return "demo"
    if spec.startswith("pipe:"):
        return "pipe"
    if spec == "picamera2" or spec.startswith("picamera2:"):
        return "picamera2"
    if _is_index(spec) or spec.startswith("/dev/"):
        return "camera"
    if spec.lower().startswith(URL_SCHEMES):
        return "stream"
    return "file"


def open_source(spec: str, *, scan: bool = False, start_wall: float | None = None,
                timeout: float | None = None) -> FrameSource:
    """Build and open the source a spec names; raises SourceError with what was tried.

    `timeout` (seconds) bounds how long a network stream may take to open or to
    deliver the next frame before it counts as lost."""
    kind = source_kind(spec)
    if kind == "demo":
        src: FrameSource = DemoSource(spec, paced=not scan)
    elif kind == "pipe":
        from motionwatch.pipe_source import PipeSource
        src = PipeSource(spec)
    elif kind == "picamera2":
        from motionwatch.picamera_source import PicameraSource
        src = PicameraSource(spec)
    elif kind in ("camera", "stream"):
        src = None
        if spec.lower().startswith(("http://", "https://")):
            # An MJPEG camera is read without FFmpeg (see mjpeg_source); anything
            # else over HTTP (a video file, HLS, Digest auth) goes to FFmpeg as before.
            from motionwatch.mjpeg_source import probe
            src = probe(spec, timeout)
        src = src or CaptureSource(spec, timeout=timeout)
    else:
        src = FileSource(spec, paced=not scan, start_wall=start_wall)
    src.open()
    return src
