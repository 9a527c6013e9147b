"""Recordings with non-square pixels: a PAL DVD's or an analogue DVR's 720x576 shown
16:9 (sample aspect ratio 64:45), an NTSC one's 720x480 shown 4:3 (8:9). Players
widen or narrow such pictures by the stream's aspect; so must what motionwatch
saves. The clip carries the source's aspect, copied (H.264) or encoded (MPEG-2,
MPEG-4 Part 2); the snapshot, thumbnail, live view and `tune`'s strip are at the
shape a player shows; `frame_size` and `boxes` stay in the stored pixels and `pixel_aspect`
says how to widen them. Checked on `scan` (one core and worker processes) and on a
live MPEG-TS stream over loopback (the clip encoded from the packet ring), with
PyAV reading what was written and ffprobe as the referee of the clip's aspect.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import events_json, mw
from live_run import run_until_an_event_ends
from ts_server import TsServer
from web_support import Proc, free_port
from motionwatch.sources.scene import Scene, Walker, encode_scene, scene_rate
from motionwatch.tune.strip import Peaks, strip

PAL = Scene(width=720, height=576, fps=10, duration_s=12, seed=5, noise=3.0, walkers=(Walker(3.0, 4.0),))
NTSC = Scene(width=720, height=480, fps=10, duration_s=12, seed=6, noise=3.0, walkers=(Walker(3.0, 4.0),))
ENCODERS = {"h264": ("libx264", "mp4"), "mpeg2": ("mpeg2video", "mpegts"), "mpeg4": ("mpeg4", "mp4")}


def write_anamorphic(path: Path, scene: Scene, codec: str, sar: Fraction) -> None:
    """The scene encoded with its pixels tagged `sar` (the codec's own header says it,
    and the MP4's `pasp` box where the container has one)."""
    name, fmt = ENCODERS[codec]
    with av.open(str(path), "w", format=fmt) as out:
        st = out.add_stream(name, rate=scene_rate(scene))
        st.width, st.height, st.pix_fmt = scene.width, scene.height, "yuv420p"
        cc = st.codec_context
        cc.gop_size, cc.bit_rate = 20, 3_000_000
        cc.sample_aspect_ratio = sar
        encode_scene(scene, out, st, 5, 1)


def probed_sar(path: Path) -> str:
    """The clip's sample aspect ratio as ffprobe reads it (N/A when untagged)."""
    return subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "stream=sample_aspect_ratio", "-of", "csv=p=0", str(path)],
                          capture_output=True, text=True, check=True).stdout.strip()


def check_event(rec: Path, stored: tuple[int, int], shown: tuple[int, int], sar: Fraction) -> None:
    """One event whose snapshot is the shown shape and whose clip keeps the stored pictures and the aspect."""
    [ev] = events_json(rec)
    assert ev["frame_size"] == list(stored)
    assert ev["pixel_aspect"] == [sar.numerator, sar.denominator]
    for x, y, w, h in ev["boxes"]:   # stored pixels, as frame_size
        assert 0 <= x and x + w <= stored[0] and 0 <= y and y + h <= stored[1]
    snap = cv2.imread(str(rec / ev["snapshot"]))
    assert (snap.shape[1], snap.shape[0]) == shown
    thumb = cv2.imread(str(rec / ev["thumbnail"]))
    assert abs(thumb.shape[1] / thumb.shape[0] - shown[0] / shown[1]) < 0.02
    clip = rec / ev["clip"]
    with av.open(str(clip)) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "h264"
        assert (st.width, st.height) == stored
        assert st.sample_aspect_ratio == sar
    assert probed_sar(clip) == f"{sar.numerator}:{sar.denominator}"


pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe as the referee")


@pytest.mark.parametrize("scene,codec,sar,shown,jobs", [
    (PAL, "h264", Fraction(64, 45), (1024, 576), "1"),      # copied clip
    (PAL, "mpeg2", Fraction(64, 45), (1024, 576), "1"),     # encoded clip
    (PAL, "mpeg2", Fraction(64, 45), (1024, 576), "2"),     # ... decoded on worker processes
    (NTSC, "mpeg4", Fraction(8, 9), (640, 480), "1"),       # narrower than stored
], ids=["h264-copied", "mpeg2-encoded", "mpeg2-workers", "ntsc-mpeg4"])
def test_a_scan_saves_non_square_pixels_as_a_player_shows_them(tmp_path, scene, codec, sar, shown, jobs):
    name = f"dvr.{'ts' if codec == 'mpeg2' else 'mp4'}"
    write_anamorphic(tmp_path / name, scene, codec, sar)
    proc = mw("scan", name, "--no-progress", "--jobs", jobs, cwd=tmp_path, timeout=120,
              env={"MOTIONWATCH_PARALLEL_MIN_WORK": "0"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    check_event(tmp_path / "recordings", (scene.width, scene.height), shown, sar)


def test_square_pixels_say_no_pixel_aspect(tmp_path):
    """A source tagged 1:1 (or untagged, as most are) is saved as it is stored."""
    write_anamorphic(tmp_path / "cam.mp4", NTSC, "h264", Fraction(1))
    proc = mw("scan", "cam.mp4", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [ev] = events_json(tmp_path / "recordings")
    assert "pixel_aspect" not in ev and ev["frame_size"] == [720, 480]
    snap = cv2.imread(str(tmp_path / "recordings" / ev["snapshot"]))
    assert snap.shape[:2] == (480, 720)


def test_a_live_mpeg2_camera_clip_keeps_its_pixel_aspect(tmp_path):
    """An MPEG-2 stream over loopback (an analogue DVR's encoder): its clip is
    encoded on the sink thread from the packet ring and carries the aspect."""
    write_anamorphic(tmp_path / "dvr.ts", PAL, "mpeg2", Fraction(64, 45))
    server = TsServer(tmp_path / "dvr.ts", PAL.duration_s)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close)
    check_event(rec, (720, 576), (1024, 576), Fraction(64, 45))


def test_tunes_strip_draws_the_peaks_widened():
    """`motionwatch tune`'s strip of peak frames: a 720x576 picture of 64:45 pixels is
    drawn 16:9, as the snapshot is."""
    peaks = Peaks()
    mask = np.zeros((256, 320), np.uint8)
    mask[10:20, 10:20] = 255
    peaks.offer(1.0, 0.01, np.full((576, 720, 3), 100, np.uint8), mask, Fraction(64, 45))
    out = strip(peaks, 680)
    tile_w = 680 - 20
    assert out.shape[0] - 40 == round(tile_w * 9 / 16)


def test_the_live_view_shows_non_square_pixels_widened(tmp_path):
    """`run --web` watching the PAL file as it plays: the live picture is 16:9."""
    write_anamorphic(tmp_path / "dvr.ts", PAL, "mpeg2", Fraction(64, 45))
    port = free_port()
    p = Proc(["run", "--source", str(tmp_path / "dvr.ts"), "--recordings", str(tmp_path / "rec"),
              "--web", f"127.0.0.1:{port}"], port=port)
    try:
        deadline, body = time.monotonic() + 20, b""
        while time.monotonic() < deadline:
            status, _, body = p.request("GET", "/live/dvr.jpg")
            if status == 200 and body[:2] == b"\xff\xd8":
                break
            time.sleep(0.3)
        picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None, body[:200]
        h, w = picture.shape[:2]
        assert abs(w / h - 16 / 9) < 0.02, (w, h)
    finally:
        p.stop()
