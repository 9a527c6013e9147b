"""H.264 in MP4 encoded in process by PyAV's libx264 (or MPEG-4 Part 2, `mp4v`).

For sources whose frames a browser cannot play as they come: MJPEG cameras,
`pipe:`, picamera2, the demo, and codecs such as MPEG-4 Part 2. Frames are
placed by the caller on a constant-rate timeline (frame number = pts).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from motionwatch.media.frames import MIRRORED, plane_view, reformatter

# ultrafast/crf 23: the cheapest x264 setting, still far smaller than MJPEG.
X264_OPTIONS = {"preset": "ultrafast", "crf": "23"}
# x264's threads cost more in hand-offs than they save below 720p: one thread
# keeps up with 30 fps there, and encoding runs off the capture thread anyway.
ONE_THREAD_PIXELS = 1280 * 720
ENCODERS = {"h264": "libx264", "mp4v": "mpeg4"}


# Full range (JPEG) to limited range (tv), BT.601 both: luma 0..255 to 16..235,
# chroma 0..255 to 16..240 around 128, as (scale, offset): v * scale + offset, rounded.
# No level lands on a half, so OpenCV's rounding gives round(16 + v * 219 / 255) exactly.
FULL_TO_TV_Y = (219 / 255, 16.0)
FULL_TO_TV_C = (224 / 255, 128 - 128 * 224 / 255)


# A decoded JPEG's formats (full range, planar), any chroma sampling a camera sends:
# USB webcams' MJPEG is mostly 4:2:2; a camera's night mode may send grey JPEGs.
JPEG_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj440p", "yuvj444p", "gray"})
NEUTRAL_CHROMA = 128
# A JPEG's matrix is BT.601 (JFIF); unspecified is read as BT.601 by swscale too.
# A full-range BT.709 picture (a camera's raw H.264 export) needs swscale's matrix change.
BT601_MATRICES = frozenset({2, 5, 6})   # unspecified, BT.470BG, SMPTE 170M


def jpeg_to_tv(frame: av.VideoFrame) -> av.VideoFrame:
    """A decoded JPEG (`is_jpeg_picture`) as limited-range yuv420p, the
    range every clip has (Chromium shows a full-range H.264 clip with too much
    contrast). Hand-written because it is cheaper than swscale's conversion (0.11
    against 0.15-0.19 ms for a 640x480 JPEG picture, 4:2:0 or 4:2:2), with the same
    luma and chroma within one level (docs/performance.md, 2026-12-06 11:50).
    `convertScaleAbs` rather than a 256-entry `LUT`: the same levels, in 0.04 against
    0.10 ms for a 640x480 luma plane (its SIMD path; LUT's is a gather). Chroma
    sampled finer than 4:2:0 is averaged down, as swscale's area scaler does (`_to_tv`)."""
    out = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for k, (scale, offset) in ((0, FULL_TO_TV_Y), (1, FULL_TO_TV_C), (2, FULL_TO_TV_C)):
        dst = plane_view(out, k)
        if k >= len(frame.planes):   # a grey JPEG: no colour
            dst[...] = NEUTRAL_CHROMA
            continue
        got = _to_tv(plane_view(frame, k), dst, scale, offset)
        if got is not dst and not np.shares_memory(got, dst):   # OpenCV could not write in place
            dst[...] = got
    out.colorspace, out.color_range = 5, 1
    return out


def is_jpeg_picture(frame: av.VideoFrame) -> bool:
    """Whether `jpeg_to_tv` takes the frame: a full-range JPEG picture on BT.601's
    matrix (a "gray" frame only when full range: other grey video is already on tv
    levels)."""
    name = frame.format.name
    return (name in JPEG_FORMATS and frame.colorspace in BT601_MATRICES
            and (name != "gray" or frame.color_range == 2))


def is_clip_picture(frame: av.VideoFrame, width: int, height: int) -> bool:
    """A 4:2:0 picture of the clip's size on BT.601's matrix and limited range, what
    every clip holds; also untagged (which swscale reads so), as most MPEG-4 Part 2
    and msmpeg4 files are."""
    return (frame.format.name == "yuv420p" and frame.width == width and frame.height == height
            and frame.color_range in (0, 1) and frame.colorspace in BT601_MATRICES)


def _to_tv(src: np.ndarray, dst: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """`src * scale + offset` into `dst`, rounded, averaging `src` down to `dst`'s size.
    4:2:2 chroma (twice the rows) is averaged a pair of rows at a time in the same
    pass (`addWeighted` on the two row views: 0.02 ms for 640x480's chroma, where
    `resize` takes 0.1-0.2 ms on one axis); other sizes are resized first (at exactly
    half, `INTER_LINEAR` is the rounded average of each 2x2 or pair of pixels)."""
    if src.shape == dst.shape:
        return cv2.convertScaleAbs(src, dst=dst, alpha=scale, beta=offset)
    if src.shape == (2 * dst.shape[0], dst.shape[1]):
        return cv2.addWeighted(src[0::2], scale / 2, src[1::2], scale / 2, offset, dst=dst)
    small = cv2.resize(src, dst.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.convertScaleAbs(small, dst=dst, alpha=scale, beta=offset)


def even(size: tuple[int, int]) -> tuple[int, int]:
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


class Mp4Encoder:
    """One MP4 file encoded frame by frame; `add` takes an `av.VideoFrame` or a BGR array.

    `rotation` (media.frames.display_rotation) is written as the file's display
    matrix, as the source's was: pictures are encoded as decoded, and players turn
    them, as they do a copied clip's (turning every picture would cost a pass over each).
    `sar` (Frame.sar), the shape of non-square pixels, is written alike (the stream's
    VUI and the MP4's `pasp`), so players widen the clip as they did the source."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, fmt: str = "h264", rotation: int = 0,
                 sar: Fraction | None = None):
        self.path = path
        self.size = even(size)
        self.out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.out.add_stream(ENCODERS[fmt], rate=rate)
        self.stream.width, self.stream.height = self.size
        if rotation:
            self.stream.set_display_rotation(rotation % MIRRORED, hflip=rotation >= MIRRORED)
        self.stream.pix_fmt = "yuv420p"
        cc = self.stream.codec_context
        self.time_base = 1 / rate
        cc.time_base = self.time_base
        # Said outright so every clip is tagged alike, whatever the source was.
        cc.color_range = 1          # tv
        cc.colorspace = 5           # bt470bg (BT.601)
        if sar is not None:
            cc.sample_aspect_ratio = sar
        if fmt == "h264":
            cc.options = dict(X264_OPTIONS)
        if self.size[0] * self.size[1] <= ONE_THREAD_PIXELS:
            cc.thread_count = 1
        self.frames = 0

    def add(self, picture: av.VideoFrame | np.ndarray) -> None:
        if isinstance(picture, np.ndarray):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="bgr24")
        else:
            frame = picture
        w, h = self.size
        if is_jpeg_picture(frame):
            # Mapped by hand (cheaper) before any scaling (a clip width, an odd size).
            frame = jpeg_to_tv(frame)
        if is_clip_picture(frame, w, h):
            # swscale would copy it unchanged (0.44 ms a 768x576 picture): only tagged.
            frame.color_range, frame.colorspace = 1, 5
        else:
            frame = reformatter().reformat(frame, width=w, height=h, format="yuv420p", dst_colorspace=5,
                                           dst_color_range=1, interpolation="AREA")
        frame.pts = self.frames
        frame.time_base = self.time_base   # a decoded frame brings its source's; the timeline is ours
        # libx264 obeys a frame's picture type, and a decoded frame keeps its source's
        # (swscale copies it): every frame of an intra-only source (a raw V4L2 webcam,
        # ProRes, MJPEG) would be a keyframe, its clip 3-7x the size. x264 decides.
        frame.pict_type = PictureType.NONE
        self.frames += 1
        for pkt in self.stream.encode(frame):
            self.out.mux(pkt)

    def close(self) -> None:
        try:
            for pkt in self.stream.encode(None):
                self.out.mux(pkt)
        finally:
            self.out.close()

    def abort(self) -> None:
        try:
            self.out.close()
        except (OSError, av.FFmpegError):
            pass
