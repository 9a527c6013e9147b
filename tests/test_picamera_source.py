"""The picamera2 source, against a FAKE picamera2 module.

No Raspberry Pi camera (nor libcamera) exists on the test machine, so this
is the one place the tests use a stand-in: a small `picamera2` package written
to a temporary folder and put on the import path (in-process and, through
PYTHONPATH, for a real `motionwatch run`). It mimics the parts of picamera2's
API the source uses — global_camera_info, create_video_configuration,
configure/start/stop/close, capture_request().make_array("main"/"lores"),
release — and serves a generated room with a person walking through it: main
as BGR ("RGB888"), lores as YUV420 with stride padding, like the real thing.
"""

from __future__ import annotations

import json
import sys
import textwrap

import cv2
import numpy as np
import pytest

from conftest import events_json, mw
from motionwatch.errors import SourceError
from motionwatch.sources.picamera2 import lores_size, parse_spec
from motionwatch.sources import open_source, source_kind

FAKE = textwrap.dedent('''
    """FAKE picamera2 for tests: no Pi camera exists on the test machine."""
    import os, time
    import cv2, numpy as np
    from motionwatch.sources.scene import Scene, SceneRenderer, Walker

    SCENE = Scene(width=640, height=480, fps=10, duration_s=12, seed=2, noise=3.0,
                  walkers=(Walker(3.0, 2.5),))

    class _Request:
        def __init__(self, cam, img):
            self.cam, self.img = cam, img
        def make_array(self, name):
            cfg = self.cam.camera_config[name]
            small = cv2.resize(self.img, tuple(cfg["size"]), interpolation=cv2.INTER_AREA)
            if name == "main":
                return small
            yuv = cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420)
            stride = -(-yuv.shape[1] // 64) * 64          # rows padded to 64 bytes, like libcamera
            return np.pad(yuv, ((0, 0), (0, stride - yuv.shape[1])), constant_values=7)
        def release(self):
            self.cam.released += 1

    class Picamera2:
        @staticmethod
        def global_camera_info():
            return [{"Model": "fake", "Num": i} for i in range(int(os.environ.get("FAKE_PICAMERAS", "1")))]
        def __init__(self, camera_num=0):
            self.num, self.released, self.closed = camera_num, 0, False
            self.renderer = SceneRenderer(SCENE)
        def create_video_configuration(self, main, lores=None, buffer_count=4, **kw):
            assert main["format"] == "RGB888" and lores["format"] == "YUV420"
            return {"main": dict(main), "lores": dict(lores),
                    "controls": {"FrameDurationLimits": (100000, 100000)}}
        def configure(self, config):
            self.camera_config = config
        def start(self):
            self.t0, self.i = time.monotonic(), 0
        def capture_request(self):
            time.sleep(max(0.0, self.t0 + self.i / SCENE.fps - time.monotonic()))
            img = self.renderer.render(self.i % SCENE.frames)
            self.i += 1
            return _Request(self, img)
        def stop(self):
            pass
        def close(self):
            self.closed = True
''')


@pytest.fixture
def fake_picamera2(tmp_path, monkeypatch):
    pkg = tmp_path / "fakemods" / "picamera2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(pkg.parent))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    yield pkg.parent
    sys.modules.pop("picamera2", None)


def test_specs():
    assert source_kind("picamera2") == source_kind("picamera2:1:1920x1080") == "picamera2"
    assert parse_spec("picamera2") == (0, (1280, 720))
    assert parse_spec("picamera2:1:1920x1080") == (1, (1920, 1080))
    assert lores_size((1280, 720)) == (320, 180)
    assert lores_size((200, 150)) == (200, 150)
    with pytest.raises(SourceError, match="allowed: picamera2, picamera2:N"):
        parse_spec("picamera2:front")


def test_detects_on_lores_luma_and_keeps_the_main_picture(fake_picamera2):
    src = open_source("picamera2")
    try:
        assert src.size == (1280, 720) and src.fps == 10.0
        assert "detecting on 320x180 luma" in src.describe()
        frame = src.read(timeout=5)
        assert frame.image.shape == (720, 1280, 3)
        assert frame.gray.shape == (180, 320)          # the Y plane only: no chroma rows, no padding
        expect = cv2.cvtColor(cv2.resize(frame.image, (320, 180), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        # The same picture (YUV's luma is video-range, so compare shape, not levels).
        assert np.corrcoef(frame.gray.ravel(), expect.ravel())[0, 1] > 0.98
    finally:
        src.close()


def test_missing_module_bad_number_and_start_failure(fake_picamera2, monkeypatch):
    with pytest.raises(SourceError, match="no Pi camera number 2 \\(found 1"):
        open_source("picamera2:2")
    import picamera2
    monkeypatch.setattr(picamera2.Picamera2, "start", lambda self: (_ for _ in ()).throw(RuntimeError("Camera in use")))
    with pytest.raises(SourceError, match="cannot start the Pi camera: Camera in use"):
        open_source("picamera2")
    monkeypatch.setitem(sys.modules, "picamera2", None)     # as on a machine without it
    with pytest.raises(SourceError, match="--system-site-packages"):
        open_source("picamera2")


def test_run_records_an_event_from_the_pi_camera(tmp_path, recordings, fake_picamera2):
    cfg = tmp_path / "mw.yaml"
    cfg.write_text("events: {gap_seconds: 1.0, post_roll_seconds: 0.5}\n")
    proc = mw("run", "--source", "picamera2", "--config", str(cfg), "--recordings", str(recordings),
              "--duration", "7", env={"PYTHONPATH": str(fake_picamera2)})
    assert proc.returncode == 0, proc.stderr
    assert "watching Pi camera 0 (1280x720, detecting on 320x180 luma)" in proc.stderr
    events = events_json(recordings)
    assert len(events) == 1, proc.stderr
    ev = events[0]
    assert ev["camera"] == "picamera2"
    assert 2.0 <= ev["start_offset_s"] <= 6.0       # the walker enters at 3 s (live timing: loose)
    saved = json.loads((recordings / ev["snapshot"]).parent.joinpath("event.json").read_text())
    assert saved["frame_size"] == [1280, 720]       # snapshots come from the main stream
    img = cv2.imread(str(recordings / ev["snapshot"]))
    assert img.shape == (720, 1280, 3)
