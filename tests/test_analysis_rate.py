"""detection.fps on a video file scanned by the real capture loop: which frames are
analysed, and the rate the detector converts its time constants with."""

from __future__ import annotations

import threading

import pytest

from motionwatch.config import CameraConfig, Config, DetectionConfig, RecordingsConfig
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sinks.runner import SinkRunner
from motionwatch.sources.scene import Scene, write_video


@pytest.mark.parametrize("fps, limit, every, rate", [(30, 10, 1, 10.0), (25, 10, 1, 25 / 3), (25, 15, 1, 12.5),
                                                     (25, 15, 3, 25 / 3)])
def test_frames_analysed_and_the_rate_the_detector_is_told(tmp_path, fps, limit, every, rate):
    """A 30 fps file at fps 10: every third frame (float rounding once made every third
    step wait a frame longer). A 25 fps file at fps 10: every third frame too, so the
    detector counts 8.3 frames a second, not 10; with `scan --detect-every 3` at fps 15,
    every third frame as well."""
    scene = Scene(width=160, height=120, fps=fps, duration_s=3, seed=2, noise=2.0, walkers=())
    path = write_video(scene, str(tmp_path / "v.avi"))
    cfg = Config(detection=DetectionConfig(fps=float(limit)),
                 recordings=RecordingsConfig(path=str(tmp_path / "rec"), min_free_gb=0.0))
    analysed: list[int] = []
    loop = CameraLoop(CameraConfig(name="cam", source=path), cfg, SinkRunner([]), threading.Event(), scan=True,
                      on_frame=lambda frame, det: analysed.append(frame.index))
    loop.detect_every = every
    loop.run()
    step = round(fps / rate)
    assert analysed == list(range(0, fps * 3, step))
    assert loop.detector.fps == pytest.approx(rate)
