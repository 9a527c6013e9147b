"""Decoded frames: the Y plane as a view for detection, colour only when asked.

A decoded picture's rows are `line_size` bytes apart (FFmpeg pads them for
SIMD), so the plane is viewed as (height, line_size) and sliced to the width:
no copy, no conversion. A deeper planar Y (10-bit) gives its top 8 bits; other
formats (RGB, paletted) are converted to grey by swscale.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from fractions import Fraction
from typing import Callable

import av
import av.video.reformatter
import cv2
import numpy as np

from motionwatch.model import Frame

DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX

log = logging.getLogger("motionwatch")

# Pixel formats whose first plane is 8-bit luma, one byte per pixel.
LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                        "yuv440p", "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray"})
# Planar formats whose Y samples are 9-16 bits, little-endian, in the low bits of two bytes.
DEEP_LUMA = re.compile(r"^(yuv4\d\dp|gray)(9|10|12|14|16)le$")
# Limited (tv) range Y 16..235 stretched to 0..255, so thresholds mean the same as on a
# full-range JPEG or BGR picture: (scale, offset) for cv2.convertScaleAbs.
TV_TO_FULL = (255 / 219, -16 * 255 / 219)
# The turns that show a picture as players and FFmpeg's own tools do, by the display
# matrix's counter-clockwise angle: a phone held upright records landscape pictures
# tagged 90 (or 270), a camera mounted upside down 180.
TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}
# A display matrix may also mirror the picture after the turn (some phones' front
# cameras): such a turn is told as its angle plus MIRRORED, so one int says it all.
MIRRORED = 360
# The display matrix's signs (entries 0, 1, 3, 4: its 2x2 part) -> the turn ffmpeg's
# autorotate shows the picture with (checked against ffmpeg for all eight).
MATRIX_TURNS = {(1, 0, 0, 1): 0, (0, -1, 1, 0): 90, (-1, 0, 0, -1): 180, (0, 1, -1, 0): 270,
                (-1, 0, 0, 1): MIRRORED, (0, -1, -1, 0): 90 + MIRRORED,
                (1, 0, 0, -1): 180 + MIRRORED, (0, 1, 1, 0): 270 + MIRRORED}


_reformatters = threading.local()


def reformatter() -> av.video.reformatter.VideoReformatter:
    """This thread's swscale converter. It keeps its context while the pictures and the
    conversion stay the same; `VideoFrame.reformat` and `to_ndarray(format=...)` set a
    new one up for every frame, which cost more than the conversion itself (docs/media.md)."""
    conv = getattr(_reformatters, "conv", None)
    if conv is None:
        conv = _reformatters.conv = av.video.reformatter.VideoReformatter()
    return conv


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    """The picture in BGR (one swscale thread: it runs beside the decoder's)."""
    return reformatter().reformat(frame, format="bgr24", threads=1).to_ndarray()


def plane_view(frame: av.VideoFrame, k: int) -> np.ndarray:
    """Plane `k` of an 8-bit planar frame, its visible pixels (rows x width, uint8): a
    view of the frame's buffer, without the row padding past `width`."""
    p = frame.planes[k]
    return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:p.height, :p.width]


def luma_view(frame: av.VideoFrame) -> np.ndarray:
    """The frame's Y plane (height x width, uint8), on the stream's own levels (16..235
    for limited range): a view of the decoder's buffer where it is 8-bit, else made."""
    name = frame.format.name
    if name in LUMA_FIRST:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        return rows[:, :frame.width]
    deep = DEEP_LUMA.match(name)
    if deep:
        # 10-bit and deeper: the top 8 bits of Y. swscale's grey would be stretched to
        # full range, and the detector's limited-range stretch would then apply twice.
        plane = frame.planes[0]
        rows = np.frombuffer(plane, "<u2").reshape(frame.height, plane.line_size // 2)[:, :frame.width]
        return cv2.convertScaleAbs(rows, alpha=1 / (1 << (int(deep.group(2)) - 8)))
    gray = reformatter().reformat(frame, format="gray").to_ndarray()   # full range, whatever the source's
    return gray if is_full_range(frame) else cv2.convertScaleAbs(gray, alpha=219 / 255, beta=16)


def display_rotation(frame: av.VideoFrame) -> int:
    """The turn a player gives this picture: 0, 90, 180 or 270 degrees counter-clockwise,
    plus MIRRORED when it is mirrored after that. A matrix that is no quarter turn
    (rare) is shown at its nearest quarter turn."""
    matrix = frame.side_data.get(DISPLAYMATRIX)
    if matrix is None:
        return 0
    m = struct.unpack_from("=5i", bytes(matrix))
    key = tuple((v > 0) - (v < 0) for v in (m[0], m[1], m[3], m[4]))
    return MATRIX_TURNS.get(key, round(frame.rotation / 90) % 4 * 90)


class StreamTurn:
    """A stream's display turn, read from its first decoded picture and kept.

    Not read from every picture: PyAV's `frame.side_data` makes a reference cycle
    that keeps the picture alive until the garbage collector runs, and a scan then
    held hundreds of decoded pictures (traffic_camera.mp4: 378 MB peak, against 127)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value: int | None = None

    def of(self, frame: av.VideoFrame) -> int:
        if self.value is None:
            self.value = display_rotation(frame)
        return self.value


class StreamAspect:
    """The shape of a decoder's pixels (Frame.sar), read again only when the picture
    size changes: PyAV makes new Fractions at every read of `sample_aspect_ratio`,
    and the test for square pixels compares them, a cost on every frame."""

    __slots__ = ("_codec", "_size", "value")

    def __init__(self, codec_context):
        self._codec, self._size, self.value = codec_context, None, None

    def at(self, size: tuple[int, int]) -> Fraction | None:
        """For a picture of `size` (coded, as decoded)."""
        if size != self._size:
            self._size, self.value = size, pixel_aspect(self._codec.sample_aspect_ratio)
        return self.value

    def of(self, frame: av.VideoFrame) -> Fraction | None:
        return self.at((frame.width, frame.height))


def upright(picture: np.ndarray, rotation: int) -> np.ndarray:
    """A decoded picture turned the way it is shown (itself when it needs no turn)."""
    if rotation % MIRRORED:
        picture = cv2.rotate(picture, TURNS[rotation % MIRRORED])
    return cv2.flip(picture, 1) if rotation >= MIRRORED else picture


def turned(size: tuple[int, int], rotation: int) -> tuple[int, int]:
    """(width, height) after a turn by `rotation` (either way: a quarter turn swaps them)."""
    return (size[1], size[0]) if rotation % 180 == 90 else size


# Pixel shapes outside these are a broken header, not a picture (a player's limits
# are wider, but no camera or disc format comes near them: DV and DVD 8/9 to 64/45,
# HDV 4/3, analogue DVRs' D1 and 960H 10/11 to 16/11).
PIXEL_ASPECT_RANGE = (Fraction(1, 4), Fraction(4))


def pixel_aspect(ratio: Fraction | None) -> Fraction | None:
    """A stream's sample aspect ratio (PyAV's `sample_aspect_ratio`) as Frame.sar:
    None when the pixels are square, or when it is unset (0/1) or absurd."""
    if not ratio or ratio == 1 or not PIXEL_ASPECT_RANGE[0] <= ratio <= PIXEL_ASPECT_RANGE[1]:
        return None
    return Fraction(ratio)


def widened(picture: np.ndarray, sar: Fraction | None, rotation: int = 0) -> np.ndarray:
    """An upright picture of non-square pixels stretched to the shape a player shows
    (ffmpeg's `scale=iw*sar:ih`): stored width times `sar`, height kept; for a picture
    turned a quarter, the stored width is its height. Itself when the pixels are square."""
    if sar is None:
        return picture
    h, w = picture.shape[:2]
    if rotation % 180 == 90:
        size = (w, max(2, round(h * sar)))
    else:
        size = (max(2, round(w * sar)), h)
    if size == (w, h):
        return picture
    # Area averaging where a side shrinks (an NTSC DVD's 8/9), linear where it grows.
    shrinks = size[0] < w or size[1] < h
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


# A picture decoded again for saving is found by its timestamp, and a stream file
# whose times started again (MPEG-TS/PS recordings joined end to end) has two
# pictures at each such time: seeking finds either. So there it is compared with
# the picture the scan decoded, at 64x36: two decodes of one frame differ by at most
# 19 grey levels in any cell (real camera files with and without the deblocking
# filter), another moment where something moved by about 50 and more. A file
# compressed to ruin (x264 crf 45) differs from itself by up to 64 and then keeps
# the scan's decode (tests/bench/same_picture.py; docs/performance.md).
CHECK_SIZE = (64, 36)
SAME_PICTURE_MAX_DIFF = 40


def same_picture(luma: np.ndarray, other: np.ndarray) -> bool:
    """Whether two luma planes (any sizes of one aspect) show the same moment."""
    a = cv2.resize(luma, CHECK_SIZE, interpolation=cv2.INTER_AREA)
    b = cv2.resize(other, CHECK_SIZE, interpolation=cv2.INTER_AREA)
    return int(cv2.absdiff(a, b).max()) <= SAME_PICTURE_MAX_DIFF


def is_full_range(frame: av.VideoFrame) -> bool:
    return frame.color_range == 2 or frame.format.name.startswith("yuvj")


class AvFrame(Frame):
    """A decoded frame: `gray` is its Y plane (a view), `image` BGR made on first use.

    Both are upright, as a player shows the picture: a picture the stream says is
    turned (`rotation`, the display matrix) is turned when they are first asked
    for, which a detector's frame is and most others never are; `av_frame` stays
    as decoded, and a clip encoded from it carries the same turn (media.encode).

    The frame holds its `av.VideoFrame` by reference, so a frame kept as an
    event's first or best picture costs one decoded picture and no conversion
    until it is saved. `redecode` (when set) gives a full-quality decode of the
    same frame, for sources that analyse with a cheaper decode
    (detection.fast_decode); it is asked only for the saved picture. `verify`: the
    picture it finds by the frame's time may be another one (SAME_PICTURE_MAX_DIFF).
    `rotation`: the stream's display turn (StreamTurn); `sar`: its pixels' shape
    (pixel_aspect of the decoder's `sample_aspect_ratio`; None: square).
    """

    __slots__ = ("_bgr", "av_frame", "pts", "redecode", "rotation", "_luma", "_upright", "verify", "passes_turn",
                 "damaged")

    def __init__(self, av_frame: av.VideoFrame, index: int, ts: float, wall: float,
                 redecode: Callable[[int], av.VideoFrame | None] | None = None, verify: bool = False,
                 rotation: int = 0, passes_turn: bool = False, sar: Fraction | None = None,
                 damaged: bool = False):
        self.rotation = rotation
        self.passes_turn = passes_turn
        self.damaged = damaged
        Frame.__init__(self, None, index, ts, wall, luma_view(av_frame), sar)
        self.av_frame = av_frame
        self.pts = av_frame.pts
        self.redecode = redecode
        self.verify = verify

    @property
    def image(self) -> np.ndarray:
        if self._bgr is None:
            self._bgr = upright(to_bgr(self.full_quality()), self.rotation)
        return self._bgr

    @image.setter
    def image(self, value) -> None:
        self._bgr = value

    @property
    def gray(self) -> np.ndarray:
        if not self.rotation:
            return self._luma
        if self._upright is None:
            self._upright = upright(self._luma, self.rotation)
        return self._upright

    @gray.setter
    def gray(self, value) -> None:
        self._luma, self._upright = value, None

    @property
    def glance(self) -> np.ndarray:
        """The analysis decode in BGR, not kept: the live view must not decode a GOP
        again on the capture thread for each picture it shows, and a later save
        still gets the full-quality one."""
        if self._bgr is not None or self.redecode is None:
            return self.image
        return upright(to_bgr(self.av_frame), self.rotation)

    def full_quality(self) -> av.VideoFrame:
        if self.redecode is not None and self.pts is None:
            # (an RTSP stream's first frames, before its clock is known): nothing to find it by
            log.debug("frame %d has no timestamp: saved from the analysis decode", self.index)
        elif self.redecode is not None:
            again = self.redecode(self.pts)
            if again is not None and (not self.verify or _found_again(again, self._luma, self.index)):
                self.av_frame = again
        self.redecode = None
        return self.av_frame

    @property
    def size(self) -> tuple[int, int]:
        return turned((self.av_frame.width, self.av_frame.height), self.rotation)

    def __repr__(self) -> str:
        return f"AvFrame(index={self.index}, ts={self.ts:.3f}, pts={self.pts}, size={self.size})"


def _found_again(again: av.VideoFrame, luma: np.ndarray, index: int) -> bool:
    """Whether a picture decoded again by its timestamp is the frame whose luma the
    scan saw; says so when it is not."""
    seen = luma_view(again)
    if seen.shape == luma.shape and same_picture(seen, luma):
        return True
    log.info("frame %d: the picture found again by its time is another one (the file's times "
             "repeat, e.g. recordings joined end to end); saved as the scan decoded it", index)
    return False


class UndecodedFrame(Frame):
    """A frame whose packet the source kept from the decoder (sources.undecoded):
    nothing refers to its picture and the capture loop was not going to analyse
    it. It counts like any frame (index, time, motion counts, events); `with_picture()`
    decodes it after all (`decode(pts)`), should the loop want it."""

    __slots__ = ("pts", "_size", "_decode", "passes_turn")

    def __init__(self, pts: int, size: tuple[int, int], index: int, ts: float, wall: float,
                 decode: Callable[[UndecodedFrame], Frame | None], passes_turn: bool = False):
        Frame.__init__(self, None, index, ts, wall, None)
        self.pts = pts
        self.passes_turn = passes_turn
        self._size = size
        self._decode = decode

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def with_picture(self) -> Frame | None:
        return self._decode(self)

    def __repr__(self) -> str:
        return f"UndecodedFrame(index={self.index}, ts={self.ts:.3f}, pts={self.pts})"


class SmallFrame(Frame):
    """A frame decoded in another process (sources.parallel): `gray` is its luma,
    upright, already at detection size, made by the resize the detector's Preprocess does,
    so detection sees what it would have made of the whole plane. The picture
    itself is decoded again, at full quality, only if the frame is saved
    (`decode(pts)`, from its keyframe)."""

    __slots__ = ("pts", "_size", "_decode", "_bgr", "passes_turn", "damaged")

    def __init__(self, small: np.ndarray, pts: int | None, size: tuple[int, int], index: int, ts: float,
                 wall: float, decode: Callable[[int], av.VideoFrame | None], passes_turn: bool = False,
                 sar: Fraction | None = None, damaged: bool = False):
        Frame.__init__(self, None, index, ts, wall, small, sar)
        self.pts = pts
        self.passes_turn = passes_turn
        self.damaged = damaged
        self._size = size
        self._decode = decode
        self._bgr = None

    @property
    def image(self) -> np.ndarray:
        if self._bgr is None:
            full = self._decode(self.pts) if self.pts is not None else None
            if full is not None:
                self._bgr = upright(to_bgr(full), display_rotation(full))
            else:   # the file changed under us, or a frame without a time: the grey we have, enlarged
                self._bgr = cv2.cvtColor(cv2.resize(self.gray, self._size), cv2.COLOR_GRAY2BGR)
        return self._bgr

    @image.setter
    def image(self, value) -> None:
        self._bgr = value

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __repr__(self) -> str:
        return f"SmallFrame(index={self.index}, ts={self.ts:.3f}, pts={self.pts}, size={self._size})"
