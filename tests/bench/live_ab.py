"""Live CPU of `run` (defaults) on the loopback MJPEG camera: this tree against a git ref.

    PYTHONPATH=. .venv/bin/python tests/bench/live_ab.py [--baseline-ref HEAD~1] [--rounds 3] [--window 15] [--clips-off]

Both trees watch the same 640x480@30 camera (tests/mjpeg_server.py, someone always
moving, so clips are always being encoded), in turn, round by round; CPU per 1000
frames as compare_peers.py measures it, and this tree's median as a ratio to the
baseline's. `--clips-off` runs both with `events.clip: false` (recording off).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_peers import live_cpu, start_mjpeg  # noqa: E402
from scan_cpu import export  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default="HEAD~1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=15.0)
    ap.add_argument("--clips-off", action="store_true", help="recording off: events.clip false")
    args = ap.parse_args()
    trees = {"baseline": export(args.baseline_ref), "ours": REPO}
    work = Path(tempfile.mkdtemp())
    server, url = start_mjpeg(work)
    extra = []
    if args.clips_off:
        (work / "clips-off.yaml").write_text("events:\n  clip: false\n")
        extra = ["--config", str(work / "clips-off.yaml")]
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    try:
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                with tempfile.TemporaryDirectory() as rec:
                    cmd = ["env", f"PYTHONPATH={trees[name]}", sys.executable, "-m", "motionwatch", "run",
                           "--source", url, "--recordings", rec, "-q", *extra]
                    cpu[name].append(live_cpu(cmd, 4.0, args.window, cwd=rec))
                print(f"round {r + 1}: {name:8s} {cpu[name][-1]:.2f} CPU s / 1000 frames", flush=True)
    finally:
        server.stdin.close()
        server.terminate()
        server.wait(timeout=10)
    base, ours = (statistics.median(cpu[n]) for n in ("baseline", "ours"))
    print(f"baseline {args.baseline_ref}: {base:.2f}, ours: {ours:.2f} CPU s / 1000 frames, ours / baseline {ours / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
