"""Frames that keep their JPEG: what an MJPEG camera and a `pipe:` MJPEG source hand over.

`gray` is decoded at the largest libjpeg DCT reduction that still gives the
detection width (`IMREAD_REDUCED_GRAYSCALE_2/4/8`), colour only when something
asks for `image` (a snapshot, the live view); clips are encoded from the JPEG bytes
themselves (sinks.clip: FFmpeg's MJPEG decoder straight to YUV, no BGR).
Kept apart from the HTTP reader so the clip writer can know these frames
without importing a network client.
"""

from __future__ import annotations

import logging
import struct
import time

import cv2
import numpy as np

from motionwatch.model import Frame

log = logging.getLogger("motionwatch")

# Detection width the pipeline uses unless it says otherwise (detection.width's default).
DEFAULT_DETECT_WIDTH = 320
REDUCED = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
           (2, cv2.IMREAD_REDUCED_GRAYSCALE_2), (1, cv2.IMREAD_GRAYSCALE))
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; not DHT/JPG/DAC).
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, without decoding; None if absent."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:   # fill byte
            i += 1
            continue
        if marker in SOF_MARKERS:
            h, w = struct.unpack_from(">HH", data, i + 5)
            return (w, h) if w and h else None
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:   # markers without a length
            i += 2
            continue
        i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    return None


def reduction(width: int, detect_width: int) -> tuple[int, int]:
    """(factor, imdecode flag): the largest DCT reduction that leaves at least `detect_width` px."""
    for factor, flag in REDUCED:
        if -(-width // factor) >= detect_width:
            return factor, flag
    return REDUCED[-1]


class JpegFrame(Frame):
    """A frame that keeps its JPEG: `gray` is the reduced luma the detector uses,
    `image` the full-size BGR picture, decoded on first use (a saved frame) only.
    An H.264 clip is encoded from `jpeg` itself (sinks.clip), so its
    frames are never decoded here at all.

    Two threads asking at once (the clip writer and the live view) may both
    decode; the result is the same picture, so no lock is taken per frame."""

    __slots__ = ("jpeg", "_bgr", "_size", "wanted", "coded_size")

    def __init__(self, jpeg: bytes, gray: np.ndarray, size: tuple[int, int], index: int, ts: float, wall: float):
        Frame.__init__(self, None, index, ts, wall, gray)
        self.jpeg = jpeg
        self._size = size
        self.coded_size = size   # the JPEG's own picture size; `size` is smaller on a `scaled` copy
        self.wanted = False   # something asked for the colour picture

    @property
    def image(self) -> np.ndarray:
        self.wanted = True
        if self._bgr is None:
            bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[1::-1] != self.coded_size:   # cannot happen after the grey decode worked
                bgr = cv2.cvtColor(cv2.resize(self.gray, self._size), cv2.COLOR_GRAY2BGR)
            elif self.coded_size != self._size:
                bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
            self._bgr = bgr
        return self._bgr

    @image.setter
    def image(self, value) -> None:
        self._bgr = value

    @property
    def decoded(self) -> bool:
        """Whether the colour picture has been made (tests and benchmarks check this)."""
        return self._bgr is not None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def nbytes(self) -> int:
        """What the frame holds: its JPEG and grey, plus the colour picture once made.
        A camera's JPEG is a small fraction of the BGR picture it decodes to, so
        the sink queue's byte budget takes a whole pre-roll of such a camera."""
        held = len(self.jpeg) + (self.gray.nbytes if self.gray is not None else 0)
        return held + (self._bgr.nbytes if self._bgr is not None else 0)

    def scaled(self, size: tuple[int, int]) -> JpegFrame:
        """This frame shown at `size` (a clip narrower than the camera, events.clip_width),
        still undecoded: the clip encoder scales the JPEG, and colour is decoded (then
        shrunk) only if something asks for `image`."""
        frame = JpegFrame(self.jpeg, self.gray, size, self.index, self.ts, self.wall)
        frame.coded_size = self.coded_size
        return frame

    def __repr__(self) -> str:  # the dataclass repr would decode the colour picture
        return f"JpegFrame(index={self.index}, ts={self.ts:.3f}, size={self._size}, {len(self.jpeg)} bytes)"


def jpeg_frame(jpeg: bytes, index: int, ts: float, wall: float, detect_width: int,
               colour: bool = False) -> JpegFrame:
    """A JpegFrame whose grey is decoded at the largest reduction that keeps
    `detect_width`; with `colour` the full BGR picture is decoded now and the
    grey shrunk from it. `gray` is None when the JPEG does not decode."""
    size = jpeg_size(jpeg)
    gray = bgr = None
    if size is not None:
        factor, flag = reduction(size[0], detect_width)
        small = (-(-size[0] // factor), -(-size[1] // factor))   # what libjpeg's scaling gives
        buf = np.frombuffer(jpeg, np.uint8)
        if colour:
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            if bgr is not None and bgr.shape[1::-1] == size:
                gray = cv2.cvtColor(cv2.resize(bgr, small, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        else:
            gray = cv2.imdecode(buf, flag)
        if gray is not None and gray.shape[1::-1] != small:
            gray = None   # the header lied about the size
    frame = JpegFrame(jpeg, gray, size or (0, 0), index, ts, wall)
    if gray is not None:
        frame.image = bgr
    return frame


class JpegFrames:
    """For a LiveSource whose reader thread hands over JPEG bytes (an MJPEG camera,
    a `pipe:` command writing MJPEG): each frame is decoded in `read()` (dropped
    frames cost nothing), grey at the detection size, colour only on demand;
    a JPEG that does not decode is skipped and counted."""

    detect_width = DEFAULT_DETECT_WIDTH   # the pipeline sets detection.width before the first read
    bad_frames = 0
    _prev: JpegFrame | None = None        # the last good frame handed out

    def read(self, timeout: float = 10.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            frame = super().read(max(0.0, deadline - time.monotonic()))
            if frame is None or frame.gray is not None:
                return frame
            self.bad_frames += 1   # a damaged JPEG: skip it, the next one is a frame interval away
            if self.bad_frames == 1:
                log.warning("%s: skipping a JPEG that does not decode (more are counted, not logged)",
                            self.describe())

    def _frame(self, jpeg: bytes, index: int, ts: float, wall: float) -> Frame:
        # The last frame was wanted in colour (an event's clip, the live view): this
        # one will be too, so it is decoded once in colour rather than grey and colour.
        colour = self._prev is not None and self._prev.wanted
        frame = jpeg_frame(jpeg, index, ts, wall, self.detect_width, colour)
        if frame.gray is not None:
            self._prev = frame
            if self.size != frame.size:
                self.size = frame.size
        return frame
