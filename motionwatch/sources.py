"""Frame sources: files, cameras, network streams and the demo scene.

`open_source(spec)` picks a class from the string. File sources in `scan`
mode return every frame in order as fast as they decode; everything else is
live: a reader thread keeps only the newest frame so the detector never falls
behind the camera, and counts what it had to drop.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from motionwatch.errors import SourceError
from motionwatch.model import Frame
from motionwatch.synth import SceneRenderer, demo_scene

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")
# Open/read timeouts for network streams, so a dead camera cannot hang the loop.
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
        self.cap: cv2.VideoCapture | None = None
        self.start_wall = start_wall
        self.decode_failures = 0
        self._t0 = 0.0

    def open(self) -> None:
        path = Path(self.spec)
        if not path.exists():
            raise SourceError(f"{self.spec}: no such file (tried it as a video file; "
                              "sources are a camera index, /dev/videoN, a URL, a file, pipe:COMMAND or demo)")
        if path.is_dir():
            raise SourceError(f"{self.spec}: is a folder, not a video file")
        if not os.access(path, os.R_OK):
            raise SourceError(f"{self.spec}: permission denied")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.spec}: not a video OpenCV/FFmpeg can decode")
        self.cap = cap
        self.fps = _sane_fps(cap.get(cv2.CAP_PROP_FPS))
        self.total_frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None
        if self.start_wall is None:
            # Best guess at when the recording began: its mtime minus its length.
            length = self.total_frames / self.fps if self.total_frames else 0.0
            self.start_wall = path.stat().st_mtime - length
        self._t0 = time.monotonic()

    def read(self, timeout: float = 10.0) -> Frame | None:
        if self.cap is None:
            return None
        ok, img = self.cap.read()
        if not ok or img is None:
            return None
        i = self.frames_read
        self.frames_read += 1
        ts = i / self.fps
        if self.paced:
            delay = self._t0 + ts - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            wall = time.time()
        else:
            wall = self.start_wall + ts
        return Frame(img, i, ts, wall)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def _sane_fps(fps: float) -> float:
    return float(fps) if fps and 0.5 <= fps <= 240 else 25.0


# --- live sources ------------------------------------------------------------

class LiveSource(FrameSource):
    """A reader thread grabs continuously; `read()` hands out the newest frame."""

    def __init__(self, spec: str):
        super().__init__(spec)
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._latest_mono = 0.0
        self._seq = 0
        self._taken = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self.ended = False
        self.error: str | None = None

    def open(self) -> None:
        self._connect()
        self._stop.clear()
        self.ended = False
        self._thread = threading.Thread(target=self._run, name=f"grab-{self.spec}", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        raise NotImplementedError

    def _grab(self) -> np.ndarray | None:
        """Block for the next picture; None means the source has gone."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        pass

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                img = self._grab()
            except Exception as e:  # a driver error must end the stream, not the process
                self.error = str(e)
                img = None
            if img is None:
                break
            with self._cond:
                if self._seq > self._taken:
                    self.dropped += 1
                self._latest = img
                self._latest_mono = time.monotonic()
                self._seq += 1
                self._cond.notify_all()
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def read(self, timeout: float = 10.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq == self._taken and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(min(left, 0.5))
            if self._seq == self._taken:
                return None
            img, mono = self._latest, self._latest_mono
            self._taken = self._seq
        now_wall = time.time() - (time.monotonic() - mono)
        if self._t0 is None:
            self._t0 = mono
        i = self.frames_read
        self.frames_read += 1
        return Frame(img, i, mono - self._t0, now_wall)

    def close(self) -> None:
        self._stop.set()
        self._disconnect()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


class CaptureSource(LiveSource):
    """A camera (index or device path) or a network URL, through OpenCV."""

    def __init__(self, spec: str):
        super().__init__(spec)
        self.cap: cv2.VideoCapture | None = None
        if spec.isdigit():
            self.kind = "camera"
            self._target, self._api, self._params = int(spec), cv2.CAP_ANY, []
        elif spec.startswith("/dev/"):
            self.kind = "camera"
            self._target, self._api, self._params = spec, cv2.CAP_V4L2, []
        else:
            self.kind = "stream"
            self._target, self._api = spec, cv2.CAP_FFMPEG
            self._params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]

    def _connect(self) -> None:
        if self.kind == "camera" and isinstance(self._target, str) and not Path(self._target).exists():
            raise SourceError(f"{self.spec}: no such camera device")
        cap = cv2.VideoCapture(self._target, self._api, self._params)
        if not cap.isOpened():
            cap.release()
            tried = "OpenCV's FFmpeg backend" if self.kind == "stream" else "OpenCV's camera backends"
            raise SourceError(f"{_redact(self.spec)}: cannot open {self.kind} (tried {tried})")
        self.cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0.5 <= fps <= 240 else 0.0
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w > 0 and h > 0 else None

    def _grab(self) -> np.ndarray | None:
        if self.cap is None:
            return None
        ok, img = self.cap.read()
        return img if ok and img is not None and img.size else None

    def _disconnect(self) -> None:
        # Releasing from another thread while read() blocks is unsafe in OpenCV;
        # the reader loop ends on its own within the read timeout.
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=READ_TIMEOUT_MS / 1000 + 1)
        if self.cap is not None and (thread is None or not thread.is_alive()):
            self.cap.release()
            self.cap = None

    def describe(self) -> str:
        return f"{self.kind} {_redact(self.spec)}"


class DemoSource(LiveSource):
    """The built-in demo camera: an endless generated room, paced at its frame rate."""

    kind = "demo scene"

    def __init__(self, spec: str = "demo", fps: float = 15.0, paced: bool = True):
        super().__init__(spec)
        seed = int(spec.split(":", 1)[1]) if ":" in spec and spec.split(":", 1)[1].isdigit() else 1
        self.scene = demo_scene(seed=seed, fps=fps)
        self.fps = fps
        self.size = (self.scene.width, self.scene.height)
        self.paced = paced
        self._renderer: SceneRenderer | None = None
        self._i = 0
        self._start = 0.0

    def _connect(self) -> None:
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
    """Hide a password in rtsp://user:pass@host URLs before it reaches a log."""
    return re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", spec)


def source_kind(spec: str) -> str:
    """Which kind of source a spec names, for messages and the camera's default name."""
    if spec == "demo" or spec.startswith("demo:"):
        return "demo"
    if spec.startswith("pipe:"):
        return "pipe"
    if spec.isdigit() or spec.startswith("/dev/"):
        return "camera"
    if spec.lower().startswith(URL_SCHEMES):
        return "stream"
    return "file"


def open_source(spec: str, *, scan: bool = False, start_wall: float | None = None) -> FrameSource:
    """Build and open the source a spec names; raises SourceError with what was tried."""
    kind = source_kind(spec)
    if kind == "demo":
        src: FrameSource = DemoSource(spec, paced=not scan)
    elif kind == "pipe":
        from motionwatch.pipe_source import PipeSource
        src = PipeSource(spec)
    elif kind in ("camera", "stream"):
        src = CaptureSource(spec)
    else:
        src = FileSource(spec, paced=not scan, start_wall=start_wall)
    src.open()
    return src
