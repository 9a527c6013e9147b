"""The capture loop: one camera's source → detector → tracker → sink queue.

It never waits on disk or network (sinks run on their own thread), survives a
live source that drops out (reconnect with capped exponential backoff and a
fresh warm-up), and shuts down cleanly, finishing any open event.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from motionwatch.config import CameraConfig, Config
from motionwatch.detector import MotionDetector
from motionwatch.errors import SourceError
from motionwatch.events import EventEnded, EventStarted, EventTracker
from motionwatch.masks import watch_mask
from motionwatch.model import Detection, Frame, iso
from motionwatch.sources import FrameSource, open_source

log = logging.getLogger("motionwatch")

BACKOFF_START = 1.0
BACKOFF_CAP = 30.0


@dataclass
class CameraStatus:
    """What the status page and metrics show about one camera."""

    name: str
    source: str
    connected: bool = False
    since: float = field(default_factory=time.time)
    frames: int = 0
    analysed: int = 0
    dropped: int = 0
    fps: float = 0.0
    fraction: float = 0.0
    events: int = 0
    last_event: str | None = None
    reconnects: int = 0
    in_event: bool = False


class CameraLoop:
    """Runs one camera until `stop` is set or (for files) the source ends."""

    def __init__(self, cam: CameraConfig, cfg: Config, sinks, stop: threading.Event,
                 scan: bool = False, start_wall: float | None = None,
                 on_frame: Callable[[Frame, Detection], None] | None = None,
                 on_state: Callable[[str, CameraStatus], None] | None = None):
        self.cam = cam
        self.cfg = cfg
        self.det_cfg = cfg.camera_detection(cam)
        self.sinks = sinks
        self.stop = stop
        self.scan = scan
        self.start_wall = start_wall
        self.on_frame = on_frame
        self.on_state = on_state
        self.status = CameraStatus(cam.name, cam.source)
        self.source: FrameSource | None = None
        self.detector: MotionDetector | None = None
        self.tracker: EventTracker | None = None
        self._size: tuple[int, int] | None = None
        self._next_detect_ts = 0.0
        self._fps_window: list[float] = []

    # -- lifecycle ----------------------------------------------------------------

    def open(self) -> FrameSource:
        """Open the source once; errors here are the user's to fix (exit 1)."""
        self.source = open_source(self.cam.source, scan=self.scan, start_wall=self.start_wall)
        self._connected()
        return self.source

    def run(self) -> CameraStatus:
        if self.source is None:
            self.open()
        try:
            while not self.stop.is_set():
                frame = self.source.read(timeout=self.cam.timeout_seconds)
                if frame is None:
                    if not self.source.live:
                        self._flush("source ended")
                        break
                    self._lost()
                    if not self._reconnect():
                        break
                    continue
                self._process(frame)
            else:
                self._flush("shutdown")
        finally:
            self.status.dropped = self.source.dropped if self.source else 0
            if self.source is not None:
                self.source.close()
        return self.status

    # -- per frame ----------------------------------------------------------------

    def _process(self, frame: Frame) -> None:
        st = self.status
        st.frames += 1
        size = (frame.image.shape[1], frame.image.shape[0])
        if size != self._size:
            self._setup(size)
        if self.det_cfg.fps and frame.ts < self._next_detect_ts:
            # Analyse at most detection.fps frames a second; the others still go
            # to the pre-roll and the clip so clips keep the source's frame rate.
            for signal in self.tracker.carry(frame):
                self._emit(signal)
            return
        self._next_detect_ts = frame.ts + 1.0 / self.det_cfg.fps if self.det_cfg.fps else 0.0
        det = self.detector.update(frame.image, frame.gray)
        st.analysed += 1
        st.fraction = det.fraction
        self._tick_fps(frame.ts)
        for signal in self.tracker.feed(frame, det):
            self._emit(signal)
        st.in_event = self.tracker.active
        if self.on_frame is not None:
            self.on_frame(frame, det)

    def _setup(self, size: tuple[int, int]) -> None:
        """(Re)build detector and tracker for a frame size (new source or a size change)."""
        if self._size is not None:
            log.warning("%s: picture size changed from %dx%d to %dx%d; re-learning the background",
                        self.cam.name, *self._size, *size)
            self._flush("size changed")
        self._size = size
        fps = self._analysis_fps()
        base = Path(self.cfg.source_file).parent if self.cfg.source_file else None
        from motionwatch.masks import detection_size
        det_size = detection_size(size[0], size[1], self.det_cfg.width)
        watch = watch_mask(self.cam, size, det_size, base)
        self.detector = MotionDetector(self.det_cfg, size, fps, watch)
        self.tracker = EventTracker(self.cam.name, self.cfg.events, self.det_cfg.trigger_fraction,
                                    self.det_cfg.min_frames, fps,
                                    clip_fps=self.source.fps if self.source else None)

    def _analysis_fps(self) -> float:
        fps = self.source.fps if self.source and self.source.fps else 10.0
        if self.det_cfg.fps:
            fps = min(fps, self.det_cfg.fps)
        return fps

    def _tick_fps(self, ts: float) -> None:
        w = self._fps_window
        w.append(ts)
        if len(w) > 30:
            del w[0]
        if len(w) >= 2 and w[-1] > w[0]:
            self.status.fps = (len(w) - 1) / (w[-1] - w[0])

    def _emit(self, signal) -> None:
        st = self.status
        if isinstance(signal, EventStarted):
            ev = signal.event
            log.info("%s: motion: event %s started at %s (frame %d, %.1f%% changed)", ev.camera, ev.id,
                     iso(ev.first.wall)[11:19], ev.first.index, 100 * ev.peak)
        elif isinstance(signal, EventEnded):
            st.events += 1
            st.last_event = signal.record.end
        self.sinks.put(signal)
        if self.on_state is not None and isinstance(signal, (EventStarted, EventEnded)):
            self.on_state("event_start" if isinstance(signal, EventStarted) else "event_end", st)

    def _flush(self, reason: str) -> None:
        if self.tracker is not None:
            for signal in self.tracker.flush(reason):
                self._emit(signal)

    # -- connection ---------------------------------------------------------------

    def _connected(self) -> None:
        st = self.status
        st.connected, st.since = True, time.time()

    def _lost(self) -> None:
        st = self.status
        self._flush("camera lost")
        st.connected, st.since = False, time.time()
        err = f" ({self.source.error})" if getattr(self.source, "error", None) else ""
        log.warning("%s: camera lost: no frame for %.0f s from %s%s", self.cam.name,
                    self.cam.timeout_seconds, self.source.describe(), err)
        if self.on_state is not None:
            self.on_state("camera_lost", st)
        self.source.close()

    def _reconnect(self) -> bool:
        """Retry with exponential backoff (capped) until frames return or we stop."""
        delay = BACKOFF_START
        while not self.stop.is_set():
            if self.stop.wait(delay):
                return False
            try:
                self.source.open()
            except SourceError as e:
                log.info("%s: still lost (%s); next try in %.0f s", self.cam.name, e,
                         min(delay * 2, BACKOFF_CAP))
                delay = min(delay * 2, BACKOFF_CAP)
                continue
            frame = self.source.read(timeout=self.cam.timeout_seconds)
            if frame is None:
                self.source.close()
                delay = min(delay * 2, BACKOFF_CAP)
                continue
            self.status.reconnects += 1
            self._connected()
            log.warning("%s: camera found again after %d tries; re-learning the background",
                        self.cam.name, self.status.reconnects)
            if self.on_state is not None:
                self.on_state("camera_found", self.status)
            self._size = None  # fresh warm-up so the reconnect itself is not an event
            self.detector = self.tracker = None
            self._process(frame)
            return True
        return False
