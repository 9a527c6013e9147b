#!/usr/bin/env python3
"""What idling between frames costs: the same `scan` work, with a sleep every two frames.

    PYTHONPATH=. .venv/bin/python tests/bench/idle_penalty.py [FILE] [--rounds 2] [--sleeps 0 5 20 66]

A live `run` decodes and detects a frame, then sleeps until the next one is due
(paced files: about 66 ms per two frames at 30 fps and detection.fps 15). On this
kind of VM the same work costs more CPU after each sleep (cold caches, a vCPU
woken from halt), for `motion` as for motionwatch. This runs the scan pipeline
in process on one decoder thread, as `run` decodes, once without sleeping and
once per sleep length, and prints each one's CPU per frame as a ratio to the
run without sleeps, so the penalty is known apart from the work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from motionwatch.bench import make_clip, scan_pipeline  # noqa: E402
import motionwatch.sources.pyav as pyav  # noqa: E402


def sleeping_reads(seconds: float):
    """AvFileSource.read that sleeps `seconds` after every second frame it hands out."""
    read = pyav.AvFileSource.read
    count = [0]

    def paced_read(self, timeout: float = 10.0):
        frame = read(self, timeout)
        count[0] += 1
        if seconds and count[0] % 2 == 0:
            time.sleep(seconds)
        return frame
    return read, paced_read


def cpu_ms(path: str, config: str, sleep_ms: float) -> float:
    original, paced = sleeping_reads(sleep_ms / 1000)
    pyav.AvFileSource.read = paced
    try:
        r = scan_pipeline(path, config)
    finally:
        pyav.AvFileSource.read = original
    return 1000 * r["cpu"] / r["frames"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", help="a video file (default: a generated 640x480@30 clip)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sleeps", type=float, nargs="+", default=[0, 5, 20, 66], help="ms slept per two frames")
    a = ap.parse_args()
    work = Path(tempfile.gettempdir()) / "motionwatch-peers"
    work.mkdir(exist_ok=True)
    path = a.file or str(work / "idle-640x480-30fps.mp4")
    if not Path(path).exists():
        make_clip(path, 640, 480, 20.0, fps=30.0)
    config = work / "idle-noclip.yaml"
    config.write_text("events:\n  clip: false\n")
    pyav.SCAN_DECODER_THREADS = 1   # as run decodes (PACED_DECODER_THREADS)
    runs: dict[float, list[float]] = {s: [] for s in a.sleeps}
    for r in range(a.rounds):
        for s in a.sleeps if r % 2 == 0 else reversed(a.sleeps):
            runs[s].append(cpu_ms(path, str(config), s))
    base = statistics.median(runs[a.sleeps[0]])
    print(f"{'sleep per 2 frames':>20s} {'CPU ms/frame':>13s} {'x no sleep':>11s}")
    for s, v in runs.items():
        print(f"{s:17g} ms {statistics.median(v):13.3f} {statistics.median(v) / base:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
