"""What normally moves: per-pixel variability, blinking pixels and camera shake.

A plain background with one global threshold cannot learn that a leaf, a
ripple or a curtain fold changes all the time. `Dynamics` keeps, per pixel at
detection size:

- `mad`, the usual |frame - background| (an exponential average that rises in
  about RISE_S and falls over FALL_S): a change must exceed k x mad (detection.dynamic_k), so
  a pixel's own variability becomes its threshold, with the global noise
  threshold as the floor (indoors mad is noise and nothing changes);
- `blink`, how often the change mask flips at the pixel (SuBSENSE's feedback):
  oscillating foliage and water flip often, a person's body covers a pixel
  once. Under a region the detector reports as moving, `mad` learns only where
  the pixel blinks, so a tree is learned while a walker in front of it is not;
- the camera's global shift against the background, by phase correlation,
  so a shaking camera is differenced after aligning.

All of it is whole-array OpenCV work on the detection-size image.
"""

from __future__ import annotations

import cv2
import numpy as np

RISE_S = 1.5      # time constant of mad rising at a pixel that varies more than it did
FALL_S = 20.0     # ... and of it falling when the pixel calms down (gusts come back)
BLINK_S = 2.0     # time constant of the flip rate
# For SETTLE_S after start, mad rises in about SETTLE_RISE_S, and also under
# moving regions where the pixel has flipped SETTLE_FLIPS times since start:
# warm-up need not be quiet, a tree waving when the camera starts is learned
# in its first seconds, while a car driving through (two flips) is not.
SETTLE_S = 3.0
SETTLE_RISE_S = 0.3
SETTLE_FLIPS = 5
BLINK_K = 8.0     # a pixel flipping in a share b of frames needs (dynamic_k + BLINK_K x b) x mad
BLINK_ON = 0.25   # flip rate (per frame) above which a pixel counts as dynamic background
# Shake: shifts smaller than this (detection pixels) are noise, larger than
# MAX_SHIFT are a moved camera (re-learned as a new scene by the lighting guard).
MIN_SHIFT = 0.35
MAX_SHIFT = 12.0
MIN_RESPONSE = 0.05   # phase correlation peak below this: no clear global shift
SHAKE_SCALE = 2       # estimated on a picture this many times smaller (full size gained little)


def _rate(tau_s: float, fps: float) -> float:
    return 1.0 - float(np.exp(-1.0 / max(tau_s * fps, 1.0)))


class Dynamics:
    """Per-pixel variability and blinking, and the camera-shake estimate."""

    def __init__(self, det_size: tuple[int, int], fps: float, cfg):
        w, h = det_size
        self.k = float(cfg.dynamic_k)
        self.stabilize = bool(cfg.stabilize)
        self.rise, self.fall = _rate(RISE_S, fps), _rate(FALL_S, fps)
        self.settle_rise = _rate(SETTLE_RISE_S, fps)
        self.settle_frames = int(round(SETTLE_S * fps))
        self.settling = True
        self.blink_rate = _rate(BLINK_S, fps)
        self.mad = np.zeros((h, w), np.float32)
        self.blink = np.zeros((h, w), np.float32)
        self.allow = np.zeros((h, w), np.uint8)
        self.allow_f = np.zeros((h, w), np.float32)
        self.prev_mask = np.zeros((h, w), np.uint8)
        self.flips = np.empty((h, w), np.uint8)
        self.flip_count = np.zeros((h, w), np.uint8)   # flips since start, counted while settling
        self.up = np.empty((h, w), np.uint8)
        self.learn_mask = np.empty((h, w), np.uint8)
        self.mad_u8 = np.empty((h, w), np.uint8)
        self.aligned = np.empty((h, w), np.uint8)
        self.prev_diff = np.zeros((h, w), np.uint8)
        self.steady_diff = np.empty((h, w), np.uint8)
        # Phase correlation on a 1/SHAKE_SCALE picture: less FFT work; shake of
        # a pixel or more at detection size is what matters.
        self.scale = SHAKE_SCALE
        self.small = (max(16, w // self.scale), max(16, h // self.scale))
        self.window = cv2.createHanningWindow(self.small, cv2.CV_32F)
        self.small_bg = self.small_bg_f = None
        self.small_frame = np.empty(self.small[::-1], np.uint8)
        self.small_frame_f = np.empty(self.small[::-1], np.float32)
        self.reset()

    def reset(self) -> None:
        self.flip_count.fill(0)
        self.mad.fill(0)
        self.prev_diff.fill(0)
        self.blink.fill(0)
        self.prev_mask.fill(0)
        self.prev_clear = True
        self.shift = (0.0, 0.0)

    def allowance(self, threshold: float) -> np.ndarray | None:
        """How much more than `threshold` each pixel must change: dynamic_k x mad beyond it."""
        if self.k <= 0:
            return None
        # SuBSENSE's feedback: the more a pixel blinks, the more it must change.
        cv2.multiply(self.mad, self.blink, self.allow_f, scale=BLINK_K / 255.0)
        cv2.scaleAdd(self.mad, self.k, self.allow_f, self.allow_f)
        cv2.convertScaleAbs(self.allow_f, self.allow)
        cv2.subtract(self.allow, threshold, self.allow)
        return self.allow

    def observe(self, mask: np.ndarray, quiet: bool) -> None:
        """Count flips of the thresholded change mask (before the region filter)."""
        if quiet and self.prev_clear:
            # No flips anywhere: the flip rate only decays (skipped: it is a rate,
            # a short pause in the decay of a quiet picture changes nothing).
            return
        cv2.bitwise_xor(mask, self.prev_mask, self.flips)
        cv2.accumulateWeighted(self.flips, self.blink, self.blink_rate)   # 255 x flip rate
        if self.settling:
            cv2.add(self.flip_count, 1, self.flip_count, mask=self.flips)
        np.copyto(self.prev_mask, mask)
        self.prev_clear = quiet

    def learn(self, raw_diff: np.ndarray, moving: np.ndarray | None, warming: bool, frame: int,
              light_jump: bool) -> None:
        """Update mad from this frame's |frame - background| (not under a person)."""
        if self.k <= 0 or light_jump:
            return   # a light jump changes everything once; it is not how pixels vary
        if warming:
            # Warm-up need not be quiet: a waving tree is learned from the start.
            cv2.accumulateWeighted(raw_diff, self.mad, max(self.rise, 1.0 / max(frame, 1)))
            return
        cv2.convertScaleAbs(self.mad, self.mad_u8)
        cv2.compare(raw_diff, self.mad_u8, cv2.CMP_GT, self.up)
        self.settling = frame < self.settle_frames
        if frame <= self.settle_frames:
            if moving is not None:
                # Under a moving region only where it keeps flipping (leaves, not a car).
                cv2.compare(self.flip_count, SETTLE_FLIPS, cv2.CMP_GE, self.learn_mask)
                cv2.bitwise_or(self.learn_mask, cv2.bitwise_not(moving), self.learn_mask)
                cv2.bitwise_and(self.up, self.learn_mask, self.up)
            cv2.accumulateWeighted(raw_diff, self.mad, self.settle_rise, self.up)
            np.copyto(self.prev_diff, raw_diff)
            return
        # After start-up, mad rises only with changes that last two frames: a rain
        # streak or a shake the alignment missed is at a pixel for one frame.
        cv2.min(raw_diff, self.prev_diff, self.steady_diff)
        np.copyto(self.prev_diff, raw_diff)
        cv2.compare(self.steady_diff, self.mad_u8, cv2.CMP_GT, self.up)
        raw_diff = self.steady_diff
        if moving is not None:
            # Under a moving region learn only where the pixel blinks (leaves, water).
            cv2.compare(self.blink, 255.0 * BLINK_ON, cv2.CMP_GE, self.learn_mask)
            cv2.bitwise_or(self.learn_mask, cv2.bitwise_not(moving), self.learn_mask)
            cv2.bitwise_and(self.up, self.learn_mask, self.up)
        cv2.accumulateWeighted(raw_diff, self.mad, self.rise, self.up)
        cv2.bitwise_not(self.up, self.up)
        if moving is not None:
            cv2.bitwise_and(self.up, self.learn_mask, self.up)
        cv2.accumulateWeighted(raw_diff, self.mad, self.fall, self.up)

    def align(self, frame: np.ndarray, background: np.ndarray, refresh: bool = True) -> np.ndarray | None:
        """`frame` moved onto `background` when the camera shook; None when it did not.

        With `refresh` False the background's small copy from an earlier call is
        reused (the background moves slowly; the caller says when it is due).
        """
        if refresh or self.small_bg is None:
            self.small_bg = cv2.resize(background, self.small, self.small_bg, interpolation=cv2.INTER_AREA)
            self.small_bg_f = self.small_bg.astype(np.float32)
        cv2.resize(frame, self.small, self.small_frame, interpolation=cv2.INTER_AREA)
        self.small_frame_f[:] = self.small_frame
        (dx, dy), response = cv2.phaseCorrelate(self.small_bg_f, self.small_frame_f, self.window)
        dx, dy = self.scale * dx, self.scale * dy
        if response < MIN_RESPONSE or abs(dx) > MAX_SHIFT or abs(dy) > MAX_SHIFT \
                or max(abs(dx), abs(dy)) < MIN_SHIFT:
            self.shift = (0.0, 0.0)
            return None
        self.shift = (dx, dy)
        m = np.float32([[1, 0, -dx], [0, 1, -dy]])
        cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]), self.aligned,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return self.aligned
