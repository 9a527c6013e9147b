"""Per-frame motion detection: frame in, `Detection` out. No I/O, no clock.

Pipeline per frame, all on a small image (detection width, default 320 px):
resize → gray → blur → global lighting compensation (median ratio) → absdiff
against a running-average background, less an allowance on its strong edges →
threshold (fixed, auto noise floor, or Otsu) → dilate/erode → drop small blobs
→ keep regions that also differ from the last ~0.25 s (moving) and that light
alone does not explain (texture kept) → fraction of the watched area → boxes.
Buffers are allocated once per input size and reused; connected components
run only when something changed. The README section *Motion detection* explains each step.
"""

from __future__ import annotations

import cv2
import numpy as np

from motionwatch.config import DetectionConfig
from motionwatch.detect.dynamic import Dynamics
from motionwatch.detect.preprocess import Preprocess
from motionwatch.model import Detection, detection_size

# Most boxes reported per frame; more are merged into the picture's noise anyway.
MAX_BOXES = 16
# Auto threshold = NOISE_K x the quiet scene's robust noise sigma (never below the floor).
NOISE_K = 4.5
# How much a global gain estimate may move per frame before we call it a lighting jump.
GAIN_LIMITS = (0.25, 4.0)
# Time constant of the short-term background (seconds): a region that differs from the
# long-term background but not from the last ~0.25 s is a static change, not movement.
RECENT_TAU_S = 0.25
# A changed region counts as moving when at least this share of it (and MIN_MOVING
# pixels) also changed within RECENT_TAU_S. Light that spreads over a wall, the sun
# coming out or a parked car fail this; a walker's edges always pass it.
MOVING_SHARE = 0.02
MIN_MOVING = 4
# A large changed region whose pixels still follow the background's texture
# (correlation >= RELIT_R) is light falling differently (sun through clouds, a
# shadow edge sweeping over the ground), not a new object: a person replaces
# the texture behind them. Only regions with texture to compare are judged.
# Demand more change on the background's strong edges: a leaf edge against the
# sky, a building edge in a shaking camera or compression ringing moves by a
# pixel and differs by about the local gradient; a subject differs by far more.
EDGE_K = 0.3            # x the 3x3 morphological gradient of the background
EDGE_EVERY_S = 0.5      # how often the edge map follows the background
# A frame whose global gain moves this much is a light jump (switch, exposure
# step). One gain cannot map everything (colour channels clip, tone curves
# bend), so for JUMP_S afterwards changed regions that do not move are re-learned.
JUMP_GAIN = 0.08
JUMP_S = 0.6
RELIT_MIN_SHARE = 0.01
RELIT_R = 0.92
RELIT_MIN_STD = 8.0
# Temporal and shape evidence (issue 16). A region counts only when at least
# PERSIST_SHARE of it was already changed last frame (a rain streak or an
# insect is somewhere else each frame; a person overlaps themself) or it is
# LARGE_SHARE of the picture. When WEATHER_COUNT or more small regions (under
# SMALL_SHARE of the picture each) appear at once, they are rain or snow and
# no region under WEATHER_SHARE counts: a far-away person in a storm is lost.
PERSIST_SHARE = 0.15
# A shake estimate is used only when aligning leaves at most this share of
# the change there was without it (1.0 aligned more shaken highway frames but
# ended the escalator clip's event early).
SHAKE_GAIN = 0.7
# Phase correlation is the dearest step, and in a steady camera its estimate is
# never used (not once on traffic_camera; docs/performance.md). Besides the
# estimates due every EDGE_EVERY_S it runs only while the camera shakes (an
# estimate was used lately) or when the change jumps past SHAKE_JUMP x last
# frame's (a shake starting); a walker or a car changes about as much as it did
# last frame.
SHAKE_JUMP = 1.5
SHAKE_HOLD_S = 2.0   # ... and for this long after an aligned picture was last used
LARGE_SHARE = 0.01
SMALL_SHARE = 0.001
WEATHER_COUNT = 6
WEATHER_SHARE = 0.004
# Ghosts: a region that has stayed changed for GHOST_S, whose outline is an
# edge of the background but not of the picture (the background holds an
# object that has left: a person in view at start, a car driving off), is
# re-learned at once. A real object that stops has its outline in the picture,
# so it stays detected until static_seconds.
GHOST_S = 1.0
GHOST_EDGE = 0.5   # picture's edge strength on the outline below this x the background's: a ghost
# While the variability estimate still converges (dynamic.SETTLE_S after a
# start), a frame whose change is spread over FLOOD_COUNT or more regions is
# a moving background the model has not yet seen (a gust through a tree): in
# it a region counts only when changed pixels fill SOLID_SHARE of it. The
# gust's regions are speckles joined by dilation (0.3-0.35 filled), a new
# object differs across its body (0.65-0.9 for every generated walker). Not
# in every settling frame: the real escalator clip's small, blurred people
# fill 0.35-0.55, and at most 10 regions were seen in any real clip's first
# seconds against 24-28 in the gust.
FLOOD_COUNT = 16
SOLID_SHARE = 0.5


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
        if watch is not None and cfg.blur > 1:
            # The blur carries a masked area's changes (a ticking timestamp) a few
            # pixels out; stop watching that rim (picture edges are not masks).
            rim = cv2.getStructuringElement(cv2.MORPH_RECT, (cfg.blur, cfg.blur))
            shrunk = cv2.erode(watch, rim, borderType=cv2.BORDER_CONSTANT, borderValue=255)
            if cv2.countNonZero(shrunk):
                watch = shrunk
        self.watch = watch
        self.prep = Preprocess(self.det_size, cfg.blur)
        self.dyn = Dynamics(self.det_size, self.fps, cfg)
        self.watch_area = int(cv2.countNonZero(watch)) if watch is not None else w * h
        self._alloc(w, h)
        # Time constants are in seconds; convert once to per-frame values.
        self.alpha = 1.0 - (1.0 - cfg.background_alpha) ** (10.0 / self.fps)
        self.warmup_frames = max(2, int(round(cfg.warmup_seconds * self.fps)))
        self.static_frames = max(1, int(round(cfg.static_seconds * self.fps)))
        self.rebase_frames = max(2, int(round(1.0 * self.fps)))
        self.jump_frames = max(2, int(round(JUMP_S * self.fps)))
        self.edge_every = max(1, int(round(EDGE_EVERY_S * self.fps)))
        self.ghost_frames = max(2, int(round(GHOST_S * self.fps)))
        self.shake_hold = max(1, int(round(SHAKE_HOLD_S * self.fps)))
        self.recent_rate = 1.0 - float(np.exp(-1.0 / (RECENT_TAU_S * self.fps)))
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.kernel, cfg.kernel))
        self.reset()

    def _alloc(self, w: int, h: int) -> None:
        self.blurred = self.prep.out
        self.bg = np.zeros((h, w), np.float32)
        self.bg_u8 = np.empty((h, w), np.uint8)
        self.recent_u8 = np.empty((h, w), np.uint8)
        self.recent_bg = np.zeros((h, w), np.float32)   # short-term background
        self.edge = np.zeros((h, w), np.uint8)          # extra threshold on background edges
        self.kernel3 = np.ones((3, 3), np.uint8)
        self.kernel5 = np.ones((5, 5), np.uint8)
        self.recent = np.empty((h, w), np.uint8)
        self.diff = np.empty((h, w), np.uint8)
        self.raw_diff = np.empty((h, w), np.uint8)   # before the edge and variability allowances
        self.kept_diff = np.empty((h, w), np.uint8)  # the unaligned pass, while an aligned one is tried
        self.kept_mask = np.empty((h, w), np.uint8)
        self.raw_mask = np.zeros((h, w), np.uint8)   # thresholded, before the region filter
        self.mask = np.zeros((h, w), np.uint8)   # every changed region (not learned)
        self.out_buf = np.zeros((h, w), np.uint8)
        self.prev_out = np.zeros((h, w), np.uint8)   # last frame's moving regions
        self.held = np.zeros((h, w), np.uint8)       # moved, and changed ever since (see _held)
        self.out = self.mask                       # regions that move: what is reported
        self.tmp = np.empty((h, w), np.uint8)
        self.still = np.zeros((h, w), np.uint16)  # frames each pixel has stayed changed
        self.ones = np.ones((h, w), np.uint16)
        self.still_next = np.zeros((h, w), np.uint16)
        self.not_mask = np.empty((h, w), np.uint8)
        # 16-bit labels when they cannot overflow (8-connected regions are at most one
        # pixel in each 2x2 block): the labelling writes half the bytes (docs/performance.md).
        self.label_type = cv2.CV_16U if ((w + 1) // 2) * ((h + 1) // 2) < 65535 else cv2.CV_32S
        # Subsample grid for the cheap robust statistics (gain, noise).
        step = max(1, int(np.sqrt(w * h / 2500)))
        self.sub = (slice(step // 2, None, step), slice(step // 2, None, step))
        self.sub_watch = (self.watch[self.sub] > 0) if self.watch is not None else None

    def reset(self) -> None:
        """Forget the background: call after a reconnect or a source change."""
        self.frames = 0
        self.rebase_left = 0
        self.noise_sigma: float | None = None
        self.relit: np.ndarray | None = None
        self.gain, self.offset = 1.0, 0.0
        self.jump_left = 0
        self.edge_due = self.shake_due = 0
        self.prev_changed = 0   # last frame's changed pixels before alignment
        self.shaken_at = -self.shake_hold - 1   # the last frame an aligned picture was used
        self.still[:] = 0
        self.mask[:] = 0
        self.prev_out[:] = 0
        self.held[:] = 0
        self.held_clear = True
        self.out = self.mask
        # Which buffers are known to be all zero: most frames change nothing, and
        # then clearing or copying a zero picture again is wasted work.
        self.mask_clear = self.prev_clear = self.still_clear = True
        self.dyn.reset()

    # -- public ---------------------------------------------------------------

    def update(self, picture: np.ndarray) -> Detection:
        """Detect motion in one frame: a BGR image or the decoder's luma plane."""
        self.blurred = self.prep(picture)
        self.frames += 1
        if self.frames == 1:
            self.bg[:] = self.blurred
            self.recent_bg[:] = self.blurred
            return Detection(0.0, [], None, ready=False)
        gain, offset = self._lighting()
        self.gain, self.offset = gain, offset
        if abs(gain - 1.0) >= JUMP_GAIN:
            # A light jump: judge movement against this frame from now on, and let
            # what merely changed with the light be re-learned (see _clean).
            self.jump_left = self.jump_frames
        self._express(self.bg, self.bg_u8)
        warming = self.frames <= self.warmup_frames
        changed, threshold = self._difference(warming)
        if self._shake_may_matter(changed):
            # Something changed: if the whole picture moved (a shaking camera),
            # difference again after aligning this frame with the background.
            aligned = self.dyn.align(self.blurred, self.bg_u8, refresh=self.frames >= self.shake_due)
            if self.frames >= self.shake_due:
                self.shake_due = self.frames + self.edge_every
            if aligned is not None:
                unaligned = self.blurred
                self.blurred = aligned
                np.copyto(self.kept_diff, self.raw_diff)
                np.copyto(self.kept_mask, self.mask)
                before, (changed, threshold) = changed, self._difference(warming, threshold)
                if changed > SHAKE_GAIN * before:
                    # A large moving subject, not the camera, moved the correlation
                    # peak: aligning made it worse, so keep the picture as it was.
                    self.blurred = unaligned
                    self.dyn.shift = (0.0, 0.0)
                    changed = before
                    np.copyto(self.raw_diff, self.kept_diff)
                    np.copyto(self.mask, self.kept_mask)
                    np.copyto(self.raw_mask, self.kept_mask)
                else:
                    self.shaken_at = self.frames
        raw_changed = changed
        lighting = changed > self.cfg.max_fraction * self.watch_area or not (
            GAIN_LIMITS[0] < gain < GAIN_LIMITS[1])
        if lighting:
            self.mask_clear = False
            self._rebaseline()
            return Detection(0.0, [], self.mask, lighting_change=True, ready=False, threshold=threshold)
        quiet = changed == 0   # nothing over the threshold: the mask stays empty
        boxes, changed = self._clean(changed, threshold)
        self.dyn.observe(self.raw_mask, quiet)
        self.dyn.learn(self.raw_diff, self._held(quiet), warming or self.rebase_left > 0,
                       self.frames, self.jump_left > 0)
        self._keep_prev_out(quiet)
        self.mask_clear = quiet
        self._learn(warming, quiet)
        extra = dict(threshold=threshold, raw_fraction=raw_changed / self.watch_area, shift=self.dyn.shift)
        if warming or self.rebase_left > 0:
            self.rebase_left = max(0, self.rebase_left - 1)
            return Detection(0.0, [], self.out, ready=False, **extra)
        return Detection(changed / self.watch_area, boxes, self.out, **extra)

    def _shake_may_matter(self, changed: int) -> bool:
        """Whether to estimate camera shake this frame (see SHAKE_JUMP)."""
        jumped, self.prev_changed = changed > SHAKE_JUMP * self.prev_changed, changed
        return bool(changed) and self.dyn.stabilize and (
            jumped or self.frames >= self.shake_due or self.frames - self.shaken_at <= self.shake_hold)

    def _difference(self, warming: bool, threshold: float | None = None) -> tuple[int, float]:
        """Threshold |frame - background| less the allowances; returns (changed pixels, threshold)."""
        cv2.absdiff(self.blurred, self.bg_u8, self.raw_diff)
        if threshold is None:
            # The first pass of the frame: the allowance holds for the aligned pass too.
            threshold = self._threshold(warming)
            allowance = self.dyn.allowance(threshold)
            if EDGE_K:
                self._edges()
                allowance = self.edge if allowance is None else cv2.max(allowance, self.edge, allowance)
            self.allowance = allowance
        allowance = self.allowance
        if allowance is not None:
            cv2.subtract(self.raw_diff, allowance, self.diff)
        else:
            np.copyto(self.diff, self.raw_diff)
        cv2.threshold(self.diff, threshold, 255, cv2.THRESH_BINARY, self.mask)
        if self.watch is not None:
            cv2.bitwise_and(self.mask, self.watch, self.mask)
        np.copyto(self.raw_mask, self.mask)
        return cv2.countNonZero(self.mask), threshold

    @property
    def background(self) -> np.ndarray:
        """The background model as an 8-bit image at detection size."""
        return cv2.convertScaleAbs(self.bg)

    # -- steps ----------------------------------------------------------------

    @property
    def luma_levels(self) -> tuple[float, float] | None:
        """(scale, offset) from the decoder's luma plane to BGR grey, set by the capture loop."""
        return self.prep.luma_levels

    @luma_levels.setter
    def luma_levels(self, levels: tuple[float, float] | None) -> None:
        self.prep.luma_levels = levels

    def _held(self, quiet: bool) -> np.ndarray | None:
        """Pixels of moving regions, and those that have stayed changed since they moved.

        The variability estimate must not learn them: a person who stops is
        no longer moving, and learning their difference as the pixel's usual
        variation would melt them into the background, so that leaving fires
        a second event (a ghost). Foliage flickers out of the mask and is let go.
        """
        if quiet:
            if not self.held_clear:
                self.held.fill(0)
                self.held_clear = True
            return None
        self.held_clear = False
        cv2.bitwise_and(self.held, self.mask, self.held)
        cv2.bitwise_or(self.held, self.out, self.held)
        return self.held

    def _keep_prev_out(self, quiet: bool) -> None:
        """prev_out = this frame's moving regions (all zero when nothing changed)."""
        if not quiet:
            np.copyto(self.prev_out, self.out)
        elif not self.prev_clear:
            self.prev_out.fill(0)
        self.prev_clear = quiet

    def _express(self, model: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """A background model as 8-bit in this frame's lighting."""
        return cv2.convertScaleAbs(model, dst, self.gain, self.offset)

    def _relearn(self, where: np.ndarray) -> None:
        self.relit = where if self.relit is None else (self.relit | where)

    def _edges(self) -> None:
        """Refresh the edge allowance from the background now and then (it changes slowly)."""
        if self.frames < self.edge_due:
            return
        self.edge_due = self.frames + self.edge_every
        cv2.morphologyEx(self.bg_u8, cv2.MORPH_GRADIENT, self.kernel3, dst=self.edge)
        cv2.convertScaleAbs(self.edge, self.edge, EDGE_K)

    def _lighting(self) -> tuple[float, float]:
        """Robust global gain/offset mapping the background onto this frame.

        Median ratio and median residual over a pixel subsample cancel a lamp
        switched on, an exposure jump or flicker, while a person covering a
        minority of the picture barely moves them, so they still stand out.
        """
        # Leave out what changed last frame (and masked areas) so a large
        # subject does not pass for a lighting change nor for noise.
        if self.mask_clear and self.sub_watch is None:
            keep = None   # nothing to leave out: every sampled pixel counts
        else:
            keep = self.mask[self.sub] == 0
            if self.sub_watch is not None:
                keep &= self.sub_watch
        self.quiet_sub = keep
        if not self.cfg.lighting_compensation:
            return 1.0, 0.0
        cur = self.blurred[self.sub]
        ref = self.bg[self.sub]
        if keep is not None and np.count_nonzero(keep) >= 300:
            cur, ref = cur[keep], ref[keep]
        # Exposure, a lamp or the IR switch scale gamma-encoded pixels by one
        # factor; the median of per-pixel ratios finds it while anything that
        # moves covers less than half of the compared pixels (a spread or
        # percentile match is thrown off by one bright car in a small area).
        cur = cur.astype(np.float32)
        ratio = (cur + 4.0) / (ref + 4.0)
        if _surely_unchanged(cur, ref, ratio):
            return 1.0, 0.0
        gain = min(max(_median(ratio), 0.2), 5.0)
        offset = _median(cur - gain * ref)
        if abs(gain - 1.0) < 0.01 and abs(offset) < 1.0:
            return 1.0, 0.0
        return gain, offset

    def _threshold(self, warming: bool) -> float:
        setting = self.cfg.pixel_threshold
        floor = self.cfg.min_pixel_threshold
        if isinstance(setting, int):
            return float(setting)
        if setting == "otsu":
            t, _ = cv2.threshold(self.raw_diff, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
            # Otsu always splits the histogram in two, even when there is no motion
            # and both halves are noise; the floor keeps it from thresholding noise.
            return max(float(t), float(floor))
        return max(float(floor), NOISE_K * self._noise(warming))

    def _noise(self, warming: bool) -> float:
        """Robust sigma of the difference image, learned while the scene is quiet."""
        d = self.raw_diff[self.sub]
        # quiet_sub None: every sampled pixel is quiet
        quiet = d if self.quiet_sub is None else d[self.quiet_sub]
        if quiet.size >= 50:
            d = quiet
        elif self.sub_watch is not None:
            d = d[self.sub_watch]
        # The 30th percentile of |N(0, sigma)| is 0.385 sigma; a low percentile
        # stays put when moving things cover a good part of a small watched area.
        sigma = _percentile(d, 30) / 0.385
        if self.noise_sigma is None:
            self.noise_sigma = sigma
        elif warming:
            self.noise_sigma += 0.2 * (sigma - self.noise_sigma)
        elif sigma < 2.0 * self.noise_sigma:
            # Motion inflates the median; only quiet frames may move the floor, slowly.
            self.noise_sigma += 0.01 * (sigma - self.noise_sigma)
        return self.noise_sigma

    def _clean(self, changed: int, threshold: float) -> tuple[list, int]:
        """Join, filter and measure changed regions; leave `mask` = regions that move.

        `self.mask` keeps every region big enough (so none of them is learned
        into the background); the returned count and `self.out` hold only
        regions that moved recently.
        """
        if changed == 0:
            self.out = self.mask
            return [], 0
        if self.cfg.dilate or self.cfg.erode:
            # Only around what changed: grown by how far dilation can spread it plus
            # how far erosion looks, so every pixel that may be set sees the same
            # neighbours as over the whole mask (outside, both see zeros or the edge).
            x, y, w, h = cv2.boundingRect(self.mask)
            pad = (self.cfg.kernel // 2) * (self.cfg.dilate + self.cfg.erode) + 1
            rows, cols = self.mask.shape
            area = self.mask[max(0, y - pad):min(rows, y + h + pad), max(0, x - pad):min(cols, x + w + pad)]
            if self.cfg.dilate:
                cv2.dilate(area, self.kernel, area, iterations=self.cfg.dilate)
            if self.cfg.erode:
                cv2.erode(area, self.kernel, area, iterations=self.cfg.erode)
        if self.watch is not None:
            cv2.bitwise_and(self.mask, self.watch, self.mask)
        # Label only the rectangle around what changed (usually a small part of the
        # picture). Its corner is on even pixels so the 2x2-block labelling numbers
        # regions exactly as over the whole mask, and [::2, ::2] picks the same pixels.
        x, y, w, h = cv2.boundingRect(self.mask)
        if w == 0:
            self.out = self.mask
            return [], 0
        x0, y0 = x & ~1, y & ~1
        roi = (slice(y0, y + h), slice(x0, x + w))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(self.mask[roi], connectivity=8,
                                                               ltype=self.label_type)
        if n <= 1:
            self.out = self.mask
            return [], 0
        stats[:, cv2.CC_STAT_LEFT] += x0
        stats[:, cv2.CC_STAT_TOP] += y0
        areas = stats[:, cv2.CC_STAT_AREA]
        big = areas >= max(1, self.cfg.min_blob_area)
        big[0] = False
        moving = big & (self._moving_pixels(labels, roi, n, threshold)
                        >= np.maximum(MIN_MOVING, MOVING_SHARE * areas))
        moving &= self._evidence(labels, roi, areas, n)
        if self.dyn.k > 0 and self.frames <= self.dyn.settle_frames \
                and np.count_nonzero(big) >= FLOOD_COUNT:
            moving &= self._solid(labels, roi, areas, n)
        large = np.nonzero(moving & (areas >= RELIT_MIN_SHARE * self.watch_area))[0]
        if len(large):
            moving[self._relit(labels, roi, large, n)] = False
        if not self.still_clear:
            moving[self._ghosts(labels, roi, stats, big, n)] = False
        if self.jump_left == self.jump_frames:
            # The jump frame itself: what one gain cannot map flashes up everywhere;
            # only regions that were already moving last frame count.
            moving &= np.bincount(labels[self.prev_out[roi] > 0], minlength=n) > 0
        elif self.jump_left:
            still = big & ~moving
            if still.any():
                self._relearn(self._full(still[labels], roi))
        lut = np.zeros(n, np.uint8)
        if not big[1:].all():
            lut[big] = 255   # drop specks from the mask so they are learned
            self.mask[roi] = lut.take(labels)   # take: half the time of lut[labels]
        if moving[1:].all():
            self.out = self.mask
        else:
            lut[:] = 0
            lut[moving] = 255
            self.out_buf.fill(0)
            self.out_buf[roi] = lut.take(labels)
            self.out = self.out_buf
        keep = np.nonzero(moving)[0]
        total = int(areas[keep].sum())
        order = keep[np.argsort(-stats[keep, cv2.CC_STAT_AREA])][:MAX_BOXES]
        sx = self.src_size[0] / self.det_size[0]
        sy = self.src_size[1] / self.det_size[1]
        boxes = [(int(x * sx), int(y * sy), int(round(w * sx)), int(round(h * sy)))
                 for x, y, w, h in stats[order, :4].tolist()]
        return boxes, total

    def _evidence(self, labels: np.ndarray, roi: tuple[slice, slice], areas: np.ndarray, n: int) -> np.ndarray:
        """Per region: persistent (overlaps last frame's change) and not part of a weather speckle field."""
        before = np.bincount(labels[self.dyn.prev_mask[roi] > 0], minlength=n)
        ok = (before >= PERSIST_SHARE * areas) | (areas >= LARGE_SHARE * self.watch_area)
        small = areas < SMALL_SHARE * self.watch_area
        small[0] = False
        if np.count_nonzero(small & (areas >= self.cfg.min_blob_area)) >= WEATHER_COUNT:
            # Streaks merge into clumps in heavy rain: in weather, clumps count
            # only from WEATHER_SHARE of the picture.
            ok &= areas >= WEATHER_SHARE * self.watch_area
        return ok

    def _solid(self, labels: np.ndarray, roi: tuple[slice, slice], areas: np.ndarray, n: int) -> np.ndarray:
        """Per region: changed pixels (before dilation) fill SOLID_SHARE of it."""
        filled = np.bincount(labels[self.raw_mask[roi] > 0], minlength=n)
        return filled >= SOLID_SHARE * areas

    def _full(self, part: np.ndarray, roi: tuple[slice, slice]) -> np.ndarray:
        """A boolean map over the labelled rectangle as a whole-picture map."""
        full = np.zeros(self.mask.shape, bool)
        full[roi] = part
        return full

    def _moving_pixels(self, labels: np.ndarray, roi: tuple[slice, slice], n: int,
                       threshold: float) -> np.ndarray:
        """Per region: pixels that also differ from the short-term background."""
        recent_u8, tmp, recent = self.recent_u8[roi], self.tmp[roi], self.recent[roi]
        self._express(self.recent_bg[roi], recent_u8)
        cv2.absdiff(self.blurred[roi], recent_u8, tmp)
        cv2.threshold(tmp, threshold, 255, cv2.THRESH_BINARY, recent)
        return np.bincount(labels[recent > 0], minlength=n)

    def _relit(self, labels: np.ndarray, roi: tuple[slice, slice], cand: np.ndarray, n: int) -> np.ndarray:
        """Of the candidate regions, those explained by light (texture kept); marks them for re-learning."""
        pick = np.zeros(n, bool)
        pick[cand] = True
        # Every other row and column is plenty for a correlation over a large region.
        sub = labels[::2, ::2]
        sel = pick[sub]
        lab = sub[sel]
        c = self.blurred[roi][::2, ::2][sel].astype(np.float32)
        b = self.bg_u8[roi][::2, ::2][sel].astype(np.float32)
        k = np.maximum(np.bincount(lab, minlength=n), 1)
        mc, mb = np.bincount(lab, c, n) / k, np.bincount(lab, b, n) / k
        vc = np.bincount(lab, c * c, n) / k - mc * mc
        vb = np.bincount(lab, b * b, n) / k - mb * mb
        cov = np.bincount(lab, c * b, n) / k - mc * mb
        r = cov / np.sqrt(np.maximum(vc * vb, 1e-6))
        relit = pick & (r >= RELIT_R) & (vb >= RELIT_MIN_STD ** 2)
        if relit.any():
            self._relearn(self._full(relit[labels], roi))
        return relit

    def _ghosts(self, labels: np.ndarray, roi: tuple[slice, slice], stats: np.ndarray, big: np.ndarray,
                n: int) -> np.ndarray:
        """Of the regions changed for GHOST_S, those whose outline only the background has; marks them."""
        old = np.bincount(labels[self.still[roi] >= self.ghost_frames], minlength=n)
        cand = np.nonzero(big & (old * 2 >= stats[:, cv2.CC_STAT_AREA]))[0]
        ghost = np.zeros(n, bool)
        rows, cols = labels.shape
        for i in cand:
            x, y, w, h = (int(v) for v in stats[i, :4])
            x -= roi[1].start
            y -= roi[0].start
            box = (slice(max(0, y - 2), min(rows, y + h + 2)), slice(max(0, x - 2), min(cols, x + w + 2)))
            region = (labels[box] == i).view(np.uint8)
            # The outline: a band two pixels each side of the region's edge.
            band = cv2.morphologyEx(region, cv2.MORPH_GRADIENT, self.kernel5) > 0
            full = (slice(roi[0].start + box[0].start, roi[0].start + box[0].stop),
                    slice(roi[1].start + box[1].start, roi[1].start + box[1].stop))
            cur = cv2.morphologyEx(self.blurred[full], cv2.MORPH_GRADIENT, self.kernel3)[band]
            bg = cv2.morphologyEx(self.bg_u8[full], cv2.MORPH_GRADIENT, self.kernel3)[band]
            ghost[i] = float(cur.sum()) < GHOST_EDGE * float(bg.sum())
        if ghost.any():
            # Only what has stayed changed: a walker merged with a ghost keeps their fresh pixels.
            self._relearn(self._full(ghost[labels] & (self.still[roi] >= self.ghost_frames), roi))
        return ghost

    def _learn(self, warming: bool, quiet: bool = False) -> None:
        """Update the background: fast while warming, never under moving things.

        Pixels under the change mask keep their background, so a slow walker is
        not absorbed; a pixel that stays changed for `static_seconds` (a parked
        car) is copied in so it cannot hold an event open forever.
        """
        if self.gain != 1.0 or self.offset != 0.0:
            # Re-express the background in this frame's lighting so it re-baselines at once.
            for model in (self.bg, self.recent_bg):
                model *= self.gain
                model += self.offset
                np.clip(model, 0.0, 255.0, out=model)
        if self.jump_left == self.jump_frames:
            self.recent_bg[:] = self.blurred
        else:
            cv2.accumulateWeighted(self.blurred, self.recent_bg, self.recent_rate)
        self.jump_left = max(0, self.jump_left - 1)
        if self.relit is not None:
            # Light explains these regions: re-learn them now rather than after static_seconds.
            self.bg[self.relit] = self.blurred[self.relit]
            self.still[self.relit] = 0
            self.relit = None
        if warming or self.rebase_left > 0:
            rate = max(self.alpha, 1.0 / min(self.frames, self.warmup_frames)) if warming else 0.5
            cv2.accumulateWeighted(self.blurred, self.bg, rate)
            return
        if quiet:
            # Nothing changed (the usual frame): all of the background learns and
            # no pixel stays changed; the same result without the masks.
            cv2.accumulateWeighted(self.blurred, self.bg, self.alpha)
            if not self.still_clear:
                self.still.fill(0)
                self.still_clear = True
            return
        cv2.bitwise_not(self.mask, self.not_mask)
        cv2.accumulateWeighted(self.blurred, self.bg, self.alpha, self.not_mask)
        # Count frames each pixel has stayed changed; unchanged pixels restart at 0.
        self.still_next[:] = 0
        cv2.add(self.still, self.ones, self.still_next, mask=self.mask)
        self.still_clear = False
        self.still, self.still_next = self.still_next, self.still
        stuck = self.still >= self.static_frames
        if stuck.any():
            self.bg[stuck] = self.blurred[stuck]
            self.still[stuck] = 0

    def _rebaseline(self) -> None:
        """Nothing in this frame can be trusted: adopt it as the new background."""
        self.bg[:] = self.blurred
        self.recent_bg[:] = self.blurred
        self.edge_due = self.shake_due = 0
        self.still[:] = 0
        self.rebase_left = self.rebase_frames


# _lighting's usual answer, "no change" (|gain - 1| < 0.01 and |offset| < 1), told
# from counts instead of its two medians (60 us a frame; the counts take 20): when
# fewer than half the ratios lie at or beyond UNCHANGED_GAIN on either side, the
# median gain is inside it, and the median offset at any gain inside it is bounded
# by the offsets at its two ends (cur - g x ref falls as g rises: ref >= 0). Both
# margins keep float32 rounding of the medians inside (0.99, 1.01) and (-1, 1).
UNCHANGED_GAIN = (0.998, 1.002)
UNCHANGED_OFFSET = 0.999


def _surely_unchanged(cur: np.ndarray, ref: np.ndarray, ratio: np.ndarray) -> bool:
    """True only where `_lighting`'s medians would give gain and offset it rounds to (1, 0)."""
    n = ratio.size
    k = n // 2
    # median > lo needs at most k - 1 values <= lo; median < hi at most n - k - 1 values >= hi
    lo, hi = UNCHANGED_GAIN
    if n < 2 or np.count_nonzero(ratio <= lo) > k - 1 or np.count_nonzero(ratio >= hi) > n - k - 1:
        return False
    if np.count_nonzero(cur - hi * ref <= -UNCHANGED_OFFSET) > k - 1:
        return False
    return np.count_nonzero(cur - lo * ref >= UNCHANGED_OFFSET) <= n - k - 1


# np.median / np.percentile give these exact values but spend more time on their
# checks. The median partitions on two positions: numpy's vectorised one-position
# path degrades on the ties of a still picture (ratios of exactly 1.0) to several
# times the cost (docs/performance.md, 2026-12-05).

def _median(a: np.ndarray) -> float:
    """np.median of a float array we own (reordered in place), as a float."""
    a = a.ravel()
    n = a.size
    if n < 2:
        return float(np.median(a))
    k = n // 2
    a.partition([k - 1, k])
    if n % 2:
        return float(a[k])
    return float((a[k - 1] + a[k]) / 2)


def _percentile(a: np.ndarray, q: float) -> float:
    """np.percentile(a, q) (linear method) of a uint8 array, from its histogram (a third
    of a partition's time; `a` is left as it is)."""
    n = a.size
    if n < 2:
        return float(np.percentile(a, q))
    at = (n - 1) * (q / 100)
    lo = int(np.floor(at))
    # sorted(a)[i] is the first value whose cumulative count exceeds i
    below = np.bincount(a.ravel(), minlength=256).cumsum()
    lo_v, hi_v = (float(v) for v in np.searchsorted(below, (lo + 1, lo + 2)))
    t = at - lo
    step = hi_v - lo_v
    # numpy's lerp, which interpolates from the nearer end
    return hi_v - step * (1 - t) if t >= 0.5 else lo_v + step * t
