"""Files, stream URLs and V4L2 cameras through PyAV (sources.pyav).

Detection must see the decoder's own Y plane, checked against the Y plane
ffmpeg writes as raw yuv420p (the referee), on real camera footage tagged
BT.709 limited range and on generated clips tagged and untagged, with an odd
width so the decoder pads its rows. A saved frame's colour picture is that
very frame, also when detection decodes without the deblocking filter
(detection.fast_decode): then it is decoded again in full.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from motionwatch.bench import make_clip
from motionwatch.errors import SourceError
from motionwatch.sources import open_source

from conftest import footage

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg as the referee")

TRAFFIC = "dvrscan_traffic_camera/traffic_camera.mp4"


def ffmpeg_y_planes(path: Path, n: int) -> list[np.ndarray]:
    """The first `n` Y planes as ffmpeg decodes them (raw yuv420p, no range or colour conversion)."""
    with av.open(str(path)) as c:
        w, h = c.streams.video[0].width, c.streams.video[0].height
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", str(n), "-f", "rawvideo",
                          "-pix_fmt", "yuv420p", "-"], capture_output=True, check=True).stdout
    size = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    return [np.frombuffer(out[i * size:i * size + w * h], np.uint8).reshape(h, w) for i in range(n)]


def read_all(src, limit: int | None = None) -> list:
    frames = []
    while limit is None or len(frames) < limit:
        f = src.read()
        if f is None:
            break
        frames.append(f)
    return frames


@pytest.fixture(scope="module", params=["camera-tagged", "untagged"])
def odd_clip(request, tmp_path_factory) -> Path:
    """A generated 642x362 H.264 clip (rows padded by the decoder), tagged or not."""
    return make_clip(tmp_path_factory.mktemp("pyav") / f"odd-{request.param}.mp4", 642, 362, 3.0,
                     camera_tags=request.param == "camera-tagged")


def test_detection_reads_the_true_y_plane_of_a_tagged_camera_file():
    path = footage(TRAFFIC)
    src = open_source(str(path), scan=True)
    try:
        frames = read_all(src, 5)
        assert src.luma_levels is not None, "limited range must be stretched for the thresholds"
    finally:
        src.close()
    for got, want in zip(frames, ffmpeg_y_planes(path, 5)):
        assert got.gray.shape == want.shape and np.array_equal(got.gray, want)
        assert not got.gray.flags["OWNDATA"], "the plane must be a view of the decoder's picture"


def test_y_plane_and_colour_on_demand_of_generated_clips(odd_clip):
    src = open_source(str(odd_clip), scan=True)
    try:
        frames = read_all(src)
    finally:
        src.close()
    assert len(frames) == 75 and frames[0].size == (642, 362)
    for got, want in zip(frames, ffmpeg_y_planes(odd_clip, 75)):
        assert np.array_equal(got.gray, want)
    # Colour only for what is asked, and it is that very frame (OpenCV's BGR of it).
    import cv2
    cap = cv2.VideoCapture(str(odd_clip), cv2.CAP_FFMPEG)
    plain = [cap.read()[1] for _ in range(75)]
    cap.release()
    for i in (70, 3, 40):
        assert np.abs(frames[i].image.astype(int) - plain[i].astype(int)).mean() < 1.0, i


def test_fast_decode_snapshots_are_the_full_decode(odd_clip):
    """skip_loop_filter changes the analysis picture a little; a saved frame is decoded again in full."""
    full = open_source(str(odd_clip), scan=True)
    fast = open_source(str(odd_clip), scan=True, fast_decode=True)
    try:
        a, b = read_all(full), read_all(fast)
    finally:
        full.close()
    try:
        assert len(a) == len(b)
        assert any(not np.array_equal(x.gray, y.gray) for x, y in zip(a, b)), "the filter was not skipped"
        for i in (60, 10, 33):   # out of order, as snapshots of different events are asked for
            assert np.array_equal(b[i].image, a[i].image), f"frame {i} is not the full decode"
    finally:
        fast.close()


def test_damaged_and_non_video_files_say_what_is_wrong(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(SourceError) as e:
        open_source(str(junk), scan=True)
    assert "cannot read any video from it" in str(e.value)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(SourceError) as e:
        open_source(str(fifo), scan=True)
    assert "not a regular file" in str(e.value)


def test_v4l2_camera_through_v4l2loopback():
    """A real V4L2 device needs the v4l2loopback kernel module, which containers rarely have."""
    devices = sorted(Path("/dev").glob("video*"))
    loop = [d for d in devices if "loopback" in (Path("/sys/class/video4linux") / d.name / "name").read_text(
        errors="replace").lower()] if Path("/sys/class/video4linux").exists() else []
    if not loop:
        pytest.skip("no v4l2loopback device: the kernel here offers no /dev/videoN "
                    "(modprobe v4l2loopback needs the module and root on the host)")
    dev = str(loop[0])
    feeder = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
                               "-t", "20", "-pix_fmt", "yuv420p", "-f", "v4l2", dev])
    try:
        src = open_source(dev, timeout=10)
        try:
            f = src.read(timeout=10)
            assert f is not None and f.size == (320, 240) and f.gray.shape == (240, 320)
        finally:
            src.close()
    finally:
        feeder.kill()
        feeder.wait()
