"""Turn a camera's mask settings into the 'watch' mask the detector uses.

This is the only place that reads a mask image, so the detector stays free of I/O.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from motionwatch.config import CameraConfig
from motionwatch.errors import ConfigError
from motionwatch.model import detection_size


def watch_mask(cam: CameraConfig, src_size: tuple[int, int], det_size: tuple[int, int],
               base_dir: Path | None = None) -> np.ndarray | None:
    """255 where motion counts, 0 where it is ignored; None when nothing is masked."""
    det_w, det_h = det_size
    full = source_mask(cam, src_size, base_dir)
    if full is None:
        return None
    small = cv2.resize(full, (det_w, det_h), interpolation=cv2.INTER_AREA)
    # A detection pixel is watched only if most of its source pixels are.
    _, small = cv2.threshold(small, 127, 255, cv2.THRESH_BINARY)
    if cv2.countNonZero(small) == 0:
        raise ConfigError(f"cameras[{cam.name}].mask: masks the whole picture; "
                          "allowed: masks that leave some area to watch")
    return small


def source_mask(cam: CameraConfig, src_size: tuple[int, int], base_dir: Path | None = None) -> np.ndarray | None:
    """The watch mask at source resolution (255 watch, 0 ignore); None when nothing is masked."""
    if not cam.mask and not cam.mask_image:
        return None
    src_w, src_h = src_size
    full = np.full((src_h, src_w), 255, np.uint8)
    if cam.mask_image:
        full = _read_mask_image(cam, src_size, base_dir)
    for poly in cam.mask:
        pts = np.round(np.array(poly, np.float64)).astype(np.int32)
        cv2.fillPoly(full, [pts], 0)
    return full


def _read_mask_image(cam: CameraConfig, src_size: tuple[int, int], base_dir: Path | None) -> np.ndarray:
    img = load_mask_image(cam, base_dir)
    if img.shape[1] != src_size[0] or img.shape[0] != src_size[1]:
        img = cv2.resize(img, src_size, interpolation=cv2.INTER_NEAREST)
    _, img = cv2.threshold(img, 127, 255, cv2.THRESH_BINARY)
    return img


def load_mask_image(cam: CameraConfig, base_dir: Path | None) -> np.ndarray:
    """The camera's mask image in grey: a path relative to the working folder, else
    to the config file's folder. ConfigError naming what is wrong otherwise."""
    what = f"cameras[{cam.name}].mask_image: {cam.mask_image!r}"
    allowed = "allowed: a PNG/JPEG/BMP image, black = ignore, white = watch"
    path = Path(cam.mask_image)
    if not path.is_absolute() and base_dir is not None and not _is_file(path):
        path = base_dir / path
    if not _is_file(path):
        folders = dict.fromkeys(str(d.absolute()) for d in (Path.cwd(), base_dir) if d is not None)
        looked = "" if Path(cam.mask_image).is_absolute() else f" (looked in {' and '.join(folders)})"
        raise ConfigError(f"{what} is not a file{looked}; {allowed}")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"{what} cannot be read as an image; {allowed}")
    return img


def check_mask_image(cam: CameraConfig, base_dir: Path | None) -> None:
    """What can be known of a mask image before the picture size is: that it is
    there, is an image, and leaves something to watch."""
    if not cam.mask_image:
        return
    img = load_mask_image(cam, base_dir)
    if cv2.countNonZero(cv2.threshold(img, 127, 255, cv2.THRESH_BINARY)[1]) == 0:
        raise ConfigError(f"cameras[{cam.name}].mask_image: {cam.mask_image!r} is all black and would "
                          "ignore the whole picture; allowed: white where motion counts, black where it is ignored")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):   # a NUL byte or an over-long name
        return False


# --- preview -------------------------------------------------------------------

def draw_preview(image: np.ndarray, cam: CameraConfig, width: int, base_dir: Path | None = None) -> np.ndarray:
    """The frame with ignored areas dimmed and tinted red, polygon outlines and a caption."""
    h, w = image.shape[:2]
    out = image.copy()
    full = source_mask(cam, (w, h), base_dir)
    det_size = detection_size(w, h, width)
    if full is not None:
        # Show what the detector really ignores: the mask at detection size, scaled back.
        small = watch_mask(cam, (w, h), det_size, base_dir)
        seen = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        ignored = seen == 0
        tint = np.empty_like(out)
        tint[:] = (0, 0, 200)
        out[ignored] = cv2.addWeighted(out, 0.35, tint, 0.35, 0)[ignored]
        for poly in cam.mask:
            pts = np.round(np.array(poly, np.float64)).astype(np.int32)
            cv2.polylines(out, [pts], True, (0, 0, 255), max(1, w // 400), cv2.LINE_AA)
        share = cv2.countNonZero(small) / float(small.size)
    else:
        share = 1.0
    text = (f"{cam.name}: watching {100 * share:.0f}% of the picture"
            + (" (red = ignored)" if full is not None else " (no mask)"))
    scale = max(0.4, w / 1400)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), -1)
    cv2.putText(out, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def write_preview(cam: CameraConfig, width: int, frame: np.ndarray, spec: str, out_path: str,
                  base_dir: Path | None = None) -> str:
    """`check-config --preview`: draw `cam`'s mask over `frame` (read from `spec`) into `out_path`."""
    from motionwatch.errors import MotionwatchError
    img = draw_preview(frame, cam, width, base_dir)
    ok = False
    try:
        ok = cv2.imwrite(out_path, img)
    except cv2.error:
        ok = False
    if not ok:
        raise MotionwatchError(f"{out_path}: cannot write the preview (a .png or .jpg path in a writable folder)")
    return f"{out_path}: mask of camera {cam.name!r} drawn over a {img.shape[1]}x{img.shape[0]} frame of {spec}"
