"""Clip encoding cost on this machine: CPU milliseconds per frame and MB per
minute for each clip format, plus the pre-roll ring's memory, at 720p and 1080p.

    .venv/bin/python tests/bench/clip_cost.py [--frames 150] [--width 1280]

CPU is measured as process time (this process plus its ffmpeg children), so
it is the cost a Raspberry Pi or a busy desktop pays, not wall-clock speed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2

from motionwatch.model import Frame
from motionwatch.sinks.clip import EventClip
from motionwatch.sources.scene import Scene, SceneRenderer, Walker


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def frames(width: int, n: int, fps: float) -> list:
    height = width * 9 // 16
    scene = Scene(width=width, height=height, fps=fps, duration_s=n / fps + 1, seed=4, noise=4.0,
                  walkers=(Walker(0.0, n / fps, height=0.6),))
    r = SceneRenderer(scene)
    return [r.render(i) for i in range(n)]


def encode(fmt: str, images: list, fps: float) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as d:
        clip = EventClip(Path(d), fmt, fps)
        c0, t0 = cpu(), time.perf_counter()
        for i, img in enumerate(images):
            clip.add(Frame(img, i, i / fps, i / fps))
        clip.finish()
        c1, t1 = cpu(), time.perf_counter()
        if clip.errors or not clip.parts:
            raise SystemExit(f"{fmt}: {clip.errors}")
        size = sum(p.stat().st_size for p in clip.parts)
    n = len(images)
    return 1000 * (c1 - c0) / n, 1000 * (t1 - t0) / n, size / 1e6 / (n / fps) * 60


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--width", type=int, action="append")
    args = ap.parse_args()
    import av
    print(f"# {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, PyAV {av.__version__} (libx264 in process)")
    for width in args.width or [1280]:
        images = frames(width, args.frames, args.fps)
        h, w = images[0].shape[:2]
        print(f"\n{w}x{h}, {args.frames} frames at {args.fps:g} fps")
        print(f"{'format':<8} {'CPU ms/frame':>13} {'wall ms/frame':>14} {'MB/minute':>10} {'CPU share at fps':>17}")
        for fmt in ("h264", "mp4v"):
            c, t, mb = encode(fmt, images, args.fps)
            print(f"{fmt:<8} {c:13.1f} {t:14.1f} {mb:10.1f} {c * args.fps / 10:16.0f}%")
    print("\npre-roll ring memory of encoded sources (events.pre_roll_seconds x fps x frame bytes;"
          " H.264/HEVC sources keep packets instead: bitrate x seconds):")
    for (w, h) in ((1280, 720), (1920, 1080), (640, 360)):
        for fps in (15, 25, 30):
            mb = 2.0 * fps * w * h * 3 / 2**20
            print(f"  {w}x{h} @ {fps} fps, 2 s: {mb:6.0f} MiB")
    # Cost of keeping the ring at a reduced clip_width: one resize per frame.
    img = frames(1920, 2, 25)[0]
    for width in (1280, 640):
        size = (width, width * 9 // 16)
        t0 = time.perf_counter()
        for _ in range(50):
            cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        print(f"clip_width {width} from 1080p: resize {1000 * (time.perf_counter() - t0) / 50:.1f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
