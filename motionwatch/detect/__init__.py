"""Motion detection: preprocess → background model → region filter → `Detection`.

`MotionDetector.update(picture) -> Detection` is the one entry point; the
OpenCV reference models (MOG2, KNN) run behind the same interface in
`subtractor.py` so they can be compared on one harness.
"""

from motionwatch.detect.detector import NOISE_K, MotionDetector

__all__ = ["MotionDetector", "NOISE_K"]
