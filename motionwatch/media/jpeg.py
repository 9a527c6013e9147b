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
import threading
import time

import av
import cv2
import numpy as np

from motionwatch.media.frames import plane_view
from motionwatch.media.jpeg_check import JpegCheck, decode_one
from motionwatch.model import Frame

log = logging.getLogger("motionwatch")

# Detection width the pipeline uses unless it says otherwise (detection.width's default).
DEFAULT_DETECT_WIDTH = 320
REDUCED = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
           (2, cv2.IMREAD_REDUCED_GRAYSCALE_2), (1, cv2.IMREAD_GRAYSCALE))
SOI, EOI = b"\xff\xd8", b"\xff\xd9"   # a JPEG's start- and end-of-image markers
# JPEG start-of-frame markers (baseline, extended, progressive, lossless; not DHT/JPG/DAC).
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, without decoding; None if absent."""
    if data[:2] != SOI:
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


_decoders = threading.local()   # one FFmpeg MJPEG decoder per thread (capture, sink)


def decode_yuv(jpeg: bytes) -> av.VideoFrame | None:
    """The JPEG decoded in full by FFmpeg, as its own YUV (no BGR); None if it fails."""
    dec = getattr(_decoders, "mjpeg", None)
    if dec is None:
        dec = _decoders.mjpeg = av.CodecContext.create("mjpeg", "r")
    frame = decode_one(dec, jpeg)
    return full_range(frame) if frame is not None else None


def full_range(frame: av.VideoFrame) -> av.VideoFrame:
    """A decoded JPEG tagged full range, as every JPEG is: FFmpeg tags a grey one so
    only when the decoder's last picture was colour."""
    if frame.format.name == "gray":
        frame.color_range = 2
    return frame


def colour_and_gray(jpeg: bytes, size: tuple[int, int], detect_width: int
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(BGR, grey at the detection size shrunk from it): one decode for a frame that
    is both analysed and shown; (None, None) when it does not decode."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[1::-1] != size:
        return None, None
    factor, _ = reduction(size[0], detect_width)
    small = (-(-size[0] // factor), -(-size[1] // factor))
    return bgr, cv2.cvtColor(cv2.resize(bgr, small, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)


# `JpegFrame._gray` before its first use: not decoded yet (None means "does not decode").
UNDECODED = object()


def reduced_gray(jpeg: bytes, size: tuple[int, int], detect_width: int) -> np.ndarray | None:
    """The JPEG's luma at the largest DCT reduction that keeps `detect_width`; None
    when it does not decode or is not the size its header says."""
    factor, flag = reduction(size[0], detect_width)
    small = (-(-size[0] // factor), -(-size[1] // factor))   # what libjpeg's scaling gives
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), flag)
    return gray if gray is not None and gray.shape[1::-1] == small else None


class JpegFrame(Frame):
    """A frame that keeps its JPEG: `gray` is the reduced luma the detector uses,
    decoded on first use (a frame due for analysis), `image` the full-size BGR
    picture, decoded on first use (a saved frame) only. An H.264 clip is encoded
    from `jpeg` itself (sinks.clip), so a frame that is neither analysed nor
    shown is never decoded here at all (half the frames at detection.fps 15 on
    a 30 fps camera).

    Two threads asking at once (the clip writer and the live view) may both
    decode; the result is the same picture, so no lock is taken per frame."""

    __slots__ = ("jpeg", "_bgr", "_size", "wanted", "coded_size", "_gray", "detect_width", "_yuv", "colour_first",
                 "check", "damaged")

    def __init__(self, jpeg: bytes, gray, size: tuple[int, int], index: int, ts: float, wall: float,
                 detect_width: int = DEFAULT_DETECT_WIDTH):
        Frame.__init__(self, None, index, ts, wall, gray)
        self.jpeg = jpeg
        self._size = size
        self.coded_size = size   # the JPEG's own picture size; `size` is smaller on a `scaled` copy
        self.detect_width = detect_width
        self.wanted = False   # something asked for the colour picture
        self._yuv = None      # the full decode, made for a clip frame that is also analysed
        self.colour_first = False   # on first use, decode colour and shrink the grey from it
        self.check: JpegCheck | None = None   # the stream's judge of damaged JPEGs (media.jpeg_check)
        self.damaged = False

    @property
    def gray(self) -> np.ndarray | None:
        """The reduced luma, decoded now if it was not; None when the JPEG does not
        decode, or is damaged (then `damaged` is set)."""
        if self._gray is UNDECODED:
            check = self.check
            checked = check.damaged_before(self.jpeg) if check is not None else None
            if checked:
                self.damaged, self._gray = True, None
                return None
            bgr = None
            if self.colour_first:
                bgr, gray = colour_and_gray(self.jpeg, self.coded_size, self.detect_width)
            else:
                gray = reduced_gray(self.jpeg, self.coded_size, self.detect_width)
            if gray is not None and check is not None:
                if checked is None and check.damaged_gray(self.jpeg, gray):
                    self.damaged, gray = True, None
                else:
                    check.last = gray   # what the next analysed grey is compared with
            if not self.damaged and bgr is not None and self._bgr is None and self.coded_size == self._size:
                self._bgr = bgr
            self._gray = gray
        return self._gray

    @gray.setter
    def gray(self, value) -> None:
        self._gray = value

    def decode_for_clip(self) -> np.ndarray | None:
        """Decode the JPEG once in full for the clip encoder and take the grey from
        its luma, for a frame that is both analysed and recorded: one full decode
        (0.70 ms at 640x480) instead of that plus a reduced one (0.46 ms). The grey;
        None when the JPEG does not decode."""
        if self._gray is not UNDECODED:
            return self._gray
        if self.check is None:
            yuv = decode_yuv(self.jpeg)
        else:
            yuv, self.damaged = self.check.decode(self.jpeg)
            if self.damaged:   # not analysed; the clip fills its place with the picture before
                self._gray = None
                return None
            yuv = full_range(yuv) if yuv is not None else decode_yuv(self.jpeg)   # refused, as this camera's often are
        if yuv is None or (yuv.width, yuv.height) != self.coded_size:
            return self.gray
        luma = plane_view(yuv, 0)
        factor, _ = reduction(self.coded_size[0], self.detect_width)
        small = (-(-yuv.width // factor), -(-yuv.height // factor))
        self._gray = cv2.resize(luma, small, interpolation=cv2.INTER_AREA) if factor > 1 else luma.copy()
        self._yuv = yuv
        if self.check is not None:
            self.check.last = self._gray   # what the next analysed grey is compared with
        return self._gray

    def detect_picture(self, recording: bool) -> np.ndarray | None:
        """The reduced grey, decoded now that the frame is due: from the full decode
        the clip encoder needs anyway while an event is recorded. None for a damaged JPEG."""
        return self.decode_for_clip() if recording else self.gray

    def take_yuv(self) -> av.VideoFrame | None:
        """The full decode `decode_for_clip` made, handed over once (the clip writer
        lets go of it after encoding, so the pre-roll ring does not keep it)."""
        yuv, self._yuv = self._yuv, None
        return yuv

    @property
    def gray_decoded(self) -> bool:
        """Whether the grey has been decoded (tests check that frames not analysed are not)."""
        return self._gray is not UNDECODED

    @property
    def undecodable(self) -> bool:
        """Known not to decode, without decoding (a grey not made yet is not known bad)."""
        return self._gray is None

    @property
    def image(self) -> np.ndarray:
        self.wanted = True
        if self._bgr is None:
            bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[1::-1] != self.coded_size:   # a damaged JPEG
                gray = self.gray
                w, h = self._size
                bgr = cv2.cvtColor(cv2.resize(gray, self._size), cv2.COLOR_GRAY2BGR) if gray is not None \
                    else np.zeros((h, w, 3), np.uint8)
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
        """What the frame holds: its JPEG and grey, plus the colour picture once made
        (asked on the capture thread: decodes nothing). A camera's JPEG is a small
        fraction of the BGR picture it decodes to, so the sink queue's byte budget
        takes a whole pre-roll of such a camera."""
        gray = self._gray if isinstance(self._gray, np.ndarray) else None
        held = len(self.jpeg) + (gray.nbytes if gray is not None else 0)
        if self._yuv is not None:
            held += sum(p.buffer_size for p in self._yuv.planes)
        return held + (self._bgr.nbytes if self._bgr is not None else 0)

    def scaled(self, size: tuple[int, int]) -> JpegFrame:
        """This frame shown at `size` (a clip narrower than the camera, events.clip_width),
        still undecoded: the clip encoder scales the JPEG, and colour is decoded (then
        shrunk) only if something asks for `image`."""
        frame = JpegFrame(self.jpeg, self._gray, size, self.index, self.ts, self.wall, self.detect_width)
        frame.coded_size = self.coded_size
        frame._yuv = self.take_yuv()   # the copy is what goes to the clip
        return frame

    def __repr__(self) -> str:  # the dataclass repr would decode the colour picture
        return f"JpegFrame(index={self.index}, ts={self.ts:.3f}, size={self._size}, {len(self.jpeg)} bytes)"


def jpeg_frame(jpeg: bytes, index: int, ts: float, wall: float, detect_width: int,
               colour: bool = False, lazy: bool = False, check: JpegCheck | None = None) -> JpegFrame:
    """A JpegFrame whose grey is decoded at the largest reduction that keeps
    `detect_width` (with `lazy`, on first use); with `colour` the full BGR picture
    is decoded (now, or with `lazy` at the grey's first use) and the grey shrunk from it. `gray` is None when the JPEG does
    not decode (with `lazy`: known at once only for a JPEG without a size or a scan),
    or when `check` finds it damaged."""
    size = jpeg_size(jpeg)
    # Without a scan FFmpeg would still hand the clip a picture (of stale memory).
    whole = size is not None and jpeg.find(b"\xff\xda") > 0
    frame = JpegFrame(jpeg, UNDECODED if whole else None, size or (0, 0), index, ts, wall, detect_width)
    frame.colour_first = colour
    frame.check = check
    if not lazy:
        frame.gray   # decoded now
    return frame


class JpegFrames:
    """For a LiveSource whose reader thread hands over JPEG bytes (an MJPEG camera,
    a `pipe:` command writing MJPEG): each frame is decoded in `read()` (dropped
    frames cost nothing), grey at the detection size, colour only on demand;
    a JPEG that does not decode is skipped and counted. With the option
    `gray_on_demand` (the capture loop, which analyses only some frames) the grey
    is decoded on first use instead, and a damaged JPEG whose header is whole
    shows as a `gray` of None there."""

    detect_width = DEFAULT_DETECT_WIDTH   # the pipeline sets detection.width before the first read
    bad_frames = 0
    _prev: JpegFrame | None = None        # the last good frame handed out
    _colour = False                       # the last analysed frame was wanted in colour
    _check: JpegCheck | None = None       # the stream's judge of damaged JPEGs

    def read(self, timeout: float = 10.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            frame = super().read(max(0.0, deadline - time.monotonic()))
            if frame is None or not frame.undecodable:
                return frame
            self.bad_frames += 1   # a damaged JPEG: skip it, the next one is a frame interval away
            if self.bad_frames == 1:
                log.warning("%s: skipping a JPEG that does not decode (more are counted, not logged)",
                            self.describe())

    def _frame(self, jpeg: bytes, index: int, ts: float, wall: float) -> Frame:
        # The last analysed frame (its grey decoded) was wanted in colour (the live view):
        # the next analysed one will be too, so it is decoded once in colour rather than
        # grey and colour. With `gray_on_demand`, only if and when it is analysed.
        prev = self._prev
        if prev is not None and prev.gray_decoded:
            self._colour = prev.wanted
        if self._check is None:
            self._check = JpegCheck(self.describe())
        frame = jpeg_frame(jpeg, index, ts, wall, self.detect_width, self._colour,
                           lazy=self.options.gray_on_demand, check=self._check)
        if not frame.undecodable:
            self._prev = frame
            if self.size != frame.size:
                self.size = frame.size
        return frame
