"""Does a detector started later reach the sequential one's state? (why a long file is not split)

    PYTHONPATH=. .venv/bin/python tests/bench/mad_convergence.py [--clip PATH] [--loops 6] [--lead-in 40]

A clip (default: the real traffic camera in ../shared/footage, never quiet) is
looped in memory at 320x180 and fed to one detector from the first frame and to
another started a lead-in before a third of the way in (where a split would have
put a segment boundary); `--clip generated` uses a generated room with walkers and
quiet gaps instead. After every frame from that boundary on, the two detectors'
state arrays are compared bit for bit. Prints how many pixels of each differ at the
boundary, which arrays were equal from some frame on to the end (and from which),
and on how many frames the changed fraction differed. A segment's events equal a
sequential scan's for certain only from a frame where every array is equal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motionwatch.config import DetectionConfig
from motionwatch.detect import MotionDetector
from support.scenes import FOOTAGE

CLIP = FOOTAGE / "dvrscan_traffic_camera" / "traffic_camera.mp4"
SIZE = (320, 180)
# The detector's state: what a frame's result depends on besides the frame.
STATE = ("bg", "recent_bg", "edge", "still", "mask", "prev_out", "noise_sigma")
DYN_STATE = ("mad", "blink", "prev_mask", "prev_diff", "small_bg_f")


def decode(path: str) -> tuple[list, float]:
    if path == "generated":
        from motionwatch.sources.scene import Scene, SceneRenderer, Walker
        walkers = tuple(Walker(3.0 + 25 * k, 5.0 + k % 3, shade=40 + 20 * (k % 3)) for k in range(10))
        renderer = SceneRenderer(Scene(width=SIZE[0], height=SIZE[1], fps=15.0, duration_s=240, seed=11,
                                       noise=3.0, walkers=walkers))
        frames = [renderer.render(i) for i in range(renderer.scene.frames)]
        return [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f for f in frames], 15.0
    with av.open(path) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or 25)
        return [cv2.resize(f.to_ndarray(format="gray"), SIZE, interpolation=cv2.INTER_AREA)
                for f in c.decode(stream)], fps


def state(det: MotionDetector) -> dict[str, np.ndarray]:
    out = {k: np.asarray(getattr(det, k)) for k in STATE}
    out.update({f"dyn.{k}": np.asarray(getattr(det.dyn, k)) for k in DYN_STATE})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(CLIP), help="a video file, or 'generated' (default: the traffic camera)")
    ap.add_argument("--loops", type=int, default=6, help="times the clip is played over (default 6)")
    ap.add_argument("--lead-in", type=float, default=40.0, help="seconds (the old split's default lead-in)")
    args = ap.parse_args()
    frames, fps = decode(args.clip)
    total = len(frames) * args.loops
    own = total // 3
    start = max(0, own - int(round(args.lead_in * fps)))
    seq, late = MotionDetector(DetectionConfig(), SIZE, fps), MotionDetector(DetectionConfig(), SIZE, fps)
    for i in range(start):
        seq.update(frames[i % len(frames)])
    equal_since: dict[str, int] = {}
    differ = 0
    for i in range(start, total):
        a, b = seq.update(frames[i % len(frames)]), late.update(frames[i % len(frames)])
        if i < own:
            continue
        differ += a.fraction != b.fraction
        sa, sb = state(seq), state(late)
        if i == own:
            print("pixels that differ at the boundary:",
                  {k: int(np.count_nonzero(sa[k] != sb[k])) for k in sa})
        for k in sa:
            if np.array_equal(sa[k], sb[k]):
                equal_since.setdefault(k, i - own)
            else:
                equal_since.pop(k, None)
    print(f"{args.clip}: {total - own} frames after the boundary; changed fraction differs on {differ}")
    print("equal from this many frames after the boundary to the end:", equal_since or "none")
    print("every array equal:", "yes" if len(equal_since) == len(state(seq)) else "no")
    return 0


if __name__ == "__main__":
    sys.exit(main())
