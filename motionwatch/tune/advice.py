"""What `motionwatch tune SOURCE` computes: see what the detector sees, then pick settings.

Replays a file (or records N seconds of a live source) through the real
detector and event tracker, writes a PNG plot of the changed fraction over
time with the trigger line and the events that would be recorded, and prints
suggested `pixel_threshold` / `trigger_fraction` values measured from the
quiet stretches (the noise floor). Drawn with OpenCV only.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from motionwatch.config import Config
from motionwatch.events import EventEnded
from motionwatch.model import Event
from motionwatch.pipeline.camera import camera_stages
from motionwatch.sources import open_source, source_kind
from motionwatch.tune.strip import Peaks, shake_panel, strip

# Suggested trigger = this x the quiet noise floor (99.5th percentile of quiet frames).
TRIGGER_MARGIN = 3.0


@dataclass
class Trace:
    """What the detector said about every analysed frame of a source."""

    fps: float
    ts: list[float] = field(default_factory=list)
    fraction: list[float] = field(default_factory=list)
    ready: list[bool] = field(default_factory=list)
    lighting: list[bool] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    noise_sigma: float | None = None
    threshold: float = 0.0
    raw_fraction: list[float] = field(default_factory=list)   # thresholded pixels, before dilate/erode and the region filter
    shift: list[tuple[float, float]] = field(default_factory=list)
    peaks: Peaks = field(default_factory=Peaks)


@dataclass
class Advice:
    pixel_threshold: int
    trigger_fraction: float
    quiet_frames: int
    quiet_floor: float
    event_peaks: list[float]
    notes: list[str]


def replay_source(cfg: Config, spec: str, seconds: float | None) -> Trace:
    """Run the source through detector + tracker (no recording); stop after `seconds` of source time.

    A file is read as a file (every frame, as fast as it decodes); a live-only
    source (demo, camera, stream, pipe) is watched live for `seconds` of wall-clock
    time, as `run` would see it: its timestamps are wall-clock time."""
    cam = cfg.cameras[0]
    src = open_source(spec, scan=source_kind(spec) == "file", timeout=cam.timeout_seconds)
    trace = Trace(fps=src.fps or 10.0)
    detector = tracker = None
    start = time.monotonic()
    try:
        while True:
            frame = src.read(timeout=cam.timeout_seconds)
            if frame is None or (seconds is not None and frame.ts > seconds):
                break
            if src.live and seconds is not None and time.monotonic() - start > seconds + cam.timeout_seconds:
                break
            if frame.damaged:   # not analysed, as the capture loop does not (media.damage)
                continue
            if detector is None:
                detector, tracker = camera_stages(cfg, cam, frame.size, trace.fps, clip=False, rotation=src.rotation)
                detector.luma_levels = src.luma_levels   # as the capture loop does
            # The decoder's grey when the frame has it: no colour picture is made for tune.
            det = detector.update(frame.gray if frame.gray is not None else frame.image)
            trace.ts.append(frame.ts)
            trace.fraction.append(det.fraction)
            trace.raw_fraction.append(det.raw_fraction)
            trace.shift.append(det.shift)
            trace.peaks.offer(frame.ts, det.fraction, frame.image, det.mask, frame.sar)
            trace.ready.append(det.ready)
            trace.lighting.append(det.lighting_change)
            trace.threshold = det.threshold or trace.threshold
            trace.events += [s.record for s in tracker.feed(frame, det) if isinstance(s, EventEnded)]
    except KeyboardInterrupt:
        print("motionwatch: interrupted; plotting what was read", file=sys.stderr)
    finally:
        src.close()
    if tracker is not None:
        trace.events += [s.record for s in tracker.flush("source ended") if isinstance(s, EventEnded)]
        trace.noise_sigma = detector.noise_sigma
    return trace


def advise(trace: Trace, cfg: Config) -> Advice:
    """Suggested thresholds from the quiet frames (ready, no lighting jump, outside events)."""
    det_cfg = cfg.camera_detection(cfg.cameras[0])
    ts = np.array(trace.ts)
    frac = np.array(trace.fraction)
    quiet = np.array(trace.ready) & ~np.array(trace.lighting)
    pad = max(cfg.events.gap_seconds, 1.0)
    for e in trace.events:
        quiet &= ~((ts >= e.start_offset_s - pad) & (ts <= e.end_offset_s + pad))
    notes = []
    q = frac[quiet]
    floor = float(np.percentile(q, 99.5)) if q.size else 0.0
    peaks = [e.peak_fraction for e in trace.events]
    trigger = max(TRIGGER_MARGIN * floor, 0.001)
    if q.size < 5 * trace.fps:
        notes.append("fewer than 5 s of quiet frames: the noise floor is a rough guess; "
                     "tune on a recording that includes a quiet stretch")
    if peaks and trigger > 0.5 * min(peaks):
        notes.append(f"the quietest event peaks at {100 * min(peaks):.2f}%, close to the noise floor: "
                     "mask what moves but does not matter (trees, a timestamp) rather than raising the trigger")
    sigma = trace.noise_sigma
    if isinstance(det_cfg.pixel_threshold, int):
        pix = det_cfg.pixel_threshold
    elif sigma is not None:
        from motionwatch.detect import NOISE_K
        pix = int(math.ceil(max(det_cfg.min_pixel_threshold, NOISE_K * sigma)))
    else:
        pix = int(math.ceil(trace.threshold or det_cfg.min_pixel_threshold))
    return Advice(pix, round(trigger, 4), int(q.size), floor, peaks, notes)


def report(trace: Trace, cfg: Config, advice: Advice, out: str) -> str:
    det_cfg = cfg.camera_detection(cfg.cameras[0])
    lines = [f"{out}: {len(trace.ts)} frames, {trace.ts[-1]:.1f} s at {trace.fps:g} fps; "
             f"{len(trace.events)} event(s) with trigger_fraction {det_cfg.trigger_fraction:g}"]
    for e in trace.events:
        lines.append(f"  event {e.start_offset_s:7.2f} s - {e.end_offset_s:7.2f} s  "
                     f"(frames {e.start_frame}-{e.end_frame}), peak {100 * e.peak_fraction:.2f}%")
    sigma = "?" if trace.noise_sigma is None else (
        f"{trace.noise_sigma:.1f}" if trace.noise_sigma >= 0.5 else "under 0.5")
    if advice.quiet_frames:
        lines.append(f"noise: sigma {sigma} grey levels; quiet frames stay below {100 * advice.quiet_floor:.3f}% "
                     f"changed (99.5th percentile of {advice.quiet_frames} quiet frames)")
    else:   # a percentile of nothing printed as "below 0.000%" read like a perfect camera
        lines.append(f"noise: sigma {sigma} grey levels; no quiet frame to measure the noise floor on "
                     "(all were warm-up, a lighting change or near an event)")
    lines.append(f"suggested: detection.pixel_threshold: {advice.pixel_threshold}   "
                 f"(auto settles there; 'auto' keeps following the noise)")
    why = f"{TRIGGER_MARGIN:g} x the quiet noise floor, at least 0.001" if advice.quiet_frames else "the least allowed"
    lines.append(f"suggested: detection.trigger_fraction: {advice.trigger_fraction:g}   ({why})")
    lines += [f"note: {n}" for n in advice.notes]
    return "\n".join(lines)


# --- drawing -------------------------------------------------------------------

W, H = 1400, 560
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 70, 60
BLUE, RED, GREY, DARK = (200, 90, 20), (40, 40, 220), (190, 190, 190), (40, 40, 40)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def plot(trace: Trace, cfg: Config, advice: Advice, title: str) -> np.ndarray:
    """Changed fraction over time, trigger line, recorded events, warm-up and lighting jumps."""
    det_cfg = cfg.camera_detection(cfg.cameras[0])
    img = np.full((H, W, 3), 255, np.uint8)
    ts = np.array(trace.ts)
    frac = np.array(trace.fraction)
    t_end = max(float(ts[-1]), 1e-3)
    trig = det_cfg.trigger_fraction
    y_max = _nice(max(2.5 * trig, advice.trigger_fraction * 1.2, float(frac.max()) if frac.size else 0.0))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(t: float) -> int:
        return LEFT + int(round(pw * t / t_end))

    def py(f: float) -> int:
        # Square-root scale: the trigger and the noise floor stay readable next to big peaks.
        return TOP + ph - int(round(ph * math.sqrt(min(max(f, 0.0), y_max) / y_max)))

    for e in trace.events:  # recorded events: shaded spans
        x0, x1 = px(e.start_offset_s), max(px(e.end_offset_s), px(e.start_offset_s) + 2)
        cv2.rectangle(img, (x0, TOP), (x1, TOP + ph), (210, 235, 210), -1)
    ready = np.array(trace.ready)
    if (~ready).any():
        for t in ts[~ready & ~np.array(trace.lighting)]:
            cv2.line(img, (px(t), TOP + ph - 6), (px(t), TOP + ph), GREY, 1)
    for t in ts[np.array(trace.lighting)]:
        cv2.line(img, (px(t), TOP), (px(t), TOP + 12), (0, 170, 230), 2)
    _axes(img, t_end, y_max, px, py)
    if trace.raw_fraction:
        raw = np.stack([LEFT + pw * ts / t_end, [py(f) for f in trace.raw_fraction]], axis=1)
        cv2.polylines(img, [raw.round().astype(np.int32)], False, GREY, 1, cv2.LINE_AA)
    pts = np.stack([LEFT + pw * ts / t_end, [py(f) for f in frac]], axis=1).round().astype(np.int32)
    cv2.polylines(img, [pts], False, BLUE, 1, cv2.LINE_AA)
    _dashed(img, py(trig), RED)
    cv2.putText(img, f"trigger {100 * trig:.2f}%", (W - RIGHT - 170, py(trig) - 6), FONT, 0.5, RED, 1, cv2.LINE_AA)
    if abs(advice.trigger_fraction - trig) > 1e-6:
        _dashed(img, py(advice.trigger_fraction), (0, 140, 0))
        below = advice.trigger_fraction < trig
        cv2.putText(img, f"suggested {100 * advice.trigger_fraction:.2f}%",
                    (LEFT + 8, py(advice.trigger_fraction) + (16 if below else -6)), FONT, 0.5, (0, 140, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(img, title[:110], (LEFT, 28), FONT, 0.65, DARK, 2, cv2.LINE_AA)
    legend = (f"blue: changed share (grey: thresholded pixels before dilate/erode and the region filter)   green bands: {len(trace.events)} event(s)   "
              f"orange ticks: lighting jumps   grey ticks: warm-up")
    cv2.putText(img, legend, (LEFT, 52), FONT, 0.45, DARK, 1, cv2.LINE_AA)
    panels = [img, shake_panel(trace.ts, trace.shift, W, LEFT, RIGHT)]
    peaks = strip(trace.peaks, W)
    if peaks is not None:
        panels.append(peaks)
    return np.vstack(panels)


def _axes(img: np.ndarray, t_end: float, y_max: float, px, py) -> None:
    pw_top, bottom = TOP, H - BOTTOM
    cv2.rectangle(img, (LEFT, pw_top), (W - RIGHT, bottom), DARK, 1)
    step = _nice(t_end / 10)
    t = 0.0
    while t <= t_end + 1e-9:
        x = px(t)
        cv2.line(img, (x, bottom), (x, bottom + 5), DARK, 1)
        cv2.putText(img, f"{t:g}", (x - 12, bottom + 22), FONT, 0.45, DARK, 1, cv2.LINE_AA)
        t += step
    cv2.putText(img, "seconds", (W // 2 - 30, H - 12), FONT, 0.5, DARK, 1, cv2.LINE_AA)
    for k in range(6):
        f = y_max * (k / 5) ** 2
        y = py(f)
        cv2.line(img, (LEFT - 5, y), (LEFT, y), DARK, 1)
        if k:
            cv2.line(img, (LEFT + 1, y), (W - RIGHT - 1, y), (235, 235, 235), 1)
        cv2.putText(img, f"{100 * f:.3g}%", (8, y + 5), FONT, 0.45, DARK, 1, cv2.LINE_AA)


def _dashed(img: np.ndarray, y: int, color) -> None:
    for x in range(LEFT, W - RIGHT, 14):
        cv2.line(img, (x, y), (min(x + 8, W - RIGHT), y), color, 2)


def _nice(v: float) -> float:
    """The next 1/2/5 x 10^k at or above v (axis limits and tick steps)."""
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if m * e >= v - 1e-12:
            return m * e
    return 10 * e
