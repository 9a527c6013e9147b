"""Several cameras in one `run`: the demo plus a real MJPEG stream served over
loopback HTTP by the test. Killing the stream never stops the demo camera, the
camera_lost/camera_found hooks fire for the stream, and a camera that cannot
open at start does not keep the others from recording."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2

from conftest import events_json, mw, wait_until
from motionwatch.sources.scene import Scene, SceneRenderer, Walker

# A person crosses at 6 s and at 12 s of the stream's own time.
STREAM_SCENE = Scene(width=320, height=240, fps=10, duration_s=20, seed=7, noise=3.0,
                     walkers=(Walker(6.0, 3.0), Walker(12.0, 3.0, x_from=1.15, x_to=-0.15)))


class MjpegStream:
    """An IP camera's MJPEG endpoint (multipart/x-mixed-replace) on a loopback port."""

    def __init__(self, port: int = 0):
        self.port = port
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        renderer = SceneRenderer(STREAM_SCENE)
        alive = threading.Event()
        alive.set()
        t0 = time.monotonic()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while alive.is_set():
                    due = t0 + i / STREAM_SCENE.fps
                    time.sleep(max(0.0, due - time.monotonic()))
                    ok, jpg = cv2.imencode(".jpg", renderer.render(i % STREAM_SCENE.frames))
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg.tobytes() + b"\r\n")
                    except OSError:
                        return
                    i = int((time.monotonic() - t0) * STREAM_SCENE.fps) + 1

            def log_message(self, *_):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._alive = alive
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self) -> None:
        """The camera dies: listening socket closed, open streams cut (no-op when not serving)."""
        if self.server is None:
            return
        self._alive.clear()
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


HOOK = """\
import json, os, sys, time
rec = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"hook": os.environ["MOTIONWATCH_HOOK"], "camera": os.environ["MOTIONWATCH_CAMERA"],
                        "at": time.time(), "stdin": rec}) + "\\n")
"""


def write_config(tmp_path: Path, cameras: list[dict], hook_log: Path | None = None) -> Path:
    cfg = {"cameras": cameras, "events": {"gap_seconds": 1.0, "post_roll_seconds": 0.5}}
    if hook_log is not None:
        script = tmp_path / "hook.py"
        script.write_text(HOOK)
        cmd = [sys.executable, str(script), str(hook_log)]
        cfg["hooks"] = {"on_camera_lost": cmd, "on_camera_found": cmd}
    path = tmp_path / "cams.yaml"
    path.write_text(json.dumps(cfg))   # JSON is YAML
    return path


def hook_calls(path: Path, hook: str | None = None) -> list[dict]:
    """The hook runs logged so far, only those of `hook` when given."""
    calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [c for c in calls if hook is None or c["hook"] == hook]


def start_run(cfg: Path, recordings: Path, seconds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "motionwatch", "run", "--config", str(cfg),
                             "--recordings", str(recordings), "--duration", str(seconds)],
                            stderr=subprocess.PIPE, text=True)


def stop_all(proc: subprocess.Popen, stream: MjpegStream) -> None:
    """Whatever happened in the test: no motionwatch and no stream left running."""
    if proc.poll() is None:
        proc.kill()
    stream.kill()


def test_killing_one_stream_never_stops_the_other_camera(tmp_path, recordings):
    stream = MjpegStream()
    stream.start()
    hook_log = tmp_path / "hooks.jsonl"
    cfg = write_config(tmp_path, [{"name": "room", "source": "demo"},
                                  {"name": "door", "source": stream.url, "timeout_seconds": 1.5}], hook_log)
    proc = start_run(cfg, recordings, 17)
    try:
        time.sleep(1.5)
        killed_at = time.time()
        stream.kill()                   # before the demo's first visitor (at 4 s)
        lost = wait_until(lambda: hook_calls(hook_log, "camera_lost"), 15, "the camera_lost hook")
        # While the stream is dead the demo camera records its first visitor (folder made at the start).
        wait_until(lambda: list(recordings.glob("room/*/*")), 20, "a demo event during the outage")
        stream.start()                  # the camera comes back on the same port
        found = wait_until(lambda: hook_calls(hook_log, "camera_found"), 15, "the camera_found hook")
        _, err = proc.communicate(timeout=60)
    finally:
        stop_all(proc, stream)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert lost[0]["camera"] == "door" and lost[0]["stdin"]["connected"] is False
    assert found[0]["camera"] == "door" and found[0]["stdin"]["connected"] is True
    events = events_json(recordings)
    from datetime import datetime
    start = {e["id"]: datetime.fromisoformat(e["start"]).timestamp() for e in events}
    room = [e for e in events if e["camera"] == "room"]
    door = [e for e in events if e["camera"] == "door"]
    # The demo kept recording while the stream was dead...
    assert any(killed_at < start[e["id"]] < found[0]["at"] for e in room), (events, err)
    # ...and the stream recorded again once it was back.
    assert any(start[e["id"]] > found[0]["at"] for e in door), (events, err)
    for e in events:
        assert (recordings / e["snapshot"]).is_file()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/stream.mjpg"


def test_a_camera_that_cannot_open_at_start_does_not_stop_the_others(tmp_path, recordings):
    hook_log = tmp_path / "hooks.jsonl"
    url = dead_url()
    cfg = write_config(tmp_path, [{"name": "room", "source": "demo"}, {"name": "gate", "source": url}], hook_log)
    proc = start_run(cfg, recordings, 7)
    stream = MjpegStream(int(url.split(":")[2].split("/")[0]))
    try:
        wait_until(lambda: hook_calls(hook_log), 10, "the camera_lost hook for the camera that did not open")
        stream.start()                  # the camera comes up later: it is picked up in the background
        found = wait_until(lambda: hook_calls(hook_log, "camera_found"), 10, "the camera_found hook")
        _, err = proc.communicate(timeout=60)
    finally:
        stop_all(proc, stream)
    assert proc.returncode == 0, err
    assert "gate: " in err and "retried in the background" in err
    assert "Traceback" not in err
    assert "room" in [e["camera"] for e in events_json(recordings)]
    calls = hook_calls(hook_log)
    assert (calls[0]["hook"], calls[0]["camera"]) == ("camera_lost", "gate")
    assert found[0]["camera"] == "gate" and found[0]["stdin"]["connected"] is True


def test_when_no_camera_opens_run_fails_with_one_line(tmp_path, recordings):
    cfg = write_config(tmp_path, [{"name": "gate", "source": dead_url()},
                                  {"name": "yard", "source": str(tmp_path / "missing.mp4")}])
    proc = mw("run", "--config", str(cfg), "--recordings", str(recordings), "--duration", "5")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("motionwatch: error: no camera could be opened: gate:")
    assert "yard:" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_a_single_camera_that_cannot_open_is_exit_1(tmp_path, recordings):
    proc = mw("run", "--source", dead_url(), "--recordings", str(recordings), "--duration", "5")
    assert proc.returncode == 1
    assert "cannot open stream" in proc.stderr
