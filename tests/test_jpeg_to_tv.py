"""`media.encode.jpeg_to_tv`: a JPEG's full-range YUV mapped to the limited range
every clip has, level by level as BT.601 says (luma 0..255 to 16..235, chroma
0..255 to 16..240 around 128), whatever OpenCV routine does the arithmetic."""

from __future__ import annotations

import av
import numpy as np

from motionwatch.media.encode import _plane, jpeg_to_tv


def test_every_full_range_level_lands_on_the_rounded_bt601_level():
    frame = av.VideoFrame(64, 32, "yuvj420p")
    levels = np.arange(256, dtype=np.uint8)
    for k in range(3):
        p = _plane(frame, k)
        p[...] = np.resize(levels if k == 0 else levels[::-1], p.shape)
    out = jpeg_to_tv(frame)
    assert (out.format.name, out.color_range, out.colorspace) == ("yuv420p", 1, 5)
    for k, (lo, span) in enumerate(((16, 219), (16, 224), (16, 224))):
        src = _plane(frame, k).astype(np.float64)
        want = np.floor(lo + src * span / 255 + 0.5) if k == 0 else np.floor(128 + (src - 128) * span / 255 + 0.5)
        assert np.array_equal(_plane(out, k), want.astype(np.uint8)), f"plane {k}"
    assert _plane(out, 0).min() == 16 and _plane(out, 0).max() == 235
    assert _plane(out, 1).min() == 16 and _plane(out, 1).max() == 240
