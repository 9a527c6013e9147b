"""Turn a camera's mask settings into the 'watch' mask the detector uses.

This is the only place that reads a mask image, so the detector stays free of I/O.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from motionwatch.config import CameraConfig
from motionwatch.errors import ConfigError


def detection_size(src_w: int, src_h: int, width: int) -> tuple[int, int]:
    """Detection image size: `width` wide (never upscaled), aspect kept, even sizes."""
    w = min(width, src_w)
    h = max(2, int(round(src_h * w / src_w)))
    return max(2, w), h


def watch_mask(cam: CameraConfig, src_size: tuple[int, int], det_size: tuple[int, int],
               base_dir: Path | None = None) -> np.ndarray | None:
    """255 where motion counts, 0 where it is ignored; None when nothing is masked."""
    src_w, src_h = src_size
    det_w, det_h = det_size
    if not cam.mask and not cam.mask_image:
        return None
    full = np.full((src_h, src_w), 255, np.uint8)
    if cam.mask_image:
        full = _read_mask_image(cam, src_size, base_dir)
    for poly in cam.mask:
        pts = np.round(np.array(poly, np.float64)).astype(np.int32)
        cv2.fillPoly(full, [pts], 0)
    small = cv2.resize(full, (det_w, det_h), interpolation=cv2.INTER_AREA)
    # A detection pixel is watched only if most of its source pixels are.
    _, small = cv2.threshold(small, 127, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(small) == 0:
        raise ConfigError(f"cameras[{cam.name}].mask: masks the whole picture; "
                          "allowed: masks that leave some area to watch")
    return small


def _read_mask_image(cam: CameraConfig, src_size: tuple[int, int], base_dir: Path | None) -> np.ndarray:
    path = Path(cam.mask_image)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"cameras[{cam.name}].mask_image: {cam.mask_image!r} cannot be read; "
                          "allowed: a PNG/JPEG/BMP image, black = ignore, white = watch")
    if img.shape[1] != src_size[0] or img.shape[0] != src_size[1]:
        img = cv2.resize(img, src_size, interpolation=cv2.INTER_NEAREST)
    _, img = cv2.threshold(img, 127, 255, cv2.THRESH_BINARY)
    return img
