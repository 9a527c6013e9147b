#!/usr/bin/env python3
"""Where one file's scan spends its CPU: the detecting thread against the whole process.

    PYTHONPATH=. .venv/bin/python tests/bench/one_pass_threads.py FILE [--threads 1,2] [--rounds 1]

Scans FILE whole in this process (as one `scan` task does) with the given numbers of
FFmpeg decoder threads, and prints per run the wall time, the process's CPU, the
detecting (main) thread's CPU `P`, and the least wall time two cores allow,
max(P, CPU / 2). Frames are detected in order on one thread, so `P` bounds what
decoder threads can gain for one file; CPU figures hold on a loaded machine where
wall times do not. The events of every run are printed too (they must not change).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from motionwatch.archive.task import ScanTask, run_task  # noqa: E402
from motionwatch.config import load_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--threads", default="1,2", help="decoder threads per run, comma-separated (default 1,2)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    cfg = load_config(None)
    cfg = replace(cfg, cameras=(replace(cfg.cameras[0], name="bench", source=args.file),))
    for _ in range(args.rounds):
        for threads in (int(t) for t in args.threads.split(",")):
            t0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
            res = run_task(ScanTask(args.file, "bench", cfg, 0.0, decoder_threads=threads))
            wall, cpu, main = time.perf_counter() - t0, time.process_time() - cpu0, time.thread_time() - main0
            events = [(e.record["start_frame"], e.record["end_frame"], e.record["frames_with_motion"])
                      for e in sorted(res.events, key=lambda e: e.record["start_frame"])]
            print(f"decoder threads {threads}: wall {wall:.1f} s, CPU {cpu:.1f} s, detecting thread {main:.1f} s "
                  f"({100 * main / max(cpu, 1e-9):.0f} %), least wall on two cores {max(main, cpu / 2):.1f} s; "
                  f"{len(events)} events {events[:3]}{' ...' if len(events) > 3 else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
