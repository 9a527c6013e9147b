"""`motionwatch bench` runs and prints its figures, and the fast file decoder it
measures gives the right pictures. Timings are never asserted (the machine is
shared); only that the figures are there and sane."""

from __future__ import annotations

import re
import subprocess

import cv2
import numpy as np
import pytest

from motionwatch.bench import make_clip
from motionwatch.decode import FileReader, LumaFrame
from tests.conftest import decode_plain, mw, read_frames


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("bench") / "tiny.mp4", 320, 240, 10.0, fps=25.0)


def test_bench_on_a_file_prints_speed_cpu_ratio_and_memory(tiny_clip):
    p = mw("bench", str(tiny_clip), "--rounds", "1", timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "320x240, 25 fps, 250 frames" in out
    decode = re.search(r"decode only \(OpenCV\)\s+([\d.]+)\s+([\d.]+)\s+(\d+) MB", out)
    pipe = re.search(r"motionwatch pipeline\s+([\d.]+)\s+([\d.]+)\s+(\d+) MB", out)
    ratio = re.search(r"ratio pipeline/decode\s+([\d.]+)x\s+([\d.]+)x", out)
    assert decode and pipe and ratio, out
    for m in (decode, pipe):
        fps, cpu_ms, rss = (float(v) for v in m.groups())
        assert fps > 0 and cpu_ms > 0 and 10 < rss < 4000
    assert re.search(r"pipeline: \d+ event\(s\), \d+ capture-loop stall\(s\), detected on the (decoder's luma plane|BGR frames)",
                     out), out
    assert "a capture-loop stall is a frame that kept the loop busy longer than the source's frame interval (1/25 s)" \
        in out, out


def test_bench_without_a_file_generates_one(tmp_path):
    p = mw("bench", "--size", "160x120", "--seconds", "2", "--rounds", "1", cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "generating a 2 s 160x120 clip" in p.stdout
    assert "160x120, 25 fps, 50 frames" in p.stdout
    assert "ratio pipeline/decode" in p.stdout
    assert list(tmp_path.iterdir()) == []  # the generated clip was a temporary


@pytest.mark.parametrize("args, code, message", [
    (["bench", "no-such.mp4"], 1, "no-such.mp4: no such file"),
    (["bench", "--size", "big"], 2, "--size: 'big' is not allowed"),
    (["bench", "--rounds", "0"], 2, "--rounds: 0 is out of range"),
])
def test_bench_bad_input_is_one_clear_line(tmp_path, args, code, message):
    p = mw(*args, cwd=tmp_path, timeout=60)
    assert p.returncode == code
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("container", ["mp4", "h264"])
def test_luma_frames_give_the_exact_colour_frame_on_demand(tiny_clip, tmp_path, container):
    """The scan path decodes the luma plane only; a saved frame's colour picture,
    re-decoded on demand, must be that very frame (checked against a plain decode),
    also in a raw H.264 stream, where seeking does not work."""
    clip = tiny_clip
    if container == "h264":
        clip = tmp_path / "tiny.h264"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(tiny_clip), "-c", "copy", str(clip)], check=True)
    plain = decode_plain(clip)
    reader = FileReader(str(clip), threaded=True)
    try:
        assert reader.luma, "this OpenCV build should hand out the Y plane of H.264"
        frames = read_frames(reader)
        assert len(frames) == len(plain) == 250
        assert all(isinstance(f, LumaFrame) for f in frames)
        grey = cv2.cvtColor(plain[77], cv2.COLOR_BGR2GRAY).astype(np.float32)
        assert np.corrcoef(grey.ravel(), frames[77].gray.ravel().astype(np.float32))[0, 1] > 0.99
        # Out of order and far apart, as snapshots of different events are asked for.
        for i in (220, 3, 77, 78, 249, 60):
            assert np.array_equal(frames[i].image, plain[i]), f"frame {i} came back as another frame"
    finally:
        reader.close()


def test_scan_snapshot_is_in_colour(tiny_clip, tmp_path):
    """The snapshot of a luma-decoded scan is the colour picture, not grey."""
    p = mw("scan", str(tiny_clip), "--recordings", str(tmp_path / "rec"), "--no-progress",
           "--config", str(_noclip(tmp_path)))
    assert p.returncode == 0, p.stderr
    snaps = list((tmp_path / "rec").rglob("snapshot.jpg"))
    assert snaps, p.stdout + p.stderr
    img = cv2.imread(str(snaps[0]))
    assert float(np.abs(img[..., 0].astype(int) - img[..., 2].astype(int)).mean()) > 3.0


def _noclip(tmp_path):
    cfg = tmp_path / "noclip.yaml"
    cfg.write_text("events:\n  clip: false\n")
    return cfg
