"""MotionDetector on rendered frames: what it must see and what it must ignore."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from motionwatch.config import DetectionConfig
from motionwatch.detect import MotionDetector
from motionwatch.sources.scene import Light, Scene, SceneRenderer, Walker

FPS = 15.0


def run(scene: Scene, cfg: DetectionConfig = DetectionConfig(), watch=None):
    r = SceneRenderer(scene)
    det = MotionDetector(cfg, (scene.width, scene.height), scene.fps, watch)
    return det, [det.update(r.render(i)) for i in range(scene.frames)]


def frames_over(dets, trigger=DetectionConfig().trigger_fraction):
    return [i for i, d in enumerate(dets) if d.ready and d.fraction >= trigger]


def longest_run(dets, trigger=DetectionConfig().trigger_fraction):
    """Most consecutive frames over the trigger: an event needs detection.min_frames of them."""
    best = cur = 0
    for d in dets:
        cur = cur + 1 if d.ready and d.fraction >= trigger else 0
        best = max(best, cur)
    return best


def test_warm_up_reports_nothing_then_becomes_ready():
    scene = Scene(fps=FPS, duration_s=3, seed=2)
    _, dets = run(scene)
    warm = int(DetectionConfig().warmup_seconds * FPS)
    assert not any(d.ready for d in dets[:warm])
    assert all(d.ready for d in dets[warm + 1:])
    assert all(d.fraction == 0 for d in dets)


def test_walker_is_seen_with_boxes_in_source_pixels():
    scene = Scene(fps=FPS, duration_s=8, seed=3, walkers=(Walker(2.0, 5.0, height=0.5),))
    _, dets = run(scene)
    hits = frames_over(dets)
    assert hits and hits[0] / FPS < 2.8
    mid = dets[int(4.5 * FPS)]
    assert mid.boxes, "a walker mid-picture has a box"
    x, y, w, h = mid.boxes[0]
    assert 0 <= x < 640 and 0 <= y < 480 and 20 < h <= 480
    assert mid.mask.shape == (240, 320)


@pytest.mark.parametrize("lights", [
    (Light(3.0, 0.4),),                      # lamp off
    (Light(3.0, 1.5),),                      # exposure jump / IR switch
    (Light(6.0, 1.8, ramp_s=4.0),),          # sunrise-like ramp
])
def test_lighting_changes_are_not_motion(lights):
    scene = Scene(fps=FPS, duration_s=9, seed=4, noise=4.0, lights=lights)
    _, dets = run(scene)
    # The switch frame itself may flash (clipped highlights cannot follow one
    # gain); it is re-learned at once, so it never lasts for min_frames.
    assert longest_run(dets) < DetectionConfig().min_frames


def test_person_walking_in_while_the_light_switches_is_still_seen():
    scene = Scene(fps=FPS, duration_s=8, seed=5, walkers=(Walker(2.0, 4.0, height=0.5),),
                  lights=(Light(2.6, 1.45),))
    _, dets = run(scene)
    after = [i for i in frames_over(dets) if i / FPS > 2.7]
    assert len(after) > 2 * FPS, "the walker stays detected after the light changed"


def test_background_re_baselines_within_a_second_after_a_jump():
    scene = Scene(fps=FPS, duration_s=6, seed=6, lights=(Light(2.0, 0.45),))
    _, dets = run(scene)
    late = dets[int(3.2 * FPS):]
    assert all(d.fraction < 0.001 for d in late)


def test_heavy_noise_raises_the_auto_threshold_and_stays_quiet():
    quiet = Scene(fps=FPS, duration_s=5, seed=7, noise=1.5)
    noisy = replace(quiet, noise=40.0)
    det_q, dq = run(quiet)
    det_n, dn = run(noisy)
    assert longest_run(dq) == 0 and longest_run(dn) == 0
    assert dn[-1].threshold > dq[-1].threshold


def test_fixed_and_otsu_thresholds():
    scene = Scene(fps=FPS, duration_s=6, seed=8, walkers=(Walker(1.5, 4.0, height=0.5),))
    for setting in (25, "otsu"):
        _, dets = run(scene, DetectionConfig(pixel_threshold=setting))
        assert frames_over(dets), setting
        if setting == 25:
            assert dets[-1].threshold == 25
        else:
            assert dets[-1].threshold >= DetectionConfig().min_pixel_threshold


def test_masked_area_is_ignored_and_fraction_uses_the_watched_area():
    scene = Scene(fps=FPS, duration_s=6, seed=9, walkers=(Walker(1.5, 4.0, height=0.5, x_from=0.0, x_to=0.4),))
    watch = np.full((240, 320), 255, np.uint8)
    watch[:, :170] = 0                         # the walker stays in the left 40 %
    _, masked = run(scene, watch=watch)
    assert not frames_over(masked)
    watch2 = np.zeros((240, 320), np.uint8)
    watch2[:, :160] = 255                      # watch only the left half: a bigger share
    _, half = run(scene, watch=watch2)
    _, full = run(scene)
    i = int(3.0 * FPS)
    assert half[i].fraction > 1.5 * full[i].fraction


def test_something_that_arrives_and_stays_is_absorbed_after_static_seconds():
    cfg = DetectionConfig(static_seconds=3.0)
    scene = Scene(fps=FPS, duration_s=12, seed=10,
                  walkers=(Walker(1.5, 10.5, height=0.5, x_from=-0.15, x_to=1.15, stop_at_s=3.0),))
    _, dets = run(scene, cfg)
    hits = frames_over(dets)
    assert hits and hits[0] / FPS < 2.5
    assert all(d.fraction < cfg.trigger_fraction for d in dets[int(8 * FPS):])


def test_a_person_who_stops_stays_a_change_until_static_seconds():
    """Someone standing still is not moving, but must not be learned as their pixels'
    usual variation either: that melted them into the background within ~1.5 s, and
    leaving then fired a second event (a ghost) for the same visit."""
    import cv2
    scene = Scene(fps=FPS, duration_s=10, seed=21,
                  walkers=(Walker(1.5, 9.0, height=0.5, x_from=-0.15, x_to=1.5, stop_at_s=3.5),))
    r = SceneRenderer(scene)
    det = MotionDetector(DetectionConfig(), (640, 480), FPS)
    changed = {}
    for i in range(scene.frames):
        det.update(r.render(i))
        changed[i] = cv2.countNonZero(det.mask)   # every changed region, moving or not
    at_stop, later = changed[int(4.0 * FPS)], changed[int(9.0 * FPS)]
    assert at_stop > 1000 and later > 0.8 * at_stop, (at_stop, later)


def test_reset_starts_a_fresh_warm_up():
    scene = Scene(fps=FPS, duration_s=3, seed=11)
    r = SceneRenderer(scene)
    det = MotionDetector(DetectionConfig(), (640, 480), FPS)
    for i in range(scene.frames):
        d = det.update(r.render(i))
    assert d.ready
    det.reset()
    assert not det.update(r.render(0)).ready


def test_gray_input_matches_bgr_input():
    scene = Scene(fps=FPS, duration_s=4, seed=12, walkers=(Walker(1.0, 3.0, height=0.5),))
    r = SceneRenderer(scene)
    import cv2
    a = MotionDetector(DetectionConfig(), (640, 480), FPS)
    b = MotionDetector(DetectionConfig(), (640, 480), FPS)
    fa, fb = [], []
    for i in range(scene.frames):
        img = r.render(i)
        fa.append(a.update(img).fraction)
        fb.append(b.update(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)).fraction)
    assert np.allclose(fa, fb, atol=0.01)


def _outdoor(**kw) -> Scene:
    return Scene(fps=FPS, duration_s=12, seed=21, **kw)


def test_shaking_camera_is_aligned_not_motion():
    """A camera shaking by a few pixels: the shift is reported and no frame reaches the trigger."""
    _, dets = run(_outdoor(shake_px=6.0))
    ready = [d for d in dets if d.ready]
    assert max(abs(d.shift[0]) + abs(d.shift[1]) for d in ready) > 0.5
    assert longest_run(dets) < DetectionConfig().min_frames


def test_shake_alignment_is_what_keeps_it_quiet():
    """Strong shake (10 px at 640): quiet with alignment, an event's worth of frames without."""
    plain = replace(DetectionConfig(), dynamic_k=0.0)
    _, aligned = run(_outdoor(shake_px=10.0), plain)
    assert longest_run(aligned) < DetectionConfig().min_frames
    _, dets = run(_outdoor(shake_px=10.0), replace(plain, stabilize=False))
    assert longest_run(dets) >= DetectionConfig().min_frames


def test_waving_tree_is_learned_and_a_walker_in_front_is_seen():
    tree = ((200, 100, 220, 250),)
    _, quiet = run(_outdoor(foliage=tree, wind=1.2))
    assert longest_run(quiet[int(3 * FPS):]) < DetectionConfig().min_frames
    _, plain = run(_outdoor(foliage=tree, wind=1.2), replace(DetectionConfig(), dynamic_k=0.0))
    assert longest_run(plain[int(3 * FPS):]) >= DetectionConfig().min_frames, "without dynamic_k the tree fires"
    _, walk = run(_outdoor(foliage=tree, wind=1.2, walkers=(Walker(6.0, 5.0, height=0.5),)))
    hits = [i for i in frames_over(walk) if i >= 3 * FPS]
    assert hits and 6.0 <= hits[0] / FPS <= 7.0


def test_rain_streaks_do_not_count():
    _, dets = run(_outdoor(rain=6.0))
    assert longest_run(dets) < DetectionConfig().min_frames


def test_robust_statistics_equal_numpys():
    """The lighting median and the noise percentile are numpy's values, ties and odd sizes included."""
    from motionwatch.detect.detector import _median, _percentile
    rng = np.random.default_rng(7)
    for n in (2, 3, 4, 5, 50, 51, 3600):
        ties = np.where(rng.random(n) < 0.6, 1.0, rng.normal(1.0, 0.05, n)).astype(np.float32)
        spread = rng.normal(0.0, 3.0, n).astype(np.float32)
        for a in (ties, spread):
            assert _median(a.copy()) == float(np.median(a))
        diffs = rng.integers(0, 12, n).astype(np.uint8)
        assert _percentile(diffs.copy(), 30) == float(np.percentile(diffs, 30))


def test_steady_camera_skips_most_shake_estimates_with_the_same_detections(monkeypatch):
    """A walker in a steady camera: phase correlation runs on few frames, and every
    detection equals the one with it run on every frame that changed."""
    from motionwatch.detect import detector as detector_module
    from motionwatch.detect.dynamic import Dynamics

    calls = []
    align = Dynamics.align
    monkeypatch.setattr(Dynamics, "align", lambda self, *a, **kw: calls.append(1) or align(self, *a, **kw))
    scene = Scene(fps=FPS, duration_s=8, seed=3, walkers=(Walker(2.0, 5.0, height=0.5),))

    def detections() -> list:
        r = SceneRenderer(scene)
        det = MotionDetector(DetectionConfig(), (scene.width, scene.height), scene.fps)
        return [(d.fraction, d.boxes, d.shift, None if d.mask is None else d.mask.copy())
                for d in (det.update(r.render(i)) for i in range(scene.frames))]

    gated = detections()
    gated_calls = len(calls)
    monkeypatch.setattr(detector_module, "SHAKE_JUMP", 0.0)   # any change counts as a jump
    calls.clear()
    every = detections()
    assert gated_calls * 3 < len(calls)
    for a, b in zip(gated, every):
        assert a[:3] == b[:3]
        assert (a[3] is None and b[3] is None) or np.array_equal(a[3], b[3])
