"""Background models side by side: pixel quality on real sequences and CPU per frame.

    PYTHONPATH=. .venv/bin/python tests/bench/eval_background.py [--baseline-ref 6d5f123] [--cdnet-step 5]

Models: `ours` (motionwatch.detect with the default config), `before` (the
detector as it was at --baseline-ref, loaded from git), and OpenCV's MOG2 and
KNN with their default parameters (references). Pixel level: CDnet rules
(255 positive, 0/50 negative, 85/170 not scored) on every sequence of
../shared/footage with hand masks. CPU: each model's update() timed
interleaved on the same decoded frames (real footage and a generated outdoor
scene), printed as a ratio to `before` measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# The shared harness is in tests/support: put tests/ on sys.path (only this
# script's own folder is there when it runs as `python tests/bench/X.py`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import BASELINE_REF, PACKAGE_REF, swaps
from motionwatch.config import DetectionConfig
from motionwatch.detect import MotionDetector
from motionwatch.sources.scene import SceneRenderer
from support.evaluate import mask_scores, read_video
from support.scenes import FOOTAGE, mask_sequences, suite

def makers(ref: str) -> dict:
    """Each model as `make(size, fps) -> detector`, for the pixel and CPU tables."""
    cfg = DetectionConfig()

    def maker(swap):
        def make(size, fps):
            ours = MotionDetector(cfg, size, fps, None)
            return ours if swap is None else swap(ours)
        return make
    return {name: maker(swap) for name, swap in swaps(ref).items()}


def pixel_table(models: dict, cdnet_step: int) -> str:
    rows = ["| sequence | " + " | ".join(f"{m} P / R / F" for m in models) + " |",
            "|---|" + "---|" * len(models)]
    fs = {m: [] for m in models}
    for seq in mask_sequences(FOOTAGE, cdnet_step=cdnet_step):
        cells = []
        for name, make in models.items():
            p, r, f, _ = mask_scores(seq, make)
            if seq.dynamic:
                fs[name].append(f)
            cells.append(f"{p:.2f} / {r:.2f} / **{f:.3f}**")
        rows.append(f"| {seq.name}{' (dynamic)' if seq.dynamic else ''} | " + " | ".join(cells) + " |")
    rows.append("| mean F, dynamic | " + " | ".join(f"{np.mean(v):.3f}" if v else "-" for v in fs.values()) + " |")
    return "\n".join(rows)


def clips_for_cpu(limit: int) -> list[tuple[str, float, list[np.ndarray]]]:
    out = []
    for rel in ("dvrscan_traffic_camera/traffic_camera.mp4", "i2r_curtain/video.mp4", "opencv_vtest/vtest.avi"):
        if (FOOTAGE / rel).exists():
            fps, frames = read_video(FOOTAGE / rel)
            out.append((rel.split("/")[0], fps, [f for _, f in zip(range(limit), frames)]))
    case = next(c for c in suite(1) if c.name == "walk_foliage")
    r = SceneRenderer(case.scene)
    out.append(("generated walk_foliage", case.scene.fps, [r.render(i) for i in range(min(limit, case.scene.frames))]))
    return out


def cpu_table(models: dict, limit: int, rounds: int) -> str:
    rows = ["| clip (frames) | " + " | ".join(f"{m} ms/frame (x before)" for m in models) + " |",
            "|---|" + "---|" * len(models)]
    for name, fps, frames in clips_for_cpu(limit):
        size = (frames[0].shape[1], frames[0].shape[0])
        spent = {m: 0.0 for m in models}
        for _ in range(rounds):
            dets = {m: make(size, fps) for m, make in models.items()}
            for img in frames:
                # Interleaved frame by frame: all models see the same machine load.
                for m, d in dets.items():
                    t = time.process_time()
                    d.update(img)
                    spent[m] += time.process_time() - t
        per = {m: 1000 * v / (rounds * len(frames)) for m, v in spent.items()}
        cells = {m: f"{per[m]:.2f} ({per[m] / per['before']:.2f}x)" for m in models}
        cells["ours"] = f"{per['ours']:.2f} ({per['ours'] / per['before']:.2f}x; " \
                        f"{per['ours'] / per[PACKAGE_REF]:.2f}x {PACKAGE_REF})"
        rows.append(f"| {name} ({len(frames)}) | " + " | ".join(cells.values()) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the `before` detector")
    ap.add_argument("--cdnet-step", type=int, default=5, help="score every Nth CDnet ground-truth frame")
    ap.add_argument("--cpu-frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-pixels", action="store_true")
    ap.add_argument("--no-cpu", action="store_true")
    args = ap.parse_args()
    models = makers(args.baseline_ref)
    if not args.no_pixels:
        print(pixel_table(models, args.cdnet_step))
    if not args.no_cpu:
        print()
        print(cpu_table(models, args.cpu_frames, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
