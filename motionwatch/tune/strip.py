"""The `tune` plot's extra panels: why the detector decided what it did.

`Peaks` keeps the pictures and change masks of the busiest frames (a few,
spread out in time) while the source replays; `strip` draws them side by
side with the mask over the picture; `shake_panel` plots the camera shake
estimate (the shift the detector compensated) over time.
"""

from __future__ import annotations

import math
from fractions import Fraction

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
DARK, ORANGE = (40, 40, 40), (0, 140, 230)


class Peaks:
    """The `n` frames with the most change, at least `spacing_s` apart."""

    def __init__(self, n: int = 6, spacing_s: float = 1.0):
        self.n, self.spacing = n, spacing_s
        self.kept: list[tuple[float, float, np.ndarray, np.ndarray]] = []   # (fraction, ts, picture, mask)
        self.sar: Fraction | None = None   # the source's pixel shape (Frame.sar): tiles are drawn widened

    def offer(self, ts: float, fraction: float, picture: np.ndarray, mask: np.ndarray | None,
              sar: Fraction | None = None) -> None:
        if mask is None or fraction <= 0:
            return
        self.sar = sar
        near = [k for k in self.kept if abs(k[1] - ts) < self.spacing]
        if any(k[0] >= fraction for k in near):
            return
        if not near and len(self.kept) >= self.n and fraction <= min(k[0] for k in self.kept):
            return
        # Copies only for a frame that makes the list (the detector reuses its buffers).
        h, w = mask.shape
        small = cv2.resize(picture, (w, h), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        self.kept = [k for k in self.kept if k not in near] + [(fraction, ts, small, mask.copy())]
        self.kept.sort(key=lambda k: -k[0])
        del self.kept[self.n:]


def strip(peaks: Peaks, width: int) -> np.ndarray | None:
    """The kept frames in time order, changed pixels tinted red, labelled with time and share."""
    if not peaks.kept:
        return None
    tiles = []
    for fraction, ts, pic, mask in sorted(peaks.kept, key=lambda k: k[1]):
        tile = pic.copy()
        on = mask > 0
        tile[on] = (0.45 * tile[on] + (0, 0, 140)).astype(np.uint8)
        tiles.append(tile)
    cols = len(tiles)
    tw = (width - 10 * (cols + 1)) // cols
    th = int(round(tw * tiles[0].shape[0] / (tiles[0].shape[1] * (peaks.sar or 1))))
    out = np.full((th + 40, width, 3), 255, np.uint8)
    for i, (tile, (fraction, ts, _, _)) in enumerate(zip(tiles, sorted(peaks.kept, key=lambda k: k[1]))):
        x = 10 + i * (tw + 10)
        out[30:30 + th, x:x + tw] = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_NEAREST)
        cv2.putText(out, f"{ts:.1f} s  {100 * fraction:.2f}%", (x, 22), FONT, 0.45, DARK, 1, cv2.LINE_AA)
    return out


def shake_panel(ts: list[float], shifts: list[tuple[float, float]], width: int, left: int, right: int
                ) -> np.ndarray:
    """Camera shake (length of the compensated shift, detection pixels) over time."""
    h = 110
    out = np.full((h, width, 3), 255, np.uint8)
    t = np.asarray(ts, np.float64)
    mag = np.hypot(*np.asarray(shifts, np.float64).reshape(-1, 2).T) if shifts else np.zeros(0)
    top, bottom = 30, h - 12
    cv2.rectangle(out, (left, top), (width - right, bottom), DARK, 1)
    peak = float(mag.max()) if mag.size else 0.0
    y_max = max(1.0, math.ceil(peak))
    label = f"camera shake compensated (pixels at detection size; max {peak:.1f}, 0 = none)"
    cv2.putText(out, label, (left, 20), FONT, 0.45, DARK, 1, cv2.LINE_AA)
    cv2.putText(out, f"{y_max:g}", (8, top + 10), FONT, 0.45, DARK, 1, cv2.LINE_AA)
    if t.size > 1:
        t_end = max(float(t[-1]), 1e-3)
        xs = left + (width - left - right) * t / t_end
        ys = bottom - (bottom - top) * np.minimum(mag, y_max) / y_max
        pts = np.stack([xs, ys], axis=1).round().astype(np.int32)
        cv2.polylines(out, [pts], False, ORANGE, 1, cv2.LINE_AA)
    return out
