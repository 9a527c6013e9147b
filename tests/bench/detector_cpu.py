"""Detector `update()` alone on decoded luma planes: this tree against detect/ at a git ref.

    PYTHONPATH=. .venv/bin/python tests/bench/detector_cpu.py [--baseline-ref 8c37c48] [--rounds 3]
    PYTHONPATH=. .venv/bin/python tests/bench/detector_cpu.py --widths 320 256 240 160

Frames are decoded once with PyAV (the Y plane, as `scan` feeds the detector)
from real footage and a generated 640x480 clip tagged like a camera file (and
two generated outdoor scenes rendered as BGR pictures: shake, foliage), then
fed to both detectors interleaved frame by frame, so both see the same machine
load, taking turns to go first (the second finds the frame in the CPU cache).
Prints CPU ms a frame and the ratio to the baseline measured in the same run,
and whether every frame's fraction, boxes and reported mask were equal (a cost
change must not change what is detected). With --widths, this tree's detector at
each `detection.width` instead, interleaved alike, against the first width.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

# The shared harness is in tests/support: put tests/ on sys.path (only this
# script's own folder is there when it runs as `python tests/bench/X.py`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import load_package
from motionwatch.bench import make_clip
from motionwatch.config import DetectionConfig
from motionwatch.detect import MotionDetector
from motionwatch.media.frames import TV_TO_FULL, is_full_range, luma_view
from motionwatch.pipeline.camera import analysis_fps
from motionwatch.sources.scene import SceneRenderer
from support.footage import FOOTAGE
from support.scenes import suite

REAL = ("dvrscan_traffic_camera/traffic_camera.mp4", "i2r_curtain/video.mp4", "i2r_watersurface/video.mp4",
        "opencv_vtest/vtest.avi")
# Generated outdoor scenes (seed 1), rendered as BGR pictures: a shaking camera and trees in gusts.
SCENES = ("walk_shake", "walk_foliage")


def luma_frames(path: Path, limit: int) -> tuple[float, list[np.ndarray], tuple | None]:
    """(fps, Y planes, luma levels) of the first `limit` frames, decoded as `scan` does."""
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        fps = float(stream.average_rate or 25)
        planes, levels = [], None
        for i, frame in enumerate(box.decode(stream)):
            if i >= limit:
                break
            if i == 0:
                levels = None if is_full_range(frame) else TV_TO_FULL
            planes.append(luma_view(frame).copy())
    return fps, planes, levels


def inputs(limit: int, work: Path) -> list[tuple[str, float, list[np.ndarray], tuple | None]]:
    out = []
    for rel in REAL:
        if (FOOTAGE / rel).exists():
            out.append((rel.split("/")[0], *luma_frames(FOOTAGE / rel, limit)))
    gen = work / "gen-640x480.mp4"
    make_clip(gen, 640, 480, limit / 25.0, fps=25.0)
    out.append(("generated 640x480", *luma_frames(gen, limit)))
    for case in suite(1):
        if case.name in SCENES:
            r = SceneRenderer(case.scene)
            frames = [r.render(i) for i in range(min(limit, case.scene.frames))]
            out.append((f"generated {case.name}", case.scene.fps, frames, None))
    return out


def same(a, b) -> bool:
    fields = ("fraction", "lighting_change", "ready", "threshold", "raw_fraction", "shift")
    if any(getattr(a, f) != getattr(b, f) for f in fields) or list(a.boxes) != list(b.boxes):
        return False
    if (a.mask is None) != (b.mask is None):
        return False
    return a.mask is None or np.array_equal(a.mask, b.mask)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default="8c37c48")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--fps", type=float, default=0.0, help="analysis rate the detector is built for (0: source's)")
    ap.add_argument("--widths", type=int, nargs="+", metavar="W", help="compare detection widths, not trees")
    args = ap.parse_args()
    # One OpenCV thread, as the capture loop runs (pipeline/camera.py): a thread
    # pool's wake-ups on these small pictures would count as detector CPU.
    cv2.setNumThreads(1)
    if args.widths:
        return compare_widths(args)
    before = load_package(args.baseline_ref)
    print(f"| clip (frames) | {args.baseline_ref} ms/frame | ours ms/frame | ours / {args.baseline_ref} | "
          "same results |\n|---|---:|---:|---:|---|")
    for name, planes, per, equal in race(args, lambda size, rate: {
            "before": before(DetectionConfig(), size, rate, None),
            "ours": MotionDetector(DetectionConfig(), size, rate, None)}):
        print(f"| {name} ({len(planes)}) | {per['before']:.3f} | {per['ours']:.3f} | "
              f"{per['ours'] / per['before']:.2f} | {'yes' if equal else 'NO'} |", flush=True)
    return 0


def compare_widths(args) -> int:
    """CPU ms a frame of this tree's detector at each width, frame by frame in turn."""
    widths = args.widths
    print("| clip (frames) | " + " | ".join(f"width {w} ms/frame" for w in widths) + " |\n|---|"
          + "---:|" * len(widths))
    for name, planes, per, _ in race(args, lambda size, rate: {
            w: MotionDetector(replace(DetectionConfig(), width=w), size, rate, None) for w in widths}):
        print(f"| {name} ({len(planes)}) | " + " | ".join(
            f"{per[w]:.3f} ({per[w] / per[widths[0]]:.2f})" for w in widths) + " |", flush=True)
    return 0


def race(args, build):
    """Per input clip: (name, analysed planes, CPU ms a frame per detector, whether
    all gave the same results), the detectors `build(size, rate)` fed each frame in
    turn, a different one first each frame (the later ones find the plane in the CPU
    cache), rebuilt for each of `args.rounds` rounds."""
    with tempfile.TemporaryDirectory() as work:
        for name, fps, planes, levels in inputs(args.frames, Path(work)):
            size = (planes[0].shape[1], planes[0].shape[0])
            rate = analysis_fps(fps, args.fps)   # as the capture loop analyses
            planes = planes[::int(round(fps / rate))]
            spent: dict = {}
            equal = True
            for _ in range(args.rounds):
                turn = list(build(size, rate).items())
                for _, d in turn:
                    d.luma_levels = levels
                for i, img in enumerate(planes):
                    got = []
                    for key, d in turn[i % len(turn):] + turn[:i % len(turn)]:
                        t = time.process_time()
                        got.append(d.update(img))
                        spent[key] = spent.get(key, 0.0) + time.process_time() - t
                    equal = equal and all(same(got[0], g) for g in got[1:])
            yield name, planes, {k: 1000 * v / (args.rounds * len(planes)) for k, v in spent.items()}, equal


if __name__ == "__main__":
    sys.exit(main())
