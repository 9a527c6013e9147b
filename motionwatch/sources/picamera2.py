"""`picamera2` / `picamera2:N[:WxH]`: a Raspberry Pi camera through picamera2.

The camera runs two streams at once from the same sensor readout, as
picamera2's own motion examples do: a small YUV420 "lores" stream whose Y
plane (luma) is handed to the detector as `Frame.gray` — no colour conversion
and no resize of the big picture — and the full "main" stream (BGR, what
OpenCV expects; picamera2 calls that byte order RGB888) for snapshots and
clips. picamera2 ships with Raspberry Pi OS (python3-picamera2); a venv needs
`--system-site-packages` to see it.
"""

from __future__ import annotations

import logging
import re

from motionwatch.errors import SourceError
from motionwatch.sources.base import LiveSource, SourceOptions

log = logging.getLogger("motionwatch.picamera")

DEFAULT_MAIN = (1280, 720)
LORES_WIDTH = 320
SPEC = re.compile(r"picamera2(?::(\d+))?(?::(\d+)x(\d+))?")


def parse_spec(spec: str) -> tuple[int, tuple[int, int]]:
    """`picamera2`, `picamera2:1`, `picamera2:0:1920x1080` -> (camera number, main size)."""
    m = SPEC.fullmatch(spec.strip())
    if not m:
        raise SourceError(f"{spec}: not a Pi camera spec; allowed: picamera2, picamera2:N or picamera2:N:WIDTHxHEIGHT")
    num = int(m.group(1) or 0)
    size = (int(m.group(2)), int(m.group(3))) if m.group(2) else DEFAULT_MAIN
    if not (64 <= size[0] <= 9152 and 64 <= size[1] <= 6944):
        raise SourceError(f"{spec}: {size[0]}x{size[1]} is out of range; allowed: 64x64 up to the sensor's size")
    return num, size


def lores_size(main: tuple[int, int], width: int = LORES_WIDTH) -> tuple[int, int]:
    """The detection stream: `width` wide (never wider than main), same aspect, even sides (YUV420)."""
    w = min(width, main[0]) & ~1
    h = max(2, round(main[1] * w / main[0])) & ~1
    return w, h


class PicameraSource(LiveSource):
    kind = "Pi camera"

    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self.number, self.main_size = parse_spec(spec)
        self.lores = lores_size(self.main_size)

    def _connect(self):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError(f"{self.spec}: the picamera2 module is not importable; on Raspberry Pi OS run "
                              "`sudo apt install python3-picamera2` and create the venv with "
                              "`python3 -m venv --system-site-packages`") from None
        found = len(Picamera2.global_camera_info())
        if self.number >= found:
            raise SourceError(f"{self.spec}: no Pi camera number {self.number} (found {found}; "
                              "check the ribbon cable and `rpicam-hello --list-cameras`)")
        cam = None
        try:
            cam = Picamera2(self.number)
            config = cam.create_video_configuration(
                main={"size": self.main_size, "format": "RGB888"},
                lores={"size": self.lores, "format": "YUV420"},
                buffer_count=4)
            cam.configure(config)
            cam.start()
        except Exception as e:  # libcamera reports busy/unsupported cameras as assorted errors
            if cam is not None:
                _quietly(cam.close)
            raise SourceError(f"{self.spec}: cannot start the Pi camera: {e}") from None
        self.size = tuple(cam.camera_config["main"]["size"])
        self.lores = tuple(cam.camera_config["lores"]["size"])
        self.fps = _frame_rate(cam)
        return cam

    def _grab_from(self, cam):
        """One request gives both streams of the same instant; the pair travels as one
        item through the newest-frame slot, so image and luma always match."""
        request = cam.capture_request()
        try:
            main = request.make_array("main")
            yuv = request.make_array("lores")
        finally:
            request.release()
        w, h = self.lores
        return main, yuv[:h, :w]     # rows past h hold U and V; columns past w are stride padding

    def _release(self, cam) -> None:
        _quietly(cam.stop)
        _quietly(cam.close)

    def read(self, timeout: float = 10.0):
        frame = super().read(timeout)
        if frame is not None:
            frame.image, frame.gray = frame.image
        return frame

    def describe(self) -> str:
        return f"Pi camera {self.number} ({self.size[0]}x{self.size[1]}, detecting on " \
               f"{self.lores[0]}x{self.lores[1]} luma)" if self.size else f"Pi camera {self.number}"


def _frame_rate(cam) -> float:
    """Frame rate from the configured frame duration (microseconds), 0 when unknown."""
    try:
        limits = cam.camera_config["controls"]["FrameDurationLimits"]
        return round(1e6 / limits[0], 2) if limits and limits[0] else 0.0
    except (KeyError, TypeError, IndexError):
        return 0.0


def _quietly(fn) -> None:
    try:
        fn()
    except Exception as e:  # closing a camera that already failed may fail again
        log.debug("picamera2: %s", e)

