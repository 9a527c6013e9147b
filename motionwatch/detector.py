"""Per-frame motion detection: frame in, `Detection` out. No I/O, no clock.

Pipeline per frame, all on a small image (detection width, default 320 px):
resize → gray → blur → global lighting compensation → absdiff against a
running-average background → threshold (fixed, auto noise floor, or Otsu) →
dilate/erode → drop small blobs → fraction of the watched area → boxes.
Buffers are allocated once per input size and reused.
"""

from __future__ import annotations

import cv2
import numpy as np

from motionwatch.config import DetectionConfig
from motionwatch.masks import detection_size
from motionwatch.model import Detection

# Most boxes reported per frame; more are merged into the picture's noise anyway.
MAX_BOXES = 16
# Auto threshold = NOISE_K x the quiet scene's robust noise sigma (never below the floor).
NOISE_K = 4.5
# How much a global gain estimate may move per frame before we call it a lighting jump.
GAIN_LIMITS = (0.25, 4.0)


class MotionDetector:
    """Running-average background subtraction with lighting and noise handling."""

    def __init__(self, cfg: DetectionConfig, src_size: tuple[int, int], fps: float,
                 watch: np.ndarray | None = None):
        self.cfg = cfg
        self.src_size = src_size
        self.fps = fps if fps and fps > 0 else 10.0
        self.det_size = detection_size(src_size[0], src_size[1], cfg.width)
        w, h = self.det_size
        if watch is not None and watch.shape != (h, w):
            raise ValueError(f"watch mask is {watch.shape[::-1]}, detection size is {self.det_size}")
        self.watch = watch
        self.watch_area = int(cv2.countNonZero(watch)) if watch is not None else w * h
        self._alloc(w, h)
        # Time constants are in seconds; convert once to per-frame values.
        self.alpha = 1.0 - (1.0 - cfg.background_alpha) ** (10.0 / self.fps)
        self.warmup_frames = max(2, int(round(cfg.warmup_seconds * self.fps)))
        self.static_frames = max(1, int(round(cfg.static_seconds * self.fps)))
        self.rebase_frames = max(2, int(round(1.0 * self.fps)))
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.kernel, cfg.kernel))
        self.reset()

    def _alloc(self, w: int, h: int) -> None:
        self.small = np.empty((h, w), np.uint8)
        self.gray = np.empty((h, w), np.uint8)
        self.blurred = np.empty((h, w), np.uint8)
        self.bg = np.zeros((h, w), np.float32)
        self.bg_u8 = np.empty((h, w), np.uint8)
        self.diff = np.empty((h, w), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)
        self.tmp = np.empty((h, w), np.uint8)
        self.still = np.zeros((h, w), np.uint16)  # frames each pixel has stayed changed
        self.ones = np.ones((h, w), np.uint16)
        self.not_mask = np.empty((h, w), np.uint8)
        # Subsample grid for the cheap robust statistics (gain, noise).
        step = max(1, int(np.sqrt(w * h / 5000)))
        self.sub = (slice(step // 2, None, step), slice(step // 2, None, step))
        self.sub_watch = (self.watch[self.sub] > 0) if self.watch is not None else None

    def reset(self) -> None:
        """Forget the background: call after a reconnect or a source change."""
        self.frames = 0
        self.rebase_left = 0
        self.noise_sigma: float | None = None
        self.still[:] = 0

    # -- public ---------------------------------------------------------------

    def update(self, image: np.ndarray, gray: np.ndarray | None = None) -> Detection:
        """Detect motion in one frame (BGR image, or the decoder's luma plane as `gray`)."""
        self._prepare(image if gray is None else gray)
        self.frames += 1
        if self.frames == 1:
            self.bg[:] = self.blurred
            return Detection(0.0, [], None, ready=False)
        gain, offset = self._lighting()
        cv2.convertScaleAbs(self.bg, self.bg_u8, gain, offset)
        cv2.absdiff(self.blurred, self.bg_u8, self.diff)
        warming = self.frames <= self.warmup_frames
        threshold = self._threshold(warming)
        cv2.threshold(self.diff, threshold, 255, cv2.THRESH_BINARY, self.mask)
        if self.watch is not None:
            cv2.bitwise_and(self.mask, self.watch, self.mask)
        changed = cv2.countNonZero(self.mask)
        lighting = changed > self.cfg.max_fraction * self.watch_area or not (
            GAIN_LIMITS[0] < gain < GAIN_LIMITS[1])
        if lighting:
            self._rebaseline()
            return Detection(0.0, [], self.mask, lighting_change=True, ready=False, threshold=threshold)
        boxes, changed = self._clean(changed)
        self._learn(gain, offset, warming)
        if warming or self.rebase_left > 0:
            self.rebase_left = max(0, self.rebase_left - 1)
            return Detection(0.0, [], self.mask, ready=False, threshold=threshold)
        return Detection(changed / self.watch_area, boxes, self.mask, threshold=threshold)

    @property
    def background(self) -> np.ndarray:
        """The background model as an 8-bit image at detection size."""
        return cv2.convertScaleAbs(self.bg)

    # -- steps ----------------------------------------------------------------

    def _prepare(self, src: np.ndarray) -> None:
        w, h = self.det_size
        if src.ndim == 3:
            # Resize first: shrinking 3 channels is cheaper than converting the full frame.
            small3 = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.cvtColor(small3, cv2.COLOR_BGR2GRAY, self.gray)
        else:
            cv2.resize(src, (w, h), self.gray, interpolation=cv2.INTER_LINEAR)
        if self.cfg.blur > 1:
            cv2.GaussianBlur(self.gray, (self.cfg.blur, self.cfg.blur), 0, self.blurred)
        else:
            self.blurred[:] = self.gray

    def _lighting(self) -> tuple[float, float]:
        """Robust global gain/offset mapping the background onto this frame.

        Matching the 20th/50th/80th percentiles of a pixel subsample cancels a
        lamp switched on, an exposure jump or flicker, while a person covering
        a minority of the picture barely moves them, so they still stand out.
        """
        if not self.cfg.lighting_compensation:
            return 1.0, 0.0
        cur = self.blurred[self.sub]
        ref = self.bg[self.sub]
        # Leave out what moved last frame (and masked areas) so a large
        # subject does not pass for a lighting change.
        keep = self.mask[self.sub] == 0
        if self.sub_watch is not None:
            keep &= self.sub_watch
        if np.count_nonzero(keep) >= 300:
            cur, ref = cur[keep], ref[keep]
        qc = np.percentile(cur, (20, 50, 80))
        qr = np.percentile(ref, (20, 50, 80))
        spread_r = qr[2] - qr[0]
        if spread_r >= 8:
            gain = float((qc[2] - qc[0]) / spread_r)
            gain = min(max(gain, 0.2), 5.0)
        else:  # flat scene: spread says nothing, use the median ratio
            gain = float((qc[1] + 1.0) / (qr[1] + 1.0))
        offset = float(qc[1] - gain * qr[1])
        if abs(gain - 1.0) < 0.01 and abs(offset) < 1.0:
            return 1.0, 0.0
        return gain, offset

    def _threshold(self, warming: bool) -> float:
        setting = self.cfg.pixel_threshold
        floor = self.cfg.min_pixel_threshold
        if isinstance(setting, int):
            return float(setting)
        if setting == "otsu":
            t, _ = cv2.threshold(self.diff, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
            # Otsu always splits the histogram in two, even when there is no motion
            # and both halves are noise; the floor keeps it from thresholding noise.
            return max(float(t), float(floor))
        return max(float(floor), NOISE_K * self._noise(warming))

    def _noise(self, warming: bool) -> float:
        """Robust sigma of the difference image, learned while the scene is quiet."""
        d = self.diff[self.sub]
        if self.sub_watch is not None:
            d = d[self.sub_watch]
        sigma = 1.4826 * float(np.median(d))
        if self.noise_sigma is None:
            self.noise_sigma = sigma
        elif warming:
            self.noise_sigma += 0.2 * (sigma - self.noise_sigma)
        elif sigma < 2.0 * self.noise_sigma:
            # Motion inflates the median; only quiet frames may move the floor, slowly.
            self.noise_sigma += 0.01 * (sigma - self.noise_sigma)
        return self.noise_sigma

    def _clean(self, changed: int) -> tuple[list, int]:
        if changed == 0:
            return [], 0
        if self.cfg.dilate:
            cv2.dilate(self.mask, self.kernel, self.mask, iterations=self.cfg.dilate)
        if self.cfg.erode:
            cv2.erode(self.mask, self.kernel, self.mask, iterations=self.cfg.erode)
        if self.watch is not None:
            cv2.bitwise_and(self.mask, self.watch, self.mask)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(self.mask, connectivity=8)
        if n <= 1:
            return [], 0
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.nonzero(areas < max(1, self.cfg.min_blob_area))[0] + 1
        if len(small):
            # Zero the small blobs in the mask so the picture matches the count.
            drop = np.isin(labels, small)
            self.mask[drop] = 0
        keep = np.nonzero(areas >= max(1, self.cfg.min_blob_area))[0] + 1
        total = int(areas[keep - 1].sum()) if len(keep) else 0
        order = keep[np.argsort(-stats[keep, cv2.CC_STAT_AREA])][:MAX_BOXES]
        sx = self.src_size[0] / self.det_size[0]
        sy = self.src_size[1] / self.det_size[1]
        boxes = []
        for i in order:
            x, y, w, h = (int(v) for v in stats[i, :4])
            boxes.append((int(x * sx), int(y * sy), int(round(w * sx)), int(round(h * sy))))
        return boxes, total

    def _learn(self, gain: float, offset: float, warming: bool) -> None:
        """Update the background: fast while warming, never under moving things.

        Pixels under the change mask keep their background, so a slow walker is
        not absorbed; a pixel that stays changed for `static_seconds` (a parked
        car) is copied in so it cannot hold an event open forever.
        """
        if gain != 1.0 or offset != 0.0:
            # Re-express the background in this frame's lighting so it re-baselines at once.
            self.bg *= gain
            self.bg += offset
            np.clip(self.bg, 0.0, 255.0, out=self.bg)
        if warming or self.rebase_left > 0:
            rate = max(self.alpha, 1.0 / min(self.frames, self.warmup_frames)) if warming else 0.5
            cv2.accumulateWeighted(self.blurred, self.bg, rate)
            return
        cv2.bitwise_not(self.mask, self.not_mask)
        cv2.accumulateWeighted(self.blurred, self.bg, self.alpha, self.not_mask)
        cv2.add(self.still, self.ones, self.still, mask=self.mask)
        self.still[self.not_mask > 0] = 0
        stuck = self.still >= self.static_frames
        if stuck.any():
            self.bg[stuck] = self.blurred[stuck]
            self.still[stuck] = 0

    def _rebaseline(self) -> None:
        """Nothing in this frame can be trusted: adopt it as the new background."""
        self.bg[:] = self.blurred
        self.still[:] = 0
        self.rebase_left = self.rebase_frames
