"""Outdoor scene elements for the generated suite: foliage moving in gusts,
rippling water, rain, snow and camera shake. Deterministic for a scene's seed.

Foliage is a texture of leaves displaced by a smooth random field whose
strength follows gusts (a random walk in time, not a sine), so the detector
sees what a tree in wind gives: edges that move by a few pixels, irregularly.
Rain and snow are drawn in front of everything, shake moves the whole picture.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _smooth_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Random field varying over about `cell` pixels, values in about -1..1."""
    small = rng.normal(0, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def gust(seed: int, t: float) -> float:
    """Wind strength 0..~1.3 at time t: calm spells and gusts of a few seconds."""
    rng = np.random.default_rng(seed)
    amps, freqs, phases = rng.uniform(0.3, 1.0, 5), rng.uniform(0.05, 0.6, 5), rng.uniform(0, 2 * math.pi, 5)
    v = sum(a * math.sin(2 * math.pi * f * t + p) for a, f, p in zip(amps, freqs, phases)) / amps.sum()
    return 0.35 + 0.9 * max(v, -0.3)


class Outdoor:
    """Draws a scene's outdoor elements into each rendered frame."""

    def __init__(self, scene):
        self.s = scene
        rng = np.random.default_rng(scene.seed + 77)
        self.trees = [self._tree(rng, rect) for rect in scene.foliage]
        if scene.water is not None:
            x, y, w, h = scene.water
            self.wave_k = rng.uniform(0.05, 0.2, (6, 2)) * rng.choice([-1, 1], (6, 2))
            self.wave_w = rng.uniform(1.0, 4.0, 6)
            self.wave_p = rng.uniform(0, 2 * math.pi, 6)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            self.water_xy = (xx, yy)
            self.water_tone = rng.uniform(60, 110, 3).astype(np.float32)
        self.flakes = np.column_stack([rng.uniform(0, scene.width, scene.snow), rng.uniform(0, scene.height, scene.snow),
                                       rng.uniform(15, 45, scene.snow), rng.uniform(1.0, 2.6, scene.snow),
                                       rng.uniform(0, 2 * math.pi, scene.snow)])

    # -- trees ------------------------------------------------------------------

    def _tree(self, rng: np.random.Generator, rect: tuple[int, int, int, int]) -> dict:
        x, y, w, h = rect
        pad = 10
        layer = np.zeros((h + 2 * pad, w + 2 * pad, 3), np.float32)
        alpha = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
        cx = pad + w // 2
        # A few branches from the bottom centre, then leaf clusters along them.
        for _ in range(int(rng.integers(3, 6))):
            ex, ey = int(pad + rng.uniform(0, w)), int(pad + rng.uniform(0, 0.6 * h))
            cv2.line(layer, (cx, pad + h), (ex, ey), (40, 55, 70), 3)
            cv2.line(alpha, (cx, pad + h), (ex, ey), 1.0, 3)
        for _ in range(int(w * h / 60)):
            px, py = int(pad + rng.uniform(0, w)), int(pad + rng.uniform(0, 0.85 * h))
            ax, ay = int(rng.uniform(2, 6)), int(rng.uniform(1, 4))
            g = rng.uniform(60, 170)
            cv2.ellipse(layer, (px, py), (ax, ay), rng.uniform(0, 180), 0, 360,
                        (g * 0.35, g, g * 0.5), -1)
            cv2.ellipse(alpha, (px, py), (ax, ay), rng.uniform(0, 180), 0, 360, 1.0, -1)
        hh, ww = alpha.shape
        fields = [_smooth_field(rng, hh, ww, 24) for _ in range(4)]
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        # Tips move more than the trunk: scale the displacement with height.
        reach = np.clip((pad + h - yy) / max(h, 1), 0.2, 1.0).astype(np.float32)
        return dict(rect=rect, pad=pad, layer=layer, alpha=alpha, fields=fields, grid=(xx, yy), reach=reach,
                    seed=int(rng.integers(1 << 30)))

    def _draw_tree(self, img: np.ndarray, tree: dict, t: float) -> None:
        x, y, w, h = tree["rect"]
        pad = tree["pad"]
        a, b, c, d = tree["fields"]
        g = self.s.wind * gust(tree["seed"], t) * 6.0 * tree["reach"]
        # Leaves flutter fast (a), branches sway slower (b): both scaled by the gust.
        dx = g * (0.6 * a * math.sin(9.0 * t + 1.3) + 0.5 * b * math.sin(2.1 * t) + 0.3 * c * math.cos(5.3 * t))
        dy = g * 0.5 * (0.6 * d * math.cos(8.1 * t) + 0.4 * a * math.sin(3.7 * t + 0.4))
        xx, yy = tree["grid"]
        mx, my = (xx + dx).astype(np.float32), (yy + dy).astype(np.float32)
        layer = cv2.remap(tree["layer"], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.remap(tree["alpha"], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        H, W = img.shape[:2]
        x0, y0 = x - pad, y - pad
        sx0, sy0 = max(0, -x0), max(0, -y0)
        x1, y1 = min(W, x0 + alpha.shape[1]), min(H, y0 + alpha.shape[0])
        if x1 <= x0 + sx0 or y1 <= y0 + sy0:
            return
        roi = img[y0 + sy0:y1, x0 + sx0:x1]
        al = alpha[sy0:sy0 + roi.shape[0], sx0:sx0 + roi.shape[1], None]
        roi *= 1.0 - al
        roi += al * layer[sy0:sy0 + roi.shape[0], sx0:sx0 + roi.shape[1]]

    # -- water ------------------------------------------------------------------

    def _draw_water(self, img: np.ndarray, t: float) -> None:
        x, y, w, h = self.s.water
        xx, yy = self.water_xy
        wave = np.zeros_like(xx)
        for (kx, ky), om, ph in zip(self.wave_k, self.wave_w, self.wave_p):
            wave += np.sin(kx * xx + ky * yy * 2.0 - om * t + ph)
        wave *= 1.0 / len(self.wave_w)
        # Sparkle: crests catch the light.
        lum = 18.0 * wave + 45.0 * np.maximum(wave - 0.45, 0.0)
        region = img[y:y + h, x:x + w]
        region[:] = self.water_tone + lum[:, :, None]

    # -- weather and shake ------------------------------------------------------

    def _draw_rain(self, img: np.ndarray, i: int) -> None:
        H, W = img.shape[:2]
        rng = np.random.default_rng(self.s.seed * 7919 + i)
        n = int(self.s.rain * H * W / 10000)
        xs, ys = rng.uniform(0, W, n), rng.uniform(0, H, n)
        ln, br = rng.uniform(12, 34, n), rng.uniform(40, 90, n)
        streaks = np.zeros((H, W), np.float32)
        for x, y, length, b in zip(xs, ys, ln, br):
            cv2.line(streaks, (int(x), int(y)), (int(x + 0.15 * length), int(y + length)), float(b), 2)
        img += streaks[:, :, None]

    def _draw_snow(self, img: np.ndarray, t: float) -> None:
        H, W = img.shape[:2]
        x0, y0, v, r, ph = self.flakes.T
        ys = (y0 + v * t) % H
        xs = (x0 + 8.0 * np.sin(0.8 * t + ph)) % W
        for x, y, rad in zip(xs, ys, r):
            cv2.circle(img, (int(x), int(y)), int(round(rad)), (235, 235, 240), -1, cv2.LINE_AA)

    def _shake(self, img: np.ndarray, i: int) -> np.ndarray:
        rng = np.random.default_rng(self.s.seed * 104729 + i)
        dx, dy = rng.normal(0, self.s.shake_px, 2)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)

    # -- public -----------------------------------------------------------------

    def background(self, img: np.ndarray, i: int, t: float) -> None:
        """Moving background drawn before the walkers (who pass in front of it)."""
        if self.s.water is not None:
            self._draw_water(img, t)
        for tree in self.trees:
            self._draw_tree(img, tree, t)

    def foreground(self, img: np.ndarray, i: int, t: float) -> np.ndarray:
        """Weather in front of everything, then the camera's shake."""
        if self.s.rain:
            self._draw_rain(img, i)
        if self.s.snow:
            self._draw_snow(img, t)
        if self.s.shake_px:
            img = self._shake(img, i)
        return img
