"""The background models the benchmarks compare, each as `swap(detector) -> detector`.

`ours` is motionwatch.detect as configured; `before` is the detector as it was
at a git ref (the baseline for CPU ratios and regressions); `MOG2` and `KNN`
are OpenCV's subtractors with their default parameters behind the same
interface. A swap keeps our detector's config, sizes and watch mask.
"""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
from pathlib import Path

import cv2

from motionwatch.detect.subtractor import OpenCVModel, SubtractorDetector

REPO = Path(__file__).resolve().parents[2]
BASELINE_REF = "6d5f123"


def load_before(ref: str = BASELINE_REF):
    """The MotionDetector class of motionwatch/detector.py at git `ref`."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:motionwatch/detector.py"],
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "detector_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("detector_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.MotionDetector


def swaps(ref: str = BASELINE_REF) -> dict:
    before = load_before(ref)

    def opencv(kind: str):
        return lambda d: SubtractorDetector(OpenCVModel(kind), d.cfg, d.src_size, d.fps, d.watch)
    models = {
        "ours": None,
        "before": lambda d: before(d.cfg, d.src_size, d.fps, d.watch),
        "MOG2": opencv("mog2"),
        "KNN": opencv("knn"),
    }
    if hasattr(cv2, "bgsegm"):
        # opencv-contrib is installed (a separate venv: docs/detection.md)
        models.update(GSOC=opencv("gsoc"), CNT=opencv("cnt"))
    return models
