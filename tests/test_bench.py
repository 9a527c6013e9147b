"""`motionwatch bench` runs and prints its figures (tests/test_pyav_source.py checks
the pictures the measured decoder gives). Timings are never asserted (the
machine is shared); only that the figures are there and sane."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from motionwatch.bench import make_clip
from tests.conftest import has_encoder, mw


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("bench") / "tiny.mp4", 320, 240, 10.0, fps=25.0)


def test_bench_on_a_file_prints_speed_cpu_ratio_and_memory(tiny_clip):
    p = mw("bench", str(tiny_clip), "--rounds", "1", timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "320x240, 25 fps, 250 frames, h264" in out
    decode = re.search(r"decode only \(PyAV, Y\)\s+([\d.]+)\s+([\d.]+)\s+(\d+) MB", out)
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


def test_bench_measures_an_ogg_theora_file_too(tiny_clip, tmp_path):
    """Theora's empty "repeat the last picture" packets stopped the decode-only run
    ("the decode run failed: ... avcodec_send_packet() returned 22"); an Ogg file has no
    frame count, so its length is told in seconds, not as "0 frames"."""
    import subprocess
    if not has_encoder("libtheora"):
        pytest.skip("this ffmpeg has no libtheora encoder to write the file with")
    ogv = tmp_path / "old.ogv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tiny_clip), "-c:v", "libtheora", "-q:v", "6", str(ogv)],
                   check=True, timeout=120)
    p = mw("bench", str(ogv), "--rounds", "1", timeout=120)
    assert p.returncode == 0 and "failed" not in p.stderr + p.stdout, p.stderr
    assert "320x240, 25 fps, 10.0 s, theora" in p.stdout, p.stdout
    assert re.search(r"decode only \(PyAV, Y\)\s+[\d.]+", p.stdout), p.stdout


def test_bench_without_a_file_generates_one(tmp_path):
    p = mw("bench", "--size", "160x120", "--seconds", "2", "--rounds", "1", cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "generating a 2 s 160x120 clip" in p.stdout
    assert "160x120, 25 fps, 50 frames, h264" in p.stdout
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
