"""`media.frames.reformatter`: one swscale converter kept per thread gives the
pictures a fresh one gives, frame after frame, when the picture size, pixel
format or colour tags change between frames (a camera that changes resolution,
a file joined from two recordings, a snapshot after a clip frame)."""

from __future__ import annotations

import threading

import av
import numpy as np

from motionwatch.media.frames import luma_view, reformatter, to_bgr


def picture(width: int, height: int, fmt: str, colorspace: int, seed: int) -> av.VideoFrame:
    rng = np.random.default_rng(seed)
    bgr = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=fmt, dst_colorspace=colorspace,
                                                                      dst_color_range=1)
    frame.colorspace, frame.color_range = colorspace, 1
    return frame


FRAMES = [picture(64, 48, "yuv420p", 1, 1), picture(64, 48, "yuv420p", 5, 2), picture(96, 64, "yuv420p", 1, 3),
          picture(96, 64, "yuv420p10le", 1, 4), picture(64, 48, "yuv422p", 5, 5), picture(64, 48, "yuv420p", 1, 6)]


def pixels(frame: av.VideoFrame) -> np.ndarray:
    """The picture's samples without the rows' padding (which swscale leaves unset)."""
    return frame.to_ndarray()


def test_a_kept_converter_gives_what_a_fresh_one_gives_as_the_pictures_change():
    conv = reformatter()
    for frame in FRAMES + FRAMES[::-1]:
        for kw in ({"width": 80, "height": 60, "format": "yuv420p", "dst_colorspace": 5, "dst_color_range": 1,
                    "interpolation": "AREA"},
                   {"format": "bgr24", "threads": 1}, {"format": "gray"}):
            assert np.array_equal(pixels(conv.reformat(frame, **kw)), pixels(frame.reformat(**kw))), (frame, kw)
        assert np.array_equal(to_bgr(frame), frame.to_ndarray(format="bgr24"))


def test_the_detector_gets_y_on_the_streams_own_levels_at_every_bit_depth():
    """A 10-bit limited-range picture gave the detector swscale's grey, stretched to
    full range, which the detector then stretched again as limited range (shadows
    and highlights clipped, noise 16 % larger). Its Y now comes on the levels an
    8-bit stream's has, and an RGB picture's grey is put on them too."""
    rng = np.random.default_rng(9)
    bgr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    base = av.VideoFrame.from_ndarray(bgr, format="bgr24")
    y8 = luma_view(base.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1)).astype(int)
    assert 16 <= y8.min() and y8.max() <= 235
    for fmt in ("yuv420p10le", "yuv444p12le", "yuv422p10le"):
        deep = base.reformat(format=fmt, dst_colorspace=1, dst_color_range=1)
        deep.color_range = 1
        assert np.abs(luma_view(deep).astype(int) - y8).max() <= 1, fmt
    rgb = base.reformat(format="rgb24")
    rgb.color_range = 0   # unspecified, as most RGB decoders leave it: read as limited range
    grey = base.to_ndarray(format="gray").astype(int)
    assert np.abs(luma_view(rgb).astype(int) - np.round(16 + grey * 219 / 255)).max() <= 1


def test_each_thread_has_its_own_converter():
    seen = []
    t = threading.Thread(target=lambda: seen.append(reformatter()))
    t.start()
    t.join()
    assert seen[0] is not reformatter() and reformatter() is reformatter()
