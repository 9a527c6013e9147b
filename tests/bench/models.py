"""The background models the benchmarks compare, each as `swap(detector) -> detector`.

`ours` is motionwatch.detect as configured; `before` is the detector as it was
at a git ref (the baseline for CPU ratios and regressions), and PACKAGE_REF the
detect/ package at another (the second baseline); `MOG2` and `KNN`
are OpenCV's subtractors with their default parameters behind the same
interface. A swap keeps our detector's config, sizes and watch mask.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from motionwatch.detect.subtractor import OpenCVModel, SubtractorDetector

REPO = Path(__file__).resolve().parents[2]
BASELINE_REF = "6d5f123"
# The detect/ package as issue 16's first session left it: the CPU baseline of the second.
PACKAGE_REF = "ff14022"


def _moved(src: str) -> str:
    """Old sources import masks from where it was before the package layout of issue 17."""
    return src.replace("from motionwatch.masks import", "from motionwatch.detect.masks import")


def load_package(ref: str = PACKAGE_REF):
    """The MotionDetector class of the motionwatch/detect package at git `ref`, as its own package."""
    name = f"detect_{ref}"
    root = Path(tempfile.mkdtemp())
    (root / name).mkdir()
    files = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{ref}:motionwatch/detect"],
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:motionwatch/detect/{f}"],
                             capture_output=True, text=True, check=True).stdout
        # Its modules import each other by absolute name: point those at the copy.
        (root / name / f).write_text(_moved(src.replace("motionwatch.detect.", f"{name}.")))
    sys.path.insert(0, str(root))
    return importlib.import_module(f"{name}.detector").MotionDetector


def load_before(ref: str = BASELINE_REF):
    """The MotionDetector class of motionwatch/detector.py at git `ref`."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:motionwatch/detector.py"],
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "detector_before.py"
    path.write_text(_moved(src))
    spec = importlib.util.spec_from_file_location("detector_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.MotionDetector


def swaps(ref: str = BASELINE_REF, package_ref: str = PACKAGE_REF) -> dict:
    before = load_before(ref)
    package = load_package(package_ref)

    def opencv(kind: str):
        return lambda d: SubtractorDetector(OpenCVModel(kind), d.cfg, d.src_size, d.fps, d.watch)
    models = {
        "ours": None,
        "before": lambda d: before(d.cfg, d.src_size, d.fps, d.watch),
        package_ref: lambda d: package(d.cfg, d.src_size, d.fps, d.watch),
        "MOG2": opencv("mog2"),
        "KNN": opencv("knn"),
    }
    if hasattr(cv2, "bgsegm"):
        # opencv-contrib is installed (a separate venv: docs/detection.md)
        models.update(GSOC=opencv("gsoc"), CNT=opencv("cnt"))
    return models
