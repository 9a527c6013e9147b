"""The `pipe:` source fed for real by ffmpeg writing MJPEG to stdout, plus the
JPEG splitter on awkward byte streams and the errors a user sees."""

from __future__ import annotations

import os
import shlex
import shutil
import time

import cv2
import numpy as np
import pytest

from conftest import events_json, mw
from motionwatch.errors import SourceError
from motionwatch.sources.pipe import MjpegSplitter, PipeSource
from motionwatch.sources import open_source, source_kind
from motionwatch.sources.scene import Scene, Walker, write_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

FFMPEG_TESTSRC = "pipe:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=15 -f mjpeg -q:v 5 -"


def jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        img[:, : 8 * i] = 255   # each frame different
        out.append(cv2.imencode(".jpg", img)[1].tobytes())
    return out


def with_exif_thumbnail(jpeg: bytes) -> bytes:
    """The same picture with a whole JPEG (with its own FFD9) inside an APP1 segment."""
    thumb = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()
    payload = b"Exif\x00\x00" + thumb
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + app1 + jpeg[2:]


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_splitter_finds_every_frame_whatever_the_chunking(chunk):
    frames = jpegs(4)
    frames[2] = with_exif_thumbnail(frames[2])
    stream = b"garbage before the first frame" + b"".join(frames) + frames[0][:100]
    s = MjpegSplitter()
    got = []
    for i in range(0, len(stream), chunk):
        got += s.feed(stream[i:i + chunk])
    assert got == frames
    assert cv2.imdecode(np.frombuffer(got[2], np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)


def test_reads_live_frames_from_ffmpeg_and_close_ends_the_process():
    assert source_kind(FFMPEG_TESTSRC) == "pipe"
    src = open_source(FFMPEG_TESTSRC)
    try:
        assert isinstance(src, PipeSource) and src.live
        assert src.size == (320, 240)
        frames = [src.read(timeout=5) for _ in range(5)]
        assert all(f is not None and f.image.shape == (240, 320, 3) for f in frames)
        assert [f.index for f in frames] == list(range(5))
        assert frames[-1].ts > frames[0].ts
        pid = src.proc.pid
    finally:
        src.close()
    assert src.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)      # the whole process group is gone
    assert src.read(timeout=0.5) is None


def test_a_stream_that_ends_reports_why_and_reopens():
    src = open_source(FFMPEG_TESTSRC.replace("-re ", "-re -t 1 ").replace("rate=15", "rate=10"))
    n = 0
    while src.read(timeout=5) is not None:
        n += 1
    assert 3 <= n <= 10
    assert src.ended and "ffmpeg exited with code 0" in src.error
    src.close()
    src.open()                  # what the capture loop does on reconnect
    assert src.read(timeout=5) is not None
    src.close()


@pytest.mark.parametrize("spec, message", [
    ("pipe:no-such-camera-tool --mjpeg", "command not found: 'no-such-camera-tool'"),
    ("pipe:", "pipe: needs a command"),
    ("pipe:echo 'unterminated", "cannot split the command"),
    ("pipe:echo not a jpeg", "echo exited with code 0 before sending a picture (it wrote 11 bytes but no JPEG"),
    ("pipe:ffmpeg -loglevel error -f lavfi -i nosuchfilter -f mjpeg -", "ffmpeg exited with code"),
])
def test_bad_commands_are_one_clear_error(spec, message):
    with pytest.raises(SourceError, match=None) as e:
        open_source(spec)
    assert message in str(e.value)


def test_run_records_events_from_a_pipe(tmp_path, recordings):
    scene = Scene(width=320, height=240, fps=10, duration_s=8, seed=4, noise=3.0, walkers=(Walker(3.0, 2.5),))
    video = write_video(scene, str(tmp_path / "walk.mp4"))
    spec = f"pipe:ffmpeg -hide_banner -loglevel error -re -i {shlex.quote(str(video))} -f mjpeg -q:v 4 -"
    cfg = tmp_path / "mw.yaml"
    cfg.write_text("events: {gap_seconds: 1.0, post_roll_seconds: 0.5}\n")
    proc = mw("run", "--source", spec, "--config", str(cfg), "--recordings", str(recordings), "--duration", "7")
    assert proc.returncode == 0, proc.stderr
    assert "watching pipe ffmpeg" in proc.stderr
    events = events_json(recordings)
    assert len(events) == 1, proc.stderr
    ev = events[0]
    assert ev["camera"] == "pipe"
    # Paced by ffmpeg's -re: the walker enters at 3 s of the video (loose: live timing on a busy machine).
    assert 2.0 <= ev["start_offset_s"] <= 6.0
    assert (recordings / ev["snapshot"]).is_file()


def test_missing_command_in_run_is_exit_1_one_line(recordings):
    t0 = time.monotonic()
    proc = mw("run", "--source", "pipe:no-such-camera-tool -o -", "--recordings", str(recordings), "--duration", "5")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "motionwatch: error: pipe: command not found: 'no-such-camera-tool' (give the full path or install it; "
        "no shell is used)")
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 30


def test_pipe_frames_are_decoded_as_far_as_detection_needs():
    """A 1280x720 MJPEG pipe: detection gets grey at 1/4 size straight from the JPEG,
    the full-size colour picture is decoded only when asked for (snapshots, clips)."""
    src = open_source(FFMPEG_TESTSRC.replace("320x240", "1280x720"))
    try:
        src.detect_width = 320
        frame = src.read(timeout=5)
        assert frame is not None and frame.size == (1280, 720)
        assert frame.gray.shape == (180, 320)
        assert not frame.decoded
        assert frame.image.shape == (720, 1280, 3) and frame.decoded
    finally:
        src.close()
