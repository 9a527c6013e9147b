"""The detection scene suite: generated scenes and real clips, each with ground truth.

A `Case` is a generated scene plus what a correct detector must report: no
event at all (`quiet`) or one event per visit (`motion`). `suite(seed)` builds
every kind the detector must handle, with sizes, positions, speeds and rooms
drawn from `seed`, so a run with other seeds is a held-out check of the same
kinds. `Clip` is a real video from ../shared/footage with its ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motionwatch.sources.scene import Light, Scene, Walker
from support.footage import FOOTAGE


@dataclass(frozen=True)
class Case:
    """A generated scene with its expected events."""

    name: str
    kind: str                       # "quiet": no event allowed; "motion": one event per visit
    scene: Scene
    mask: tuple = ()                # polygons (source pixels) to ignore, as cameras[].mask
    gap_seconds: float | None = None  # events.gap_seconds override, None = default
    note: str = ""

    def truth(self) -> list[tuple[float, float]]:
        """Visits in seconds, from the moment a person is actually in the picture."""
        return self.scene.visible_truth() if self.kind == "motion" else []


@dataclass(frozen=True)
class Clip:
    """A real clip with ground truth as frame ranges (inclusive)."""

    name: str
    path: Path
    truth_frames: tuple[tuple[int, int], ...] = ()
    mask: tuple = ()                # polygons to ignore, source pixels
    watch_rect: tuple[int, int, int, int] | None = None  # x, y, w, h: everything else is masked
    gap_seconds: float | None = None
    tolerance_s: float = 1.0        # allowed start/end error against a peer tool's output
    by_peer: bool = True            # truth is a peer tool's events (their ends include its post-event time)
    note: str = ""
    detection: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MaskSequence:
    """Real frames with hand-made per-pixel ground truth for some of them.

    `gt` maps a 0-based frame index to a mask image: 255 changed, 0 and 50
    unchanged, 85 and 170 not scored (CDnet's rules; the I2R masks are 0/255).
    `frames` is a video file or a folder of in*.jpg frames.
    """

    name: str
    frames: Path
    gt: dict
    fps: float
    dynamic: bool = False          # a dynamic-background sequence (the mean-F target)
    note: str = ""
    jitter_px: float = 0.0         # >0: every frame (and its mask) shifted by N(0, jitter_px): camera shake


def outside(rect: tuple[int, int, int, int], size: tuple[int, int]) -> tuple:
    """Mask polygons covering everything outside `rect` (x, y, w, h) of a `size` picture."""
    x, y, w, h = rect
    W, H = size
    polys = []
    for x0, y0, x1, y1 in ((0, 0, W, y), (0, y + h, W, H), (0, y, x, y + h), (x + w, y, W, y + h)):
        if x1 > x0 and y1 > y0:
            polys.append(((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    return tuple(polys)


def _rect_poly(x: int, y: int, w: int, h: int) -> tuple:
    return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


class _Draw:
    """Random choices for one suite, all from one seed."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.seed = seed

    def u(self, a: float, b: float) -> float:
        return float(self.rng.uniform(a, b))

    def walker(self, start: float, dur: float, height: float, **kw) -> Walker:
        left = self.rng.random() < 0.5
        kw.setdefault("shade", int(self.rng.integers(15, 90)))
        kw.setdefault("y", self.u(0.75, 0.95))
        return Walker(start_s=start, duration_s=dur, height=height,
                      x_from=-0.15 if left else 1.15, x_to=1.15 if left else -0.15, **kw)

    def scene(self, k: int, **kw) -> Scene:
        kw.setdefault("noise", self.u(2.5, 6.0))
        kw.setdefault("duration_s", 24.0)
        kw.setdefault("fps", float(self.rng.choice([10.0, 15.0, 25.0])))
        return Scene(width=640, height=480, seed=self.seed * 100 + k, **kw)


def suite(seed: int = 1, gap_seconds: float = 4.0) -> list[Case]:
    """Every scene kind of the issue, drawn from `seed` (other seeds = held-out scenes)."""
    d = _Draw(seed)
    cases: list[Case] = []

    def add(name: str, kind: str, note: str, **kw) -> None:
        mask = kw.pop("mask", ())
        gap = kw.pop("gap", None)
        cases.append(Case(name, kind, d.scene(len(cases), **kw), mask, gap, note))

    # --- no motion: every one of these must give zero events -----------------
    add("noise_low", "quiet", "static room, sensor noise sigma ~1.5", noise=d.u(1.0, 2.0))
    add("noise_mid", "quiet", "static room, sensor noise sigma ~7", noise=d.u(6.0, 8.0))
    add("noise_heavy", "quiet", "static room, heavy noise sigma ~14", noise=d.u(12.0, 16.0))
    add("dark_noisy", "quiet", "dark hallway (25% light) with noise", base_gain=d.u(0.2, 0.35),
        noise=d.u(5.0, 9.0))
    t = d.u(5.0, 8.0)
    add("lights_off_on", "quiet", "lamp off then on again",
        lights=(Light(t, d.u(0.3, 0.5)), Light(t + d.u(5.0, 8.0), 1.0)))
    add("exposure_jump", "quiet", "auto-exposure / IR switch: sudden brighter picture",
        lights=(Light(d.u(5.0, 8.0), d.u(1.3, 1.6)), Light(d.u(15.0, 18.0), d.u(0.8, 1.0))))
    add("sunrise", "quiet", "dawn: light ramps up 3x over ~15 s", base_gain=d.u(0.3, 0.45),
        lights=(Light(d.u(18.0, 22.0), d.u(1.0, 1.2), ramp_s=d.u(12.0, 16.0)),))
    add("clouds", "quiet", "clouds: brightness swings over 1-2 s",
        lights=(Light(6.0, d.u(0.6, 0.75), ramp_s=d.u(1.0, 2.0)), Light(11.0, d.u(1.05, 1.2), ramp_s=d.u(1.0, 2.0)),
                Light(17.0, d.u(0.7, 0.9), ramp_s=d.u(1.0, 2.0))))
    add("flicker", "quiet", "mains / LED flicker, a few per cent", flicker_hz=d.u(0.7, 7.0),
        flicker_amp=d.u(0.03, 0.06))
    sx, sy = int(d.u(40, 400)), int(d.u(40, 200))
    sway = (sx, sy, int(d.u(120, 200)), int(d.u(120, 200)))
    add("tree_masked", "quiet", "swaying bush, masked", sway=sway,
        mask=(_rect_poly(*sway),))
    add("compression", "quiet", "heavy JPEG artefacts (quality ~20) over noise",
        jpeg_quality=int(d.u(12, 30)), noise=d.u(3.0, 6.0))

    # --- motion: one event per visit, starting within 1 s --------------------
    add("walk_big", "motion", "person close to the camera",
        walkers=(d.walker(d.u(4, 8), d.u(3.0, 6.0), d.u(0.6, 0.8)),))
    add("walk_small", "motion", "person far away (~10% of the height)",
        walkers=(d.walker(d.u(4, 8), d.u(6.0, 9.0), d.u(0.09, 0.13), y=d.u(0.55, 0.7)),))
    add("walk_fast", "motion", "running across in ~1.5 s",
        walkers=(d.walker(d.u(4, 8), d.u(1.2, 2.0), d.u(0.4, 0.6)),))
    add("walk_slow", "motion", "slow stroll across in ~15 s",
        walkers=(d.walker(d.u(4, 6), d.u(13.0, 16.0), d.u(0.35, 0.5)),))
    add("low_contrast", "motion", "grey clothes close to the wall colour",
        walkers=(d.walker(d.u(4, 8), d.u(4.0, 6.0), d.u(0.4, 0.6), shade=int(d.u(100, 130))),))
    add("dark_person", "motion", "dark person in a dark, noisy room",
        base_gain=d.u(0.2, 0.3), noise=d.u(4.0, 7.0),
        walkers=(d.walker(d.u(4, 8), d.u(4.0, 6.0), d.u(0.4, 0.6), shade=int(d.u(5, 25))),))
    t1 = d.u(3, 5)
    dur = d.u(3.0, 4.0)
    t2 = t1 + dur + gap_seconds + d.u(2.5, 5.0)
    add("two_visits", "motion", f"two visits with a quiet gap > gap_seconds ({gap_seconds:g} s)",
        walkers=(d.walker(t1, dur, d.u(0.4, 0.6)), d.walker(t2, d.u(3.0, 4.0), d.u(0.4, 0.6))))
    x = d.u(0.3, 0.7)
    add("slow_approach", "motion", "walks slowly toward the camera from far away",
        walkers=(Walker(start_s=d.u(4, 6), duration_s=d.u(10, 14), height=d.u(0.06, 0.1), height_to=d.u(0.6, 0.8),
                        x_from=x, x_to=x + d.u(-0.1, 0.1), y=d.u(0.85, 0.95), shade=int(d.u(20, 70))),))
    t = d.u(5, 8)
    add("enter_light_change", "motion", "lamp switches while the person walks in",
        walkers=(d.walker(t, d.u(4.0, 6.0), d.u(0.4, 0.6)),),
        lights=(Light(t + d.u(0.3, 1.0), float(d.rng.choice([d.u(0.45, 0.6), d.u(1.3, 1.5)]))),))
    add("walk_flicker", "motion", "person under flickering light",
        flicker_hz=d.u(0.7, 7.0), flicker_amp=d.u(0.03, 0.06),
        walkers=(d.walker(d.u(4, 8), d.u(4.0, 6.0), d.u(0.3, 0.5)),))
    add("walk_compressed", "motion", "person in a heavily compressed stream",
        jpeg_quality=int(d.u(15, 30)), walkers=(d.walker(d.u(4, 8), d.u(4.0, 6.0), d.u(0.3, 0.5)),))
    add("walk_noisy", "motion", "person in heavy noise",
        noise=d.u(10.0, 14.0), walkers=(d.walker(d.u(4, 8), d.u(4.0, 6.0), d.u(0.3, 0.5)),))
    sway = (int(d.u(40, 300)), int(d.u(30, 120)), int(d.u(120, 180)), int(d.u(100, 150)))
    add("walk_tree_masked", "motion", "person below a masked swaying bush", sway=sway,
        mask=(_rect_poly(*sway),),
        walkers=(d.walker(d.u(4, 8), d.u(4.0, 6.0), d.u(0.3, 0.4), y=0.97),))
    outdoor_scenes(d, add)
    ghost_scenes(d, add, gap_seconds)
    return cases


def ghost_scenes(d: _Draw, add, gap_seconds: float) -> None:
    """Someone in the picture at start leaves a ghost in the background; someone
    who stops is not a ghost. Drawn after the other kinds so their scenes stay as they were."""
    go = d.u(1.5, 3.0)
    leave = d.u(2.5, 4.0)
    first = Walker(start_s=0.0, duration_s=go + leave, height=d.u(0.4, 0.6), x_from=d.u(0.35, 0.65),
                   x_to=float(d.rng.choice([-0.2, 1.2])), y=d.u(0.8, 0.95), shade=int(d.u(15, 90)), go_at_s=go)
    add("start_ghost", "motion", "a person waiting in view at start walks out; later someone else passes",
        walkers=(first, d.walker(go + leave + gap_seconds + d.u(3.0, 5.0), d.u(3.0, 5.0), d.u(0.35, 0.55))))
    start, walk, stand = d.u(3, 5), d.u(2.0, 3.5), d.u(8.0, 12.0)
    x_stop = d.u(0.3, 0.7)
    # x_to such that the walker is at x_stop when they stop `walk` seconds in.
    x_to = -0.15 + (x_stop + 0.15) * (walk + stand) / walk
    add("stop_and_stand", "motion", "walks in and stands still for 8-12 s, then is gone",
        walkers=(Walker(start_s=start, duration_s=walk + stand, height=d.u(0.4, 0.6), x_from=-0.15, x_to=x_to,
                        stop_at_s=start + walk, shade=int(d.u(15, 90))),))


def outdoor_scenes(d: _Draw, add) -> None:
    """Issue 16: moving backgrounds and weather, each quiet and with a walker
    passing in front of the moving background."""
    def trees() -> tuple:
        n = int(d.rng.integers(1, 3))
        return tuple((int(d.u(20, 640 - 280)), int(d.u(60, 160)), int(d.u(160, 280)), int(d.u(200, 300)))
                     for _ in range(n))

    def water() -> tuple:
        top = int(d.u(200, 260))
        return (0, top, 640, int(d.u(110, 160)))

    def walker() -> tuple:
        return (d.walker(d.u(6, 10), d.u(4.0, 7.0), d.u(0.35, 0.6)),)

    kinds = {
        "foliage": dict(foliage=trees(), wind=d.u(0.8, 1.7)),
        "water": dict(water=water()),
        "rain": dict(rain=d.u(4.0, 9.0)),
        "snow": dict(snow=int(d.u(120, 260))),
        "shake": dict(shake_px=d.u(1.5, 4.0)),
    }
    notes = {"foliage": "trees/bushes moving in gusts", "water": "rippling water band with sparkle",
             "rain": "many thin short-lived streaks", "snow": "slow falling flakes",
             "shake": "camera shake of a few pixels"}
    for kind, kw in kinds.items():
        add(f"{kind}_quiet", "quiet", notes[kind] + ", nobody", **kw)
        add(f"walk_{kind}", "motion", notes[kind] + ", a person walks past in front", walkers=walker(), **kw)


# Quick to run and covering each failure family: the test suite asserts these.
FAST = ("noise_heavy", "lights_off_on", "sunrise", "flicker", "tree_masked", "compression",
        "walk_small", "dark_person", "two_visits", "slow_approach", "enter_light_change")
# The moving-background and weather scenes of issue 16 (outdoor_scenes).
# Ghosts and stopping (ghost_scenes).
GHOSTS = ("start_ghost", "stop_and_stand")
OUTDOOR = tuple(n for k in ("foliage", "water", "rain", "snow", "shake") for n in (f"{k}_quiet", f"walk_{k}"))


def real_clips(root: Path = FOOTAGE) -> list[Clip]:
    """The real clips with ground truth (those present on this machine)."""
    clips = [
        Clip("traffic_camera", root / "dvrscan_traffic_camera" / "traffic_camera.mp4",
             truth_frames=((10, 148), (359, 490), (543, 575)),
             watch_rect=(631, 532, 210, 127), gap_seconds=1.5,
             note="DVR-Scan's own result, ROI only; events 2-3 are 2.1 s apart, so gap 1.5 s"),
        Clip("brightness_change", root / "dvrscan_brightness_change" / "issue53_brightness_change.avi",
             mask=(_rect_poly(10, 35, 280, 55),),
             note="sun comes out, nothing moves (timestamp masked): zero events"),
        # The whole motorway clip is traffic all the time (no ground truth); the
        # top-left corner holds the timestamp over a field where nothing moves,
        # so watching it with the timestamp masked must give zero events.
        Clip("motorway_timestamp", root / "motorway_timestamp" / "video02.avi",
             watch_rect=(0, 0, 90, 46), mask=(_rect_poly(0, 0, 63, 30), _rect_poly(28, 27, 72, 14)),
             note="top-left field with the timestamp masked: zero events"),
        # Issue 16: moving backgrounds. The presenter is in view from the first
        # frame (his visit starts at 0); the sea ripples in every frame.
        Clip("i2r_curtain", root / "i2r_curtain" / "video.mp4", truth_frames=((0, 104),), by_peer=False,
             note="swaying curtain; presenter 0-7 s, then curtain only 7-9 s"),
        Clip("i2r_watersurface", root / "i2r_watersurface" / "video.mp4", truth_frames=((5, 47),), by_peer=False,
             note="rippling sea; a man walks in at 0.33 s (3.2 s clip)"),
        Clip("i2r_escalator", root / "i2r_escalator" / "video.mp4", truth_frames=((0, 173),), by_peer=False,
             mask=(_rect_poly(8, 10, 52, 22), _rect_poly(0, 84, 112, 14)), tolerance_s=1.0,
             note="three escalators run all the time; people 0-11.6 s (±2 frames); OSD clock and text masked"),
    ]
    return [c for c in clips if c.path.exists()]


def _i2r(root: Path, name: str, note: str) -> MaskSequence:
    folder = root / name
    gt = {int(p.stem): p for p in sorted((folder / "gt").glob("*.png"))}
    return MaskSequence(name, folder / "video.mp4", gt, 15.0, dynamic=True, note=note)


def mask_sequences(root: Path = FOOTAGE, cdnet_step: int = 1, cdnet_last: int | None = None) -> list[MaskSequence]:
    """The real sequences with per-pixel ground truth present on this machine."""
    seqs = []
    for name, note in (("i2r_curtain", "indoor, swaying curtain, presenter"),
                       ("i2r_watersurface", "rippling sea, a man walks along the shore")):
        if (root / name / "gt").is_dir():
            seqs.append(_i2r(root, name, note))
    hw = root / "cdnet_highway"
    if (hw / "temporalROI.txt").exists():
        lo, hi = (int(v) for v in (hw / "temporalROI.txt").read_text().split()[:2])
        hi = min(hi, cdnet_last) if cdnet_last else hi
        # CDnet numbers frames from 1: in000470.jpg is 0-based frame 469.
        gt = {n - 1: hw / "groundtruth" / f"gt{n:06d}.png" for n in range(lo, hi + 1, cdnet_step)}
        seqs.append(MaskSequence("cdnet_highway", hw / "input", gt, 25.0, note="motorway, static camera"))
        seqs.append(MaskSequence("cdnet_highway_jitter", hw / "input", gt, 25.0, jitter_px=2.0,
                                 note="the same frames shaken by 2 px (sigma) each: real texture, known shift"))
    return seqs
