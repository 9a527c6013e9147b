"""Detection quality on the scene suite and the real clips, as a table.

    .venv/bin/python tests/bench/eval_detection.py [--seeds 1 2 3] [--fast] [--no-clips] [--no-cdnet]
        [--model ours|before|MOG2|KNN|GSOC|CNT]

Generated scenes (every kind of the issue, drawn from each seed: other seeds
are held-out scenes of the same kinds) and the real clips of ../shared/footage
run through the real detector and event tracker with the default config (plus
the scene's mask or gap). Prints one Markdown row per scene and a total line,
then the CDnet highway pixel precision/recall/F-measure of the change mask.
Exit status 1 when any scene fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# The shared harness is in tests/support: put tests/ on sys.path (only this
# script's own folder is there when it runs as `python tests/bench/X.py`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import swaps
from motionwatch.config import load_config
from support.evaluate import pixel_scores, run_case, run_clip, table
from support.scenes import FAST, FOOTAGE, real_clips, suite


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--fast", action="store_true", help="only the fast subset the tests assert")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these scenes")
    ap.add_argument("--no-clips", action="store_true")
    ap.add_argument("--no-cdnet", action="store_true")
    ap.add_argument("--config", help="config file (default: built-in defaults)")
    models = swaps()
    ap.add_argument("--model", default="ours", choices=tuple(models),
                    help="score this background model (references: the detector before issue 16, OpenCV's; "
                         "GSOC and CNT only where opencv-contrib is installed)")
    args = ap.parse_args()
    cfg = load_config(args.config)
    model = models[args.model]
    t0 = time.monotonic()
    scores = []
    for seed in args.seeds:
        for case in suite(seed, cfg.events.gap_seconds):
            if (args.fast and case.name not in FAST) or (args.only and case.name not in args.only):
                continue
            sc = run_case(case, cfg, model)
            if len(args.seeds) > 1:
                sc.name = f"{sc.name} (seed {seed})"
            scores.append(sc)
    if not args.no_clips:
        for clip in real_clips():
            if not args.only or clip.name in args.only:
                scores.append(run_clip(clip, cfg, model))
    print(table(scores))
    if not args.no_cdnet and (FOOTAGE / "cdnet_highway").is_dir() and not args.only and args.model == "ours":
        p, r, f, n = pixel_scores(FOOTAGE / "cdnet_highway", cfg)
        print(f"\ncdnet_highway change mask over {n} evaluated frames: "
              f"precision {p:.3f}, recall {r:.3f}, F-measure {f:.3f}")
    print(f"\n({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return 0 if all(s.ok for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
