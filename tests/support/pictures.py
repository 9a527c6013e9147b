"""A decoded picture's fingerprint, for the tests that check clips hold a source's own frames."""

from __future__ import annotations

import hashlib

import av

from motionwatch.media.frames import plane_view

EIGHT_BIT_PLANAR = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray"})


def picture_hash(frame: av.VideoFrame) -> str:
    """MD5 of the picture's visible pixels, every plane (8-bit planar formats). Not
    the planes' whole buffers: their row padding is whatever the decoder's pooled
    buffer held before (FFmpeg's HEVC decoder leaves it different from decode to
    decode), not part of the picture."""
    assert frame.format.name in EIGHT_BIT_PLANAR, frame.format.name
    md5 = hashlib.md5()
    for k in range(len(frame.planes)):
        md5.update(plane_view(frame, k).tobytes())
    return md5.hexdigest()
