"""MJPEG-over-HTTP cameras read by MjpegSource, against real servers on loopback:
tests/mjpeg_server.py (a separate process that can be killed, restarted and asked
for a login), a small in-test server that sends parts without Content-Length, and
Python's http.server serving an MP4 that must still go through FFmpeg."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import time

import cv2
import pytest

from conftest import count_sleeps, events_json, mw, wait_until
from live_run import RunProcess, write_config
from mjpeg_server import ServerProcess
from test_clip_jpeg import damage
from motionwatch.config import load_config
from motionwatch.media.jpeg import UNDECODED, JpegFrame, jpeg_size, reduction
from motionwatch.sources.mjpeg import MjpegSource
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sinks.runner import SinkRunner
from motionwatch.sources import open_source
from motionwatch.sources.pyav import AvLiveSource
from motionwatch.sources.scene import Scene, SceneRenderer, write_video

STARTED = r"motion: event \w+ started"


def test_reduction_is_the_largest_that_keeps_the_detection_width():
    assert reduction(640, 320)[0] == 2
    assert reduction(1280, 320)[0] == 4
    assert reduction(1920, 320)[0] == 4      # /8 would leave 240 px
    assert reduction(2560, 320)[0] == 8
    assert reduction(320, 320)[0] == 1
    assert reduction(640, 640)[0] == 1
    jpeg = cv2.imencode(".jpg", SceneRenderer(Scene(width=1280, height=720, duration_s=1)).render(0))[1].tobytes()
    assert jpeg_size(jpeg) == (1280, 720)
    assert jpeg_size(b"not a jpeg") is None


def test_frames_are_decoded_small_and_in_colour_only_when_asked(tmp_path):
    with ServerProcess(fps=15, size="640x480", mode="still") as cam:
        src = open_source(cam.url, timeout=5)
        try:
            assert isinstance(src, MjpegSource)
            assert 10 <= src.fps <= 20, "the rate is learned from the first frames"
            src.detect_width = 160
            frame = src.read(5)
            assert isinstance(frame, JpegFrame)
            assert frame.gray.shape == (120, 160), "640 px wide decoded at 1/4 for a 160 px detector"
            assert frame.size == (640, 480) and src.size == (640, 480)
            assert not frame.decoded
            assert frame.image.shape == (480, 640, 3) and frame.decoded
            assert frame.image is frame.image, "decoded once"
            # the colour picture and the reduced grey are the same picture
            grey = cv2.resize(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY), (160, 120), interpolation=cv2.INTER_AREA)
            assert float(cv2.absdiff(grey, frame.gray).mean()) < 3.0
            # The last frame was wanted in colour: the next is decoded once, in colour, and
            # its grey made from that; one nobody asks for in colour ends that.
            follow = src.read(5)
            assert follow.decoded and not follow.wanted and follow.gray.shape == (120, 160)
            grey = cv2.resize(cv2.cvtColor(follow.image, cv2.COLOR_BGR2GRAY), (160, 120), interpolation=cv2.INTER_AREA)
            assert float(cv2.absdiff(grey, follow.gray).mean()) < 1.0
            assert src.read(5).decoded
            assert not src.read(5).decoded
        finally:
            src.close()


def test_on_demand_the_frame_after_a_shown_one_is_decoded_in_colour_only_if_analysed(tmp_path):
    """As the capture loop opens it (`gray_on_demand`): the live view showed the last
    analysed frame, so the next analysed one is decoded once in colour, its grey shrunk
    from that; a frame in between that nobody analyses is not decoded at all."""
    with ServerProcess(fps=15, size="640x480", mode="still") as cam:
        src = open_source(cam.url, timeout=5, detect_width=160, gray_on_demand=True)
        try:
            shown = src.read(5)
            assert shown.gray.shape == (120, 160) and not shown.decoded
            assert shown.image.shape == (480, 640, 3)
            skipped, analysed = src.read(5), src.read(5)
            assert analysed.gray.shape == (120, 160) and analysed.decoded, "colour first, grey from it"
            assert not skipped.gray_decoded and not skipped.decoded
            after = src.read(5)   # `analysed` was not shown: back to grey only
            assert after.gray.shape == (120, 160) and not after.decoded
        finally:
            src.close()


def ring_after_frames(tmp_path, frames: int, **sections):
    """A capture loop on a still 640x480@15 camera (config `sections`), stopped after
    `frames` frames: the loop and its pre-roll ring as it was then."""
    with ServerProcess(fps=15, size="640x480", mode="still") as cam:
        cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path / "rec",
                                       [{"name": "door", "source": cam.url, "timeout_seconds": 5.0}],
                                       **sections))
        stop = threading.Event()
        sinks = SinkRunner([])
        loop = CameraLoop(cfg.cameras[0], cfg, sinks, stop)
        seen: list[list] = []

        def on_frame(frame, det):
            if loop.status.frames >= frames and not seen:
                seen.append(list(loop.tracker.ring))   # on the capture thread: the ring holds still
        loop.on_frame = on_frame
        t = threading.Thread(target=loop.run_supervised, daemon=True)
        t.start()
        try:
            wait_until(lambda: seen, 30, f"{frames} frames")
        finally:
            stop.set()
            t.join(10)
            sinks.close()
    return loop, seen[0]


def test_preroll_holds_jpeg_bytes_and_nothing_is_decoded_in_colour_without_an_event(tmp_path):
    """Clips on (the default): the pre-roll ring fills with frames that are never decoded in colour."""
    loop, ring = ring_after_frames(tmp_path, 25, events={"pre_roll_seconds": 1.0})
    assert loop.tracker.clip and len(ring) >= 10
    assert all(isinstance(f, JpegFrame) and f.jpeg[:2] == b"\xff\xd8" for f in ring)
    assert not any(f.decoded for f in ring), "no frame was decoded in colour"
    assert loop.status.events == 0


def test_with_clips_on_frames_reach_the_loop_in_batches(tmp_path):
    """A 30 fps camera analysed at 15 (the defaults, clips on): frames wait for the loop
    and are handed out a batch at a time (up to 0.2 s of them), one wake-up for several
    analysed frames, though the clip needs every frame; none is dropped. A wake-up made
    the capture thread's next work dearer than a frame's own (docs/performance.md)."""
    with ServerProcess(fps=30, size="640x480", mode="still") as cam:
        cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path / "rec",
                                       [{"name": "door", "source": cam.url, "timeout_seconds": 5.0}]))
        stop = threading.Event()
        sinks = SinkRunner([])
        loop = CameraLoop(cfg.cameras[0], cfg, sinks, stop)
        src = loop.open()
        wakeups = [0]
        notify_all = src._cond.notify_all

        def counted() -> None:
            wakeups[0] += 1
            notify_all()
        src._cond.notify_all = counted
        sleeps = count_sleeps(src)
        t = threading.Thread(target=loop.run, daemon=True)
        t.start()
        try:
            wait_until(lambda: loop.status.frames >= 90, 30, "90 frames")
        finally:
            stop.set()
            t.join(10)
            sinks.close()
    st = src.stats()
    assert loop.tracker.clip and loop.status.analysed <= 0.6 * st.frames_read
    # None is dropped for being unanalysed; a loop held up on a loaded machine (CI
    # runs two test workers) may lose the odd frame to a newer one.
    assert st.dropped <= max(2, st.frames_read // 20), st
    assert wakeups[0] <= 0.7 * st.frames_read, f"{wakeups[0]} wake-ups for {st.frames_read} frames"
    # One frame in two is analysed: without batches the loop slept once for each.
    assert sleeps[0] <= st.frames_read / 4, f"the loop slept {sleeps[0]} times for {st.frames_read} frames"


def test_frames_not_analysed_are_never_decoded_and_damaged_ones_are_skipped(tmp_path):
    """A 15 fps camera analysed at 5 fps: two frames in three go to the pre-roll as
    JPEG bytes without even their grey decoded; the analysed ones decode grey only."""
    loop, ring = ring_after_frames(tmp_path, 30, events={"pre_roll_seconds": 2.0}, detection={"fps": 5})
    grey = [f for f in ring if f.gray_decoded]
    assert len(ring) >= 20 and all(isinstance(f, JpegFrame) and not f.decoded for f in ring)
    assert len(ring) / 4 <= len(grey) <= len(ring) / 2, f"{len(grey)} of {len(ring)} decoded to grey"
    assert loop.bad_frames == 0
    # A damaged JPEG whose header is whole: a `gray` of None, which the loop skips.
    good = ring[0].jpeg
    bad = JpegFrame(damage(good), UNDECODED, (640, 480), 0, 0.0, 0.0)
    assert bad.gray is None and loop._picture(bad) is None and loop.bad_frames == 1


def test_events_on_a_moving_camera_none_on_a_static_noisy_one_boxes_in_source_pixels(tmp_path):
    """Two cameras in one run: someone keeps crossing one (its left half masked off),
    the other shows an empty, noisy room. Detection runs at 160 px, decoded at 1/4."""
    with ServerProcess(fps=15, size="640x480", mode="motion") as walk, \
            ServerProcess(fps=15, size="640x480", mode="still") as empty:
        rec = tmp_path / "rec"
        cfg = write_config(tmp_path / "c.yaml", rec, [
            {"name": "walk", "source": walk.url, "mask": [[[0, 0], [320, 0], [320, 480], [0, 480]]]},
            {"name": "empty", "source": empty.url}], detection={"width": 160})
        proc = mw("run", "--config", str(cfg), "--duration", "10", timeout=60)
        assert proc.returncode == 0, proc.stderr
        evs = events_json(rec)
        assert evs and all(e["camera"] == "walk" for e in evs), [e["camera"] for e in evs]
        boxes = [b for e in evs for b in e["boxes"]]
        assert boxes
        for x, y, w, h in boxes:
            assert x >= 300 and x + w <= 640 and y + h <= 480, (x, y, w, h)   # the masked left half stays out
        assert max(y + h for x, y, w, h in boxes) > 200, "boxes are in 640x480 source pixels, not 160x120"
        for e in evs:
            event = json.loads((rec / e["snapshot"]).parent.joinpath("event.json").read_text())
            assert event["boxes"] == e["boxes"]
            snap = cv2.imread(str(rec / e["snapshot"]))
            assert snap.shape == (480, 640, 3), "snapshots are full size and in colour"


def test_basic_auth_right_login_reads_wrong_login_is_one_line_exit_1(tmp_path):
    with ServerProcess(fps=10, size="320x240", mode="still", auth="cam:s3cret") as cam:
        url = cam.url.replace("http://", "http://cam:s3cret@")
        src = open_source(url, timeout=5)
        try:
            assert isinstance(src, MjpegSource) and src.read(5) is not None
        finally:
            src.close()
        for login, hint in (("cam:wrongpass@", "wrong user or password"), ("", "wants a login")):
            proc = mw("run", "--source", cam.url.replace("http://", "http://" + login), "--duration", "5",
                      "--recordings", str(tmp_path / "rec"), timeout=60)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 1, out
            assert "cannot open stream" in out and "HTTP 401" in out and hint in out
            assert "wrongpass" not in out, "the password is never shown"
            assert "Traceback" not in out
            assert len([line for line in proc.stderr.splitlines() if "HTTP 401" in line]) == 1


def test_server_killed_then_restarted_is_lost_then_found(tmp_path):
    cam = ServerProcess(fps=10, mode="still").start()
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "rec",
                       [{"name": "door", "source": cam.url, "timeout_seconds": 1.0}])
    run = RunProcess(tmp_path, "--config", str(cfg))
    try:
        run.wait_for(r"door: watching stream")
        run.set_mark()
        cam.kill()
        run.wait_for(r"door: camera lost")
        run.wait_for(r"door: still lost \(.*connection refused")
        cam.start()
        run.wait_for(r"door: camera found again")
        assert run.stop() == 0
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        cam.kill()
    assert "Traceback" not in run.log


def _serve_parts(boundary: str, jpegs: list[bytes], fps: float, part=None) -> tuple[socket.socket, int]:
    """One-client server: a quoted boundary with leading dashes, parts without Content-Length
    (or as `part` makes them from a JPEG)."""
    part = part or (lambda jpeg: b"--" + boundary.encode() + b"\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(f'HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary="{boundary}"\r\n\r\n'
                         .encode())
            for jpeg in jpegs:
                conn.sendall(part(jpeg))
                time.sleep(1 / fps)
    threading.Thread(target=run, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_parts_without_content_length_are_split_at_the_boundary_and_damaged_ones_skipped():
    r = SceneRenderer(Scene(width=320, height=240, duration_s=2, fps=10))
    jpegs = [cv2.imencode(".jpg", r.render(i))[1].tobytes() for i in range(20)]
    damaged = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\xf0\x01\x40" + b"\x00" * 200 + b"\xff\xd9"
    sent = jpegs[:12] + [damaged, jpegs[12], damaged, jpegs[13], damaged] + jpegs[14:]
    srv, port = _serve_parts("--myboundary", sent, 10)
    src = open_source(f"http://127.0.0.1:{port}/", timeout=3)
    try:
        assert isinstance(src, MjpegSource)
        frames = []
        while (f := src.read(3)) is not None:
            frames.append(f)
        assert len(frames) >= 5
        assert all(f.size == (320, 240) and f.gray.shape == (240, 320) for f in frames)
        assert all(f.jpeg in jpegs for f in frames), "each part is exactly one JPEG"
        assert src.ended and src.bad_frames >= 1
    finally:
        src.close()
        srv.close()


def _length_off_by(n: int):
    return lambda jpeg: b"--b\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (len(jpeg) + n) \
        + jpeg + b"\r\n"


@pytest.mark.parametrize("part", [_length_off_by(-2), _length_off_by(-200), _length_off_by(20),
                                  _length_off_by(100), _length_off_by(3000),
                                  lambda jpeg: b"--b\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg,
                                  lambda jpeg: b"--boundarydonotcross\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                  + jpeg + b"\r\n"],
                         ids=["Content-Length 2 short", "200 short", "20 long",
                              "100 long (into the next JPEG)", "3000 long (past the next JPEG's start)",
                              "no Content-Length and the boundary glued to the JPEG",
                              "another boundary than Content-Type names"])
def test_parts_a_camera_sends_a_little_wrong_are_each_one_jpeg(part):
    """Cameras that count a part's Content-Length wrong, leave out the line break
    before the next boundary, or name another boundary than they use: before, every
    JPEG was cut short (undecodable, a blind camera), the stream was dropped for having
    "no multipart boundary", or no part ever ended."""
    r = SceneRenderer(Scene(width=320, height=240, duration_s=2, fps=10))
    jpegs = [cv2.imencode(".jpg", r.render(i))[1].tobytes() for i in range(20)]
    srv, port = _serve_parts("b", jpegs, 20, part)
    src = open_source(f"http://127.0.0.1:{port}/", timeout=3)
    try:
        frames = []
        while (f := src.read(3)) is not None:
            frames.append(f)
        # (The rate is learnt from the first frames, which the reader may drop as stale.)
        assert len(frames) >= 10 and all(f.jpeg in jpegs for f in frames), len(frames)
        assert src.bad_frames == 0
    finally:
        src.close()
        srv.close()


def test_a_video_file_over_http_still_goes_through_ffmpeg(tmp_path):
    # Motion-JPEG in an AVI: JPEG frames too, but a file, not multipart (an MP4 would need
    # Range requests, which http.server does not answer).
    write_video(Scene(width=320, height=240, duration_s=3, fps=10), str(tmp_path / "clip.avi"), "MJPG")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = open_source(f"http://127.0.0.1:{server.server_address[1]}/clip.avi", timeout=5)
        try:
            assert isinstance(src, AvLiveSource) and not isinstance(src, MjpegSource)
            frame = src.read(5)
            assert frame is not None and frame.image.shape == (240, 320, 3)
        finally:
            src.close()
        with pytest.raises(Exception, match=r"cannot open stream: HTTP 404 "):
            open_source(f"http://127.0.0.1:{server.server_address[1]}/missing.mjpg", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
