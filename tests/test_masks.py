"""Masks: polygons and mask images become the detector's watch area; the preview draws them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import mw
from motionwatch.config import CameraConfig
from motionwatch.errors import ConfigError
from motionwatch.detect.masks import draw_preview, source_mask, watch_mask
from motionwatch.model import detection_size


def test_no_mask_means_watch_everything():
    assert watch_mask(CameraConfig(), (640, 480), (320, 240)) is None


def test_polygon_is_ignored_at_detection_size():
    cam = CameraConfig(mask=(((0, 0), (320, 0), (320, 480), (0, 480)),))   # left half
    m = watch_mask(cam, (640, 480), (320, 240))
    assert m.shape == (240, 320)
    assert m[:, :158].max() == 0 and m[:, 162:].min() == 255


def test_mask_image_black_is_ignored_and_is_resized(tmp_path: Path):
    img = np.full((240, 320), 255, np.uint8)
    img[:60] = 0                                    # top quarter ignored
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), img)
    cam = CameraConfig(mask_image=str(path), mask=(((600, 400), (640, 400), (640, 480), (600, 480)),))
    full = source_mask(cam, (640, 480))
    assert full.shape == (480, 640)
    assert full[:118].max() == 0 and full[200, 300] == 255
    assert full[470, 630] == 0                       # polygons apply on top of the image


def test_relative_mask_image_is_found_next_to_the_config(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "m.png"), np.full((10, 10), 255, np.uint8))
    cam = CameraConfig(mask_image="m.png", mask=(((0, 0), (10, 0), (10, 10), (0, 10)),))
    assert source_mask(cam, (64, 48), base_dir=tmp_path) is not None


def test_unreadable_mask_image_and_whole_picture_masked_are_config_errors(tmp_path: Path):
    bad = tmp_path / "nope.png"
    bad.write_text("not an image")
    with pytest.raises(ConfigError, match="mask_image"):
        watch_mask(CameraConfig(mask_image=str(bad)), (640, 480), (320, 240))
    everything = CameraConfig(mask=(((0, 0), (640, 0), (640, 480), (0, 480)),))
    with pytest.raises(ConfigError, match="whole picture"):
        watch_mask(everything, (640, 480), (320, 240))


def test_preview_dims_and_tints_the_ignored_area():
    frame = np.full((480, 640, 3), 200, np.uint8)
    cam = CameraConfig(name="door", mask=(((0, 0), (640, 0), (640, 240), (0, 240)),))   # top half
    out = draw_preview(frame, cam, 320)
    top, bottom = out[300 // 2 - 40], out[400]
    assert top[320][2] > top[320][0] + 30, "ignored area is tinted red"
    assert (bottom[320] == 200).all(), "watched area is untouched"
    assert detection_size(640, 480, 320) == (320, 240)


def test_check_config_preview_writes_a_png_from_a_video(tmp_path: Path, two_visits_video):
    video, _ = two_visits_video
    cfg = tmp_path / "cam.yaml"
    cfg.write_text("cameras:\n  - name: hall\n    source: demo\n"
                   "    mask: [[[0, 0], [640, 0], [640, 100], [0, 100]]]\n")
    out = tmp_path / "preview.png"
    proc = mw("check-config", str(cfg), "--preview", str(video), str(out))
    assert proc.returncode == 0, proc.stderr
    img = cv2.imread(str(out))
    assert img.shape[:2] == (480, 640)
    assert "hall" in proc.stdout and "preview.png" in proc.stdout


def test_check_config_preview_bad_input_is_one_line(tmp_path: Path):
    proc = mw("check-config", "--preview", str(tmp_path / "missing.mp4"), str(tmp_path / "o.png"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    frame = tmp_path / "f.png"
    cv2.imwrite(str(frame), np.zeros((48, 64, 3), np.uint8))
    proc = mw("check-config", "--preview", str(frame), str(tmp_path / "no" / "such" / "dir.png"))
    assert proc.returncode == 1 and "cannot write" in proc.stderr
