"""Whole `motionwatch scan` CPU: this tree against the tree at a baseline git ref.

    PYTHONPATH=. .venv/bin/python tests/bench/scan_cpu.py [--baseline-ref 6d5f123] [--rounds 3]

Each round scans the same real clips with both trees, interleaved, each into a
fresh recordings folder, and adds up the child processes' CPU time (user +
system). Prints seconds per scan and the ratio to the baseline measured in the
same run. The baseline tree is exported with `git archive` to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

# The shared harness is in tests/support: put tests/ on sys.path (only this
# script's own folder is there when it runs as `python tests/bench/X.py`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import BASELINE_REF, REPO
from support.scenes import FOOTAGE

CLIPS = ("dvrscan_traffic_camera/traffic_camera.mp4", "opencv_vtest/vtest.avi", "i2r_escalator/video.mp4")


def export(ref: str) -> Path:
    dest = Path(tempfile.mkdtemp(prefix="mw-base-"))
    tar = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest


def scan_cpu(tree: Path, clip: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as rec:
        env = dict(os.environ, PYTHONPATH=str(tree))
        subprocess.run([sys.executable, "-m", "motionwatch", "scan", str(clip), "--recordings", rec,
                        "--no-progress", "-q"], env=env, cwd=rec, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default=BASELINE_REF)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trees = {"before": export(args.baseline_ref), "ours": REPO}
    print("| clip | before CPU s | ours CPU s | ours / before |\n|---|---|---|---|")
    for rel in CLIPS:
        clip = FOOTAGE / rel
        if not clip.exists():
            continue
        spent = {name: 0.0 for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                spent[name] += scan_cpu(tree, clip)
        b, o = spent["before"] / args.rounds, spent["ours"] / args.rounds
        print(f"| {rel.split('/')[0]} | {b:.2f} | {o:.2f} | {o / b:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
