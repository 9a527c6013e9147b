"""Live view: the newest frame of each camera as JPEG, for any number of MJPEG clients.

The capture thread's only cost is `push()`: it appends the fraction to a short
history and, when the encoder has asked for a picture, copies the newest frame
and mask (so at most `web.live_fps` copies a second, and none while nobody
watches). One encoder thread per watched camera turns that copy into JPEG(s)
once for all clients; each client is a coroutine on the web server's event
loop that waits for the next sequence number and writes bytes, so a slow
browser delays nobody but itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import cv2
import numpy as np

from motionwatch.media.frames import widened
from motionwatch.model import Detection, Frame
from motionwatch.sinks.recorder import encode_jpeg

MAX_WIDTH = 1280          # the live view is for looking, not evidence: cap its size
MAX_VIEWERS = 32          # streams per camera; each holds a socket and its send buffer
IDLE_SECONDS = 5.0        # the encoder stops this long after the last viewer leaves
HISTORY = 300             # analysed frames of (wall, fraction) kept for the live chart
JPEG_QUALITY = 75


class LiveCamera:
    def __init__(self, name: str, trigger: float, fps: float):
        self.name = name
        self.trigger = trigger
        self.period = 1.0 / fps
        self.history: deque[tuple[float, float]] = deque(maxlen=HISTORY)
        self._cond = threading.Condition()
        self._want = False
        self._grab: tuple | None = None
        self._shape: tuple = (None, 0)   # the grabbed frame's (sar, rotation)
        self._jpeg: dict[bool, bytes] = {}
        self._seq = 0
        self._viewers = 0
        self._last_seen = 0.0
        self._overlay_until = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.encoded = 0

    # -- capture side (must stay cheap) --------------------------------------------

    def push(self, frame: Frame, det: Detection) -> None:
        self.history.append((frame.wall, det.fraction))
        if not self._want:
            return
        with self._cond:
            if not self._want:
                return
            # Copies, because sources and the detector may reuse these buffers.
            # During warm-up or a lighting change the mask is not motion: show none.
            note = "lighting change: ignored" if det.lighting_change else "" if det.ready else "warming up"
            mask = det.mask.copy() if det.mask is not None and not note else None
            self._grab = (frame.glance.copy(), mask, list(det.boxes), det.fraction, note)
            self._shape = (frame.sar, frame.rotation)   # drawn in stored pixels, shown widened
            self._want = False
            self._cond.notify_all()

    # -- encoder -------------------------------------------------------------------

    def _ensure_encoder(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._encode_loop, name=f"live-{self.name}", daemon=True)
            self._thread.start()

    def _encode_loop(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            with self._cond:
                if self._viewers == 0 and time.monotonic() - self._last_seen > IDLE_SECONDS:
                    self._want = False
                    self._thread = None
                    return
                self._want = True
                if not self._cond.wait_for(lambda: not self._want or self._stop.is_set(), timeout=1.0):
                    continue  # no frame (camera lost or stalled): keep the last picture
                grab, self._grab = self._grab, None
                shape = self._shape
                overlay = time.monotonic() < self._overlay_until
            if grab is None:
                continue
            jpegs = {False: _encode(_fit(widened(grab[0], *shape)))}
            if overlay:
                jpegs[True] = _encode(_fit(widened(draw_overlay(*grab, self.trigger), *shape)))
            with self._cond:
                self._jpeg = jpegs
                self._seq += 1
                self.encoded += 1
                self._wake_waiters()
            next_due = max(next_due + self.period, time.monotonic())
            self._stop.wait(next_due - time.monotonic())

    # -- client side: coroutines on the web server's event loop -------------------

    @property
    def full(self) -> bool:
        return self._viewers >= MAX_VIEWERS

    def _note_viewer(self, overlay: bool) -> None:
        self._last_seen = time.monotonic()
        if overlay:
            self._overlay_until = self._last_seen + IDLE_SECONDS

    async def frames(self, overlay: bool, max_wait: float = 10.0):
        """Each new JPEG for one viewer, until it leaves (the server then closes this
        generator) or the camera closes. A viewer that reads slowly is simply not
        resumed until its bytes are sent: it skips pictures and delays nobody."""
        with self._cond:
            self._viewers += 1
        last = -1
        try:
            while not self._stop.is_set():
                data, last = await self._next(overlay, last, max_wait)
                if data:
                    yield data
        finally:
            with self._cond:
                self._viewers -= 1
                self._last_seen = time.monotonic()

    async def _next(self, overlay: bool, last: int, timeout: float) -> tuple[bytes | None, int]:
        """The newest JPEG once its sequence number differs from `last` (None on timeout)."""
        loop = asyncio.get_running_loop()
        with self._cond:
            self._note_viewer(overlay)
            self._ensure_encoder()
            waiter = None
            if self._seq == last:
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
        if waiter is not None:
            try:
                await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                pass
        with self._cond:
            if self._seq == last:
                return None, last
            # An overlay viewer skips pictures encoded before it asked for the overlay.
            return self._jpeg.get(overlay), self._seq

    def _wake_waiters(self) -> None:
        """Called with self._cond held, from the encoder thread."""
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:
                pass  # that loop has closed: the server stopped

    async def snapshot(self, overlay: bool, timeout: float = 5.0) -> bytes | None:
        """One current JPEG (for /live/<camera>.jpg), None when none comes in time."""
        frames = self.frames(overlay, max_wait=timeout)
        try:
            return await asyncio.wait_for(frames.__anext__(), timeout)
        except (asyncio.TimeoutError, StopAsyncIteration):
            return None
        finally:
            await frames.aclose()

    def recent(self, seconds: float = 20.0) -> list[list[float]]:
        now = time.time()
        return [[round(t - now, 2), round(f, 5)] for t, f in list(self.history) if now - t <= seconds]

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            self._wake_waiters()


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _fit(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= MAX_WIDTH:
        return image
    return cv2.resize(image, (MAX_WIDTH, round(h * MAX_WIDTH / w)), interpolation=cv2.INTER_AREA)


def _encode(image: np.ndarray) -> bytes:
    """The live JPEG; b"" when encoding fails (viewers keep waiting for the next one)."""
    try:
        return encode_jpeg(image, JPEG_QUALITY)
    except OSError:
        return b""


def draw_overlay(image: np.ndarray, mask: np.ndarray | None, boxes, fraction: float, note: str,
                 trigger: float) -> np.ndarray:
    """The frame with changed pixels tinted red, motion boxes and the fraction drawn on."""
    out = image  # already a private copy made by push()
    h, w = out.shape[:2]
    if mask is not None:
        m = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        tinted = cv2.addWeighted(out, 0.5, np.full_like(out, (40, 40, 255)), 0.5, 0)
        cv2.copyTo(tinted, m, out)
    scale = max(1, w // 640)
    for x, y, bw, bh in boxes:
        cv2.rectangle(out, (int(x), int(y)), (int(x + bw), int(y + bh)), (80, 255, 80), 2 * scale)
    over = fraction >= trigger
    text = note or f"{100 * fraction:.2f}% changed (trigger {100 * trigger:.2f}%)"
    colour = (80, 80, 255) if over else (255, 255, 255)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale
    (tw, th), base = cv2.getTextSize(text, font, size, scale)
    x, y = 8 * scale, h - 10 * scale
    cv2.rectangle(out, (x - 5 * scale, y - th - 6 * scale), (x + tw + 5 * scale, y + base + 2 * scale), (0, 0, 0), -1)
    cv2.putText(out, text, (x, y), font, size, colour, scale, cv2.LINE_AA)
    return out


class LiveHub:
    """The live cameras of one `run`, fed by each CameraLoop's on_frame callback."""

    def __init__(self, live_fps: float):
        self.live_fps = live_fps
        self.cameras: dict[str, LiveCamera] = {}

    def attach(self, loop) -> LiveCamera:
        """Chain onto loop.on_frame (keeping any callback already there, e.g. a progress bar)."""
        trigger = loop.det_cfg.trigger_fraction
        cam = LiveCamera(loop.cam.name, trigger, self.live_fps)
        self.cameras[cam.name] = cam
        previous = loop.on_frame

        def on_frame(frame: Frame, det: Detection) -> None:
            if previous is not None:
                previous(frame, det)
            cam.push(frame, det)

        loop.on_frame = on_frame
        return cam

    def close(self) -> None:
        for cam in self.cameras.values():
            cam.close()
