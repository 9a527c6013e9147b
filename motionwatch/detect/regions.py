"""Per-region counts and lookups over one frame's connected-component labels.

The region filter asks, per labelled region, how many of its pixels another
mask holds (recent change, last frame's change, long-stuck pixels) and paints
per-region decisions back into the picture. With at most 256 regions (nearly
every frame) the labels fit in 8 bits, and OpenCV does both in one pass:
cv2.calcHist with the mask as its mask, and cv2.LUT. Measured on a 110x190
rectangle of 71 regions: 35 us against about 100 us for np.bincount of a
boolean selection, and 8 us against 29 us for lut.take(labels). More regions
fall back to NumPy with the same results.
"""

from __future__ import annotations

import cv2
import numpy as np


class Labels:
    """One frame's labels over the labelled rectangle; buffers sized for the whole picture."""

    def __init__(self, shape: tuple[int, int]):
        self.buf8 = np.empty(shape, np.uint8)
        self.lut = np.zeros(256, np.uint8)
        self.labels = self.small = None
        self.n = 0

    def set(self, labels: np.ndarray, n: int) -> None:
        """Take this frame's labels (n regions, 0 the background)."""
        self.labels, self.n = labels, n
        self.small = None
        if n <= 256:
            rows, cols = labels.shape
            self.small = self.buf8[:rows, :cols]
            np.copyto(self.small, labels, casting="unsafe")   # every label < 256: exact

    def count(self, where: np.ndarray) -> np.ndarray:
        """Per region: its pixels where `where` (uint8, nonzero = in) is set."""
        if self.small is None:
            return np.bincount(self.labels[where > 0], minlength=self.n)
        hist = cv2.calcHist([self.small], [0], where, [self.n], [0, self.n])
        return hist.ravel().astype(np.int64)

    def paint(self, value: np.ndarray, dst: np.ndarray) -> None:
        """dst = value[label] at each pixel of the rectangle (`value`: uint8 per region)."""
        if self.small is None:
            dst[...] = value.take(self.labels)
            return
        self.lut[:self.n] = value
        cv2.LUT(self.small, self.lut, dst)
