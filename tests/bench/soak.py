"""Soak: push a few hundred thousand frames through the whole live pipeline as fast
as the machine goes, and watch memory, open files and threads.

The source is the demo camera at --rate frames a second (its reader thread
renders people walking through a room and light changes, ten times faster than
real time; the capture loop takes the newest frame as from a real camera); detector, tracker, sink runner, recorder,
clip writer and index are the real ones, writing to a temporary folder. Every
--drop-every frames the camera "drops out" (its source is closed under the loop)
so the lost/found path and its threads and file handles are exercised too.

    .venv/bin/python tests/bench/soak.py                 # 200,000 frames
    .venv/bin/python tests/bench/soak.py --frames 20000 --every 2000

It prints one line per --every frames and a verdict: RSS must not grow after
warm-up, open files and threads must come back to where they were.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from motionwatch.config import Config
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sinks import SinkRunner
from motionwatch.sinks.recorder import Recorder
from motionwatch.sources import DemoSource
from motionwatch.index.database import EventIndex
from motionwatch.sources.scene import demo_scene


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def config(root: Path, clips: bool) -> Config:
    base = Config()
    return replace(
        base,
        cameras=(replace(base.cameras[0], name="soak", source="demo:2", timeout_seconds=2.0),),
        recordings=replace(base.recordings, path=str(root), min_free_gb=0.0),
        # Frames come ~30x faster than real time, so event gaps are short in wall time.
        events=replace(base.events, clip=clips, gap_seconds=0.3, post_roll_seconds=0.2, pre_roll_seconds=0.2),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000, help="frames to analyse (default 200000)")
    ap.add_argument("--every", type=int, default=10_000, help="print a line every N frames")
    ap.add_argument("--size", default="320x240", help="picture size of the generated camera")
    ap.add_argument("--rate", type=float, default=150.0,
                    help="frames a second the camera delivers (default 150; above what the loop "
                         "keeps up with, the newest is taken and the rest counted as source drops)")
    ap.add_argument("--drop-every", type=int, default=25_000, help="camera drops out every N frames (0 = never)")
    ap.add_argument("--no-clips", action="store_true", help="snapshots only")
    ap.add_argument("--keep", action="store_true", help="keep the recordings folder")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(message)s",
                        datefmt="%H:%M:%S")
    w, h = (int(v) for v in a.size.lower().split("x"))

    root = Path(tempfile.mkdtemp(prefix="mw-soak-"))
    cfg = config(root, clips=not a.no_clips)
    runner = SinkRunner([Recorder(cfg.recordings, cfg.events, EventIndex(root))])
    stop = threading.Event()
    loop = CameraLoop(cfg.cameras[0], cfg, runner, stop)
    # Delivered at --rate frames a second of a 15 fps scene: the room's day runs
    # faster than real time, so people come and go (and events end) every few seconds.
    src = DemoSource("demo:2", fps=a.rate, paced=True)
    src.scene = demo_scene(seed=2, fps=15.0, width=w, height=h)
    src.size = (w, h)
    src.cancel = stop
    src.open()
    loop.source = src

    samples: list[tuple[int, float, int, int]] = []
    t0 = time.monotonic()
    state = {"n": 0, "drops": 0}
    print(f"soak: {a.frames} frames of {w}x{h} at up to {a.rate:g} fps, clips {'off' if a.no_clips else 'on'}, "
          f"drop-out every {a.drop_every or 'never'}; recordings in {root}", flush=True)
    print(f"{'frames':>8} {'secs':>6} {'fps':>5} {'rss MB':>7} {'fds':>4} {'thr':>4} {'events':>6} "
          f"{'lost':>4} {'clip drops':>10} {'src drops':>9}", flush=True)

    def on_frame(frame, det):
        n = state["n"] = state["n"] + 1
        if n % a.every == 0:
            secs = time.monotonic() - t0
            s = (n, rss_mb(), open_fds(), threads())
            samples.append(s)
            print(f"{n:8d} {secs:6.0f} {n / secs:5.0f} {s[1]:7.1f} {s[2]:4d} {s[3]:4d} {loop.status.events:6d} "
                  f"{loop.status.reconnects:4d} {runner.dropped:10d} {loop.source.dropped:9d}", flush=True)
        if a.drop_every and n % a.drop_every == 0:
            loop.source.close()   # the camera goes away; the loop finds out on its next read
        if n >= a.frames:
            stop.set()

    loop.on_frame = on_frame
    loop.run()
    runner.close()
    secs = time.monotonic() - t0
    print(f"done: {state['n']} frames in {secs:.0f} s ({state['n'] / secs:.0f} fps), "
          f"{loop.status.events} events, {loop.status.reconnects} reconnects, "
          f"{runner.dropped} clip frames dropped", flush=True)

    ok = verdict(samples)
    if a.keep:
        print(f"recordings kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


def verdict(samples: list[tuple[int, float, int, int]]) -> bool:
    """Compare the last fifth of the run with the second fifth (after warm-up and
    the first drop-out: the first re-open of anything settles the allocator once)."""
    if len(samples) < 5:
        print("too few samples for a verdict (raise --frames or lower --every)")
        return True
    k = len(samples) // 5
    warm, tail = samples[k:2 * k], samples[-k:]
    mean = lambda rows, i: sum(r[i] for r in rows) / len(rows)  # noqa: E731
    growth = mean(tail, 1) - mean(warm, 1)
    print(f"RSS {mean(warm, 1):.1f} MB over frames {warm[0][0]}-{warm[-1][0]}, "
          f"{mean(tail, 1):.1f} MB over frames {tail[0][0]}-{tail[-1][0]}: {growth:+.1f} MB")
    fds = (max(r[2] for r in warm), max(r[2] for r in tail))
    thr = (max(r[3] for r in warm), max(r[3] for r in tail))
    print(f"open files (max) {fds[0]} -> {fds[1]}; threads (max) {thr[0]} -> {thr[1]}")
    # Allocator noise on a ~130 MB process is a few MB; a leak of even 100 bytes a
    # frame would show as 10+ MB over the 120,000 frames between the two windows.
    ok = growth < 8.0 and fds[1] <= fds[0] + 1 and thr[1] <= thr[0]
    print("verdict:", "OK, bounded" if ok else "GROWING")
    return ok


if __name__ == "__main__":
    sys.exit(main())
