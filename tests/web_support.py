"""Helpers shared by the web tests: a real `motionwatch serve`/`run` process on a
loopback port, and a recordings folder made by a real `motionwatch scan`."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A motionwatch subprocess serving the web UI; stopped with SIGTERM."""

    def __init__(self, args: list[str], env: dict | None = None, port: int | None = None,
                 ready_timeout: float = 30.0):
        e = dict(os.environ)
        e.pop("MOTIONWATCH_WEB_PASSWORD", None)
        e.update(env or {})
        self.p = subprocess.Popen([sys.executable, "-m", "motionwatch", *args], env=e,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = port
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self.port is None:  # `serve --port 0` prints the URL with the port it got
            line = self.p.stdout.readline()
            m = re.search(r"http://[^:]+:(\d+)/", line)
            if not m:
                self.stop()
                raise AssertionError(f"serve did not print its URL: {line!r} {self.p.stderr.read()}")
            self.port = int(m.group(1))
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise AssertionError(f"exited {self.p.returncode}: {self.p.stderr.read()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("web server did not start listening")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        """Send the path exactly as given (http.client does not normalise '..')."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def get_json(self, path: str, headers: dict | None = None):
        status, _, body = self.request("GET", path, headers=headers)
        assert status == 200, (status, body)
        return json.loads(body)

    def stop(self) -> str:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.stderr.read() if self.p.stderr else ""


def scan_into(video: Path, recordings: Path, camera: str, start: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "motionwatch", "scan", str(video), "--recordings",
                           str(recordings), "--camera", camera, "--start-time", start, "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def add_clip(event_folder: Path, seconds: float = 3.0) -> str:
    """Put a browser-playable H.264 clip in an event folder made by scan and point
    event.json at it (used when the recorder's own clips are not in this build)."""
    clip = event_folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x240:rate=15:duration={seconds}", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(clip)], check=True, timeout=60)
    path = event_folder / "event.json"
    rec = json.loads(path.read_text())
    rec["clip"] = str(clip.relative_to(event_folder.parents[2]))
    path.write_text(json.dumps(rec, indent=2))
    return rec["clip"]


def plays_in_chromium(clip: Path, size: tuple[int, int]) -> None:
    """The clip opened in a real headless Chromium plays past half a second at `size`
    and reports no media error (skipped where Chromium or Playwright is missing)."""
    import pytest
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("chromium is not installed (.ci/run installs it with apt)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(clip.as_uri())
            page.wait_for_function("() => document.querySelector('video') && "
                                   "document.querySelector('video').readyState >= 2", timeout=15000)
            page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; v.play(); }")
            page.wait_for_function("() => document.querySelector('video').currentTime > 0.5", timeout=15000)
            assert page.evaluate("document.querySelector('video').error") is None
            shown = page.evaluate("[document.querySelector('video').videoWidth, "
                                  "document.querySelector('video').videoHeight]")
            assert tuple(shown) == size
        finally:
            browser.close()
