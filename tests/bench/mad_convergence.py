"""Does a detector started mid-traffic learn what a sequential one learnt? (issue 18's split scan)

    PYTHONPATH=. .venv/bin/python tests/bench/mad_convergence.py [--loops 8] [--lead-in 40]

The real traffic clip (../shared/footage, never quiet) is looped in memory at
320x180 and fed to one detector from the first frame and to others started at a
third and at half of the loop, each a split lead-in before its first own frame.
Prints, per late start, the mean per-pixel variability (`mad`) of both at that
first own frame and at the end, and over the late start's own frames how many
count as motion in each and on how many frames they agree. A split scan gives
the sequential scan's events only when the agreement is complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motionwatch.config import DetectionConfig
from motionwatch.detect import MotionDetector
from support.scenes import FOOTAGE

CLIP = FOOTAGE / "dvrscan_traffic_camera" / "traffic_camera.mp4"
SIZE = (320, 180)


def decode(path: Path) -> tuple[list, float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate or 25)
        return [cv2.resize(f.to_ndarray(format="gray"), SIZE, interpolation=cv2.INTER_AREA)
                for f in c.decode(stream)], fps


def run(frames: list, fps: float, start: int, total: int) -> dict:
    """frame index -> (counted as motion, mean mad) for a detector started at `start`."""
    det = MotionDetector(DetectionConfig(), SIZE, fps)
    out = {}
    for i in range(start, total):
        d = det.update(frames[i % len(frames)])
        out[i] = (d.fraction > 0, float(det.dyn.mad.mean()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=8, help="times the clip is played over (default 8)")
    ap.add_argument("--lead-in", type=float, default=40.0, help="seconds (the default config's split lead-in)")
    args = ap.parse_args()
    frames, fps = decode(CLIP)
    total = len(frames) * args.loops
    lead = int(round(args.lead_in * fps))
    seq = run(frames, fps, 0, total)
    for own in (total // 3, total // 2):
        late = run(frames, fps, own - lead, total)
        span = range(own, total)
        agree = sum(seq[i][0] == late[i][0] for i in span)
        print(f"started {own - lead} (own frames from {own}): mad seq {seq[own][1]:.2f} late {late[own][1]:.2f} "
              f"at own start, {seq[total - 1][1]:.2f} / {late[total - 1][1]:.2f} at the end; motion frames "
              f"seq {sum(seq[i][0] for i in span)} late {sum(late[i][0] for i in span)}; "
              f"agree on {agree}/{len(span)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
