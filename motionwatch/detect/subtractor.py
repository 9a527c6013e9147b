"""OpenCV's background subtractors (MOG2, KNN) behind the detector's interface.

DVR-Scan's `Subtractor` shape: `apply(gray) -> mask`. `SubtractorDetector`
wraps one in preprocess → model → fraction and boxes so the evaluation
harness scores OpenCV's models exactly as it scores ours (they are the
references of docs/detection.md, with OpenCV's default parameters).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from motionwatch.config import DetectionConfig
from motionwatch.detect.preprocess import Preprocess
from motionwatch.model import Detection, detection_size

MAX_BOXES = 16


class BackgroundModel(Protocol):
    def apply(self, gray: np.ndarray) -> np.ndarray:
        """Foreground mask (255 = changed) of one detection-size grey picture."""


def _makers() -> dict:
    makers = {"mog2": cv2.createBackgroundSubtractorMOG2, "knn": cv2.createBackgroundSubtractorKNN}
    contrib = getattr(cv2, "bgsegm", None)
    if contrib is not None:
        # Only with opencv-contrib (a separate install: it clashes with
        # opencv-python-headless); docs/detection.md says how to run them.
        makers.update(gsoc=contrib.createBackgroundSubtractorGSOC, cnt=contrib.createBackgroundSubtractorCNT)
    return makers


class OpenCVModel:
    """MOG2, KNN (or, with opencv-contrib, GSOC and CNT) with OpenCV's defaults;
    shadows (127) do not count as change."""

    def __init__(self, kind: str):
        makers = _makers()
        if kind not in makers:
            raise ValueError(f"background model {kind!r}: allowed are {', '.join(makers)}")
        self.sub = makers[kind]()
        self.mask: np.ndarray | None = None

    def apply(self, gray: np.ndarray) -> np.ndarray:
        raw = self.sub.apply(gray)
        self.mask = cv2.threshold(raw, 200, 255, cv2.THRESH_BINARY, self.mask)[1]
        return self.mask


class SubtractorDetector:
    """preprocess → `BackgroundModel.apply` → changed fraction and boxes."""

    def __init__(self, model: BackgroundModel, cfg: DetectionConfig, src_size: tuple[int, int], fps: float,
                 watch: np.ndarray | None = None, warmup_frames: int | None = None):
        self.model = model
        self.src_size = src_size
        self.det_size = detection_size(src_size[0], src_size[1], cfg.width)
        # OpenCV's defaults learn from the raw picture: no blur.
        self.prep = Preprocess(self.det_size, 1)
        self.watch = watch
        self.area = int(cv2.countNonZero(watch)) if watch is not None else self.det_size[0] * self.det_size[1]
        self.warmup = warmup_frames if warmup_frames is not None else max(2, int(cfg.warmup_seconds * fps))
        self.frames = 0
        self.noise_sigma = None

    def update(self, picture: np.ndarray) -> Detection:
        mask = self.model.apply(self.prep(picture))
        if self.watch is not None:
            cv2.bitwise_and(mask, self.watch, mask)
        self.frames += 1
        if self.frames <= self.warmup:
            return Detection(0.0, [], mask, ready=False)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:MAX_BOXES] + 1
        sx, sy = self.src_size[0] / self.det_size[0], self.src_size[1] / self.det_size[1]
        boxes = [(int(x * sx), int(y * sy), int(round(w * sx)), int(round(h * sy)))
                 for x, y, w, h in (stats[i, :4] for i in order)]
        return Detection(cv2.countNonZero(mask) / self.area, boxes, mask)
