"""Preprocess: a source picture (BGR image or luma plane) → the blurred grey
detection-size image every background model works on. Buffers are reused."""

from __future__ import annotations

import cv2
import numpy as np


class Preprocess:
    """Resize to detection size, grey, optional luma range stretch, Gaussian blur."""

    def __init__(self, det_size: tuple[int, int], blur: int):
        w, h = det_size
        self.size = det_size
        self.blur = blur
        self.gray = np.empty((h, w), np.uint8)
        self.out = np.empty((h, w), np.uint8)
        # (scale, offset) from the decoder's luma plane to BGR grey, set by the capture loop.
        self.luma_levels: tuple[float, float] | None = None

    def __call__(self, src: np.ndarray) -> np.ndarray:
        w, h = self.size
        if src.ndim == 3:
            # Resize first: shrinking 3 channels is cheaper than converting the full frame.
            small3 = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.cvtColor(small3, cv2.COLOR_BGR2GRAY, self.gray)
        else:
            cv2.resize(src, (w, h), self.gray, interpolation=cv2.INTER_LINEAR)
            if self.luma_levels is not None:
                # Limited-range luma (Y 16..235) stretched to the grey levels a BGR
                # frame gives, so thresholds mean the same on both paths.
                cv2.convertScaleAbs(self.gray, self.gray, *self.luma_levels)
        if self.blur > 1:
            cv2.GaussianBlur(self.gray, (self.blur, self.blur), 0, self.out)
        else:
            self.out[:] = self.gray
        return self.out
