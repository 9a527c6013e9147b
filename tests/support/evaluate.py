"""Score the detector and event tracker against ground truth.

`replay` runs frames through the same detector and tracker the live pipeline
uses and returns the events; `score` matches them to the true visits and
counts what a user would notice: events found, false events, missed visits,
visits split into several events, visits merged into one, and how late each
event started. `pixel_scores` measures the change mask itself on CDnet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from motionwatch.config import CameraConfig, Config
from motionwatch.detect import MotionDetector
from motionwatch.events import EPS, EventEnded
from motionwatch.model import Detection, Event, Frame
from motionwatch.pipeline.camera import analysis_fps, camera_stages
from support.scenes import Case, Clip, MaskSequence, mask_sequences, outside
from motionwatch.sources.scene import SceneRenderer

# An event may start this much before the truth (pre-motion shadows, a peer's
# pre-roll) and still count as the same visit.
EARLY_S = 1.0
LATE_LIMIT_S = 1.0


@dataclass
class Score:
    """One scene's result; `ok` when it meets the issue's bar."""

    name: str
    kind: str
    expected: int
    found: int = 0
    false: int = 0
    missed: int = 0
    split: int = 0
    merged: int = 0
    latencies: list[float] = field(default_factory=list)
    end_errors: list[float] = field(default_factory=list)
    late: int = 0
    note: str = ""

    @property
    def ok(self) -> bool:
        return not (self.false or self.missed or self.split or self.merged or self.late)

    @property
    def latency(self) -> float | None:
        return max(self.latencies) if self.latencies else None


def replay(frames: Iterable[np.ndarray], fps: float, cfg: Config, cam: CameraConfig,
           on_detection: Callable[[Frame, Detection], None] | None = None, model: Callable | None = None
           ) -> list[Event]:
    """Run frames through detector + tracker exactly as the pipeline does; return the events.

    Like the capture loop, at most detection.fps frames a second are analysed.
    `model(detector)` may swap in another detector built from ours (its config,
    sizes and watch mask): how the benchmarks score MOG2 and KNN the same way.
    """
    detector = tracker = None
    frame = None
    events: list[Event] = []
    rate = cfg.camera_detection(cam).fps
    next_ts = 0.0
    for i, image in enumerate(frames):
        if i / fps < next_ts - EPS:
            continue
        next_ts = i / fps + (1.0 / rate if rate else 0.0)
        if detector is None:
            detector, tracker = camera_stages(cfg, cam, (image.shape[1], image.shape[0]),
                                              analysis_fps(fps, rate), clip=False, clip_fps=fps)
            if model is not None:
                detector = model(detector)
        frame = Frame(image, i, i / fps, 1.0e9 + i / fps)
        det = detector.update(image)
        if on_detection is not None:
            on_detection(frame, det)
        events += [s.record for s in tracker.feed(frame, det) if isinstance(s, EventEnded)]
    if tracker is not None:
        events += [s.record for s in tracker.flush("source ended") if isinstance(s, EventEnded)]
    return events


def score(name: str, kind: str, events: list[Event], truth: list[tuple[float, float]],
          gap_seconds: float, tolerance_s: float = LATE_LIMIT_S, end_pad: float | None = None,
          note: str = "", source_end: float = float("inf")) -> Score:
    """Match events to true visits (in seconds). Visits closer than the gap are one visit.

    With `end_pad` the event ends are scored too, against `end + end_pad`: a
    peer tool's event end includes its post-event time, as our clip's end
    includes `events.post_roll_seconds`; neither runs past `source_end`.
    """
    visits: list[list[float]] = []
    for a, b in sorted(truth):
        if visits and a - visits[-1][1] <= gap_seconds:
            visits[-1][1] = max(visits[-1][1], b)
        else:
            visits.append([a, b])
    sc = Score(name, kind, len(visits), found=len(events), note=note)
    spans = [(e.start_offset_s, e.end_offset_s) for e in events]
    hits = [[j for j, (s, e) in enumerate(spans) if s <= b + tolerance_s and e >= a - EARLY_S]
            for a, b in visits]
    for k, ((a, _), js) in enumerate(zip(visits, hits)):
        if js and spans[js[0]][0] < a - EARLY_S and not any(js[0] in h for h in hits[:k]):
            # Already open on nothing (a waving tree) when the visit began: a
            # false event, and the visit is lost inside it.
            hits[k] = js[1:]
    for (a, b), js in zip(visits, hits):
        if not js:
            sc.missed += 1
            continue
        sc.split += len(js) - 1
        lat = spans[js[0]][0] - a
        sc.latencies.append(round(lat, 3))
        if lat > tolerance_s:
            sc.late += 1
        if end_pad is not None:
            err = min(spans[js[-1]][1] + end_pad, source_end) - b
            sc.end_errors.append(round(err, 3))
            if abs(err) > tolerance_s:
                sc.late += 1
    used = [j for js in hits for j in js]
    sc.false = sum(1 for j in range(len(spans)) if j not in used)
    sc.merged = sum(1 for j in set(used) if used.count(j) > 1)
    return sc


def _events_cfg(cfg: Config, gap: float | None) -> Config:
    return cfg if gap is None else replace(cfg, events=replace(cfg.events, gap_seconds=gap))


def run_case(case: Case, cfg: Config, model: Callable | None = None) -> Score:
    """Render a generated scene in memory and score it."""
    cfg = _events_cfg(cfg, case.gap_seconds)
    r = SceneRenderer(case.scene)
    frames = (r.render(i) for i in range(case.scene.frames))
    cam = CameraConfig(name=case.name, source="demo", mask=case.mask)
    events = replay(frames, case.scene.fps, cfg, cam, model=model)
    return score(case.name, case.kind, events, case.truth(), cfg.events.gap_seconds, note=case.note)


def read_video(path: Path) -> tuple[float, Iterator[np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"{path}: cannot be opened")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    return
                yield img
        finally:
            cap.release()
    return fps, frames()


def clip_mask(clip: Clip, size: tuple[int, int]) -> tuple:
    polys = tuple(clip.mask)
    if clip.watch_rect is not None:
        polys += outside(clip.watch_rect, size)
    return polys


def run_clip(clip: Clip, cfg: Config, model: Callable | None = None) -> Score:
    """Scan a real clip and score its events against the frame-range ground truth."""
    cfg = _events_cfg(cfg, clip.gap_seconds)
    if clip.detection:
        cfg = replace(cfg, detection=replace(cfg.detection, **clip.detection))
    fps, frames = read_video(clip.path)
    first = next(frames)
    size = (first.shape[1], first.shape[0])
    cam = CameraConfig(name=clip.name, source=str(clip.path), mask=clip_mask(clip, size))

    def all_frames() -> Iterator[np.ndarray]:
        yield first
        yield from frames
    count = [0]

    def counted() -> Iterator[np.ndarray]:
        for img in all_frames():
            count[0] += 1
            yield img
    events = replay(counted(), fps, cfg, cam, model=model)
    truth = [(a / fps, b / fps) for a, b in clip.truth_frames]
    return score(clip.name, "motion" if truth else "quiet", events, truth, cfg.events.gap_seconds,
                 tolerance_s=clip.tolerance_s,
                 end_pad=(cfg.events.post_roll_seconds if clip.by_peer else 0.0) if truth else None,
                 note=clip.note, source_end=(count[0] - 1) / fps)


def sequence_frames(seq: MaskSequence, last: int) -> Iterator[np.ndarray]:
    """Frames 0..last of a mask sequence (a video or a folder of in*.jpg)."""
    if seq.frames.is_dir():
        for p in sorted(seq.frames.glob("in*.jpg"))[:last + 1]:
            yield cv2.imread(str(p))
        return
    _, frames = read_video(seq.frames)
    for i, img in enumerate(frames):
        if i > last:
            return
        yield img


def mask_scores(seq: MaskSequence, make: Callable[[tuple[int, int], float], object]
                ) -> tuple[float, float, float, int]:
    """CDnet precision, recall and F-measure of a detector's change mask on `seq`.

    `make(size, fps)` builds the detector (ours or a `SubtractorDetector`).
    Ground truth: 255 motion (positive), 0 static and 50 shadow (negative),
    85 outside the ROI and 170 unknown (not counted), as CDnet scores it. A
    frame still warming up counts as an empty mask.
    """
    tp = fp = fn = frames = 0
    det = None
    rng = np.random.default_rng(5)
    for n, img in enumerate(sequence_frames(seq, max(seq.gt))):
        if det is None:
            det = make((img.shape[1], img.shape[0]), seq.fps)
        if seq.jitter_px:
            shift = np.float32([[1, 0, 0], [0, 1, 0]])
            shift[:, 2] = rng.normal(0, seq.jitter_px, 2)
            img = cv2.warpAffine(img, shift, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)
        d = det.update(img)
        if n not in seq.gt:
            continue
        gt = cv2.imread(str(seq.gt[n]), cv2.IMREAD_GRAYSCALE)
        if seq.jitter_px:
            # Shifted with the frame; what comes in from outside is not scored (85).
            gt = cv2.warpAffine(gt, shift, (gt.shape[1], gt.shape[0]), flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=85)
        pred = d.mask if (d.mask is not None and d.ready) else np.zeros(gt.shape, np.uint8)
        if pred.shape != gt.shape:
            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        pos, neg = gt == 255, (gt == 0) | (gt == 50)
        on = pred > 0
        tp += int(np.count_nonzero(on & pos))
        fp += int(np.count_nonzero(on & neg))
        fn += int(np.count_nonzero(~on & pos))
        frames += 1
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    f = 2 * precision * recall / max(precision + recall, 1e-9)
    return precision, recall, f, frames


def pixel_scores(root: Path, cfg: Config, step: int = 1, last: int | None = None) -> tuple[float, float, float, int]:
    """Our detector's CDnet precision, recall and F-measure on CDnet highway under `root`'s parent."""
    seq = next(s for s in mask_sequences(root.parent, step, last) if s.name == "cdnet_highway")
    return mask_scores(seq, lambda size, fps: MotionDetector(cfg.detection, size, fps, None))


def table(scores: list[Score]) -> str:
    """The per-scene table and a total line (Markdown, so docs can show it as is)."""
    head = "| scene | kind | expected | found | false | missed | split | merged | start latency s | result |"
    rows = [head, "|" + "---|" * 10]
    for s in scores:
        lat = "-" if s.latency is None else f"{s.latency:+.2f}"
        if s.end_errors:
            lat += f" (end {max(s.end_errors, key=abs):+.2f})"
        rows.append(f"| {s.name} | {s.kind} | {s.expected} | {s.found} | {s.false} | {s.missed} | {s.split} | "
                    f"{s.merged} | {lat} | {'ok' if s.ok else 'FAIL'} |")
    lats = [v for s in scores for v in s.latencies]
    mean = f"mean {np.mean(lats):+.2f}, max {max(lats):+.2f}" if lats else "-"
    rows.append(f"| **total** ({sum(s.ok for s in scores)}/{len(scores)} ok) | | {sum(s.expected for s in scores)} | "
                f"{sum(s.found for s in scores)} | {sum(s.false for s in scores)} | {sum(s.missed for s in scores)} | "
                f"{sum(s.split for s in scores)} | {sum(s.merged for s in scores)} | {mean} | |")
    return "\n".join(rows)
