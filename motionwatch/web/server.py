"""The web server object: what one `serve` or `run` shares with its request handlers.

Standard library only (ThreadingHTTPServer: one thread per connection, so
many MJPEG viewers and a slow download never hold up each other or capture).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from motionwatch.config import Config
from motionwatch.errors import MotionwatchError
from motionwatch.review_actions import delete_event, set_kept
from motionwatch.web import api
from motionwatch.web.auth import Auth, check_bind
from motionwatch.web.files import static_files
from motionwatch.web.handler import Handler
from motionwatch.web.live import LiveHub

log = logging.getLogger("motionwatch.web")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class WebServer:
    """Review UI over a recordings folder; with `loops`, also live view and camera status."""

    def __init__(self, cfg: Config, root: Path, host: str | None = None, port: int | None = None,
                 loops: list | None = None):
        self.cfg = cfg
        self.host = host or cfg.web.host
        self.port = cfg.web.port if port is None else port
        self.auth = Auth(check_bind(cfg.web, self.host))  # refuses an open non-loopback bind first
        self.rec = api.Recordings(root)
        self.static = static_files()
        self.trigger = cfg.detection.trigger_fraction
        self.started = time.time()
        self.stopping = threading.Event()
        self.loops = {loop.cam.name: loop for loop in (loops or [])}
        self.hub = LiveHub(cfg.web.live_fps) if loops else None
        for loop in loops or []:
            self.hub.attach(loop)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- what handlers ask for -------------------------------------------------------

    def status(self) -> dict:
        return api.status(self.rec, self.cfg, self.loops, self.started)

    def live_state(self) -> dict:
        out = []
        for name, cam in (self.hub.cameras.items() if self.hub else []):
            st = api.camera_status(self.loops[name])
            st["history"] = cam.recent()
            out.append(st)
        return {"cameras": out, "live_fps": self.cfg.web.live_fps}

    def change(self, event_id: str, action: str) -> None:
        """keep / unkeep / delete through the same code as `motionwatch events`."""
        with self.rec.lock:   # the handler threads share one SQLite connection
            if action == "delete":
                delete_event(self.rec.root, self.rec.index, event_id)
            else:
                set_kept(self.rec.root, self.rec.index, event_id, action == "keep")

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "WebServer":
        handler = type("BoundHandler", (Handler,), {"app": self})
        try:
            self._httpd = _Server((self.host, self.port), handler)
        except OSError as e:
            why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise MotionwatchError(f"web: cannot listen on {self.host}:{self.port}: {why} "
                                   "(set web.port / --port to another port)") from None
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="web", daemon=True)
        self._thread.start()
        log.info("web UI on %s%s", self.url, " (password required)" if self.auth.required else "")
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def wait(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            pass

    def close(self) -> None:
        self.stopping.set()
        if self.hub:
            self.hub.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self.rec.close()
