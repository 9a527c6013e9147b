"""How far apart two decodes of one frame are, against other frames, at the size
`media.frames.same_picture` compares them (64x36): the margin its threshold has.

    PYTHONPATH=. .venv/bin/python tests/bench/same_picture.py FILE [FILE ...]

For each file: every frame decoded twice, as `scan` analyses it (no deblocking
filter, one thread) and in full (what a saved picture is decoded again with);
prints the median, 99th percentile and largest per-cell difference between the
two decodes of the same frame, between a frame and the next one, and between
frames half the file apart (what a picture found at a repeated time in joined
recordings is).
"""

from __future__ import annotations

import sys

import av
import cv2
import numpy as np

from motionwatch.media.frames import CHECK_SIZE, SAME_PICTURE_MAX_DIFF, luma_view


def lumas(path: str, fast: bool) -> list[np.ndarray]:
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_count = 1
        if fast:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        return [cv2.resize(luma_view(f), CHECK_SIZE, interpolation=cv2.INTER_AREA).astype(np.int16)
                for f in c.decode(stream)]


def spread(diffs: list[np.ndarray]) -> str:
    peaks = [int(np.abs(d).max()) for d in diffs]
    return "median {:.0f}, p99 {:.0f}, max {:.0f}".format(*np.percentile(peaks, [50, 99, 100]))


def main() -> None:
    print(f"threshold: largest cell difference <= {SAME_PICTURE_MAX_DIFF} is the same picture")
    for path in sys.argv[1:]:
        fast, full = lumas(path, True), lumas(path, False)
        n = len(full)
        print(path)
        print("  same frame, fast vs full decode:", spread([a - b for a, b in zip(fast, full)]))
        print("  next frame:                     ", spread([full[i] - full[i + 1] for i in range(n - 1)]))
        print("  half the file away:             ", spread([full[i] - full[(i + n // 2) % n] for i in range(n)]))


if __name__ == "__main__":
    main()
