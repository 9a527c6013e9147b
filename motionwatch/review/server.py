"""The web server object: what one `serve` or `run` shares with its routes, and
the uvicorn server that runs them on its own thread and event loop, so camera
threads never wait on a browser (and the server never on a camera).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from pathlib import Path

from motionwatch.config import Config
from motionwatch.errors import MotionwatchError
from motionwatch.index.actions import delete_event, set_kept
from motionwatch.review import api
from motionwatch.pipeline.web_bind import check_bind
from motionwatch.review.auth import Auth
from motionwatch.review.files import static_files
from motionwatch.review.live import LiveHub

log = logging.getLogger("motionwatch.review")

KEEP_ALIVE_SECONDS = 5      # an idle keep-alive connection is closed after this long
SHUTDOWN_SECONDS = 2        # open MJPEG streams get this long to end when the server stops
START_SECONDS = 15.0


class WebServer:
    """Review UI over a recordings folder; with `loops`, also live view and camera status."""

    def __init__(self, cfg: Config, root: Path, host: str | None = None, port: int | None = None,
                 loops: list | None = None):
        self.cfg = cfg
        self.host = host or cfg.web.host
        self.port = cfg.web.port if port is None else port
        # Refuses an open non-loopback bind, and TLS files that do not load, before anything starts.
        self.auth = Auth(check_bind(cfg.web, self.host))
        self.rec = api.Recordings(root)
        self.static = static_files()
        self.trigger = cfg.detection.trigger_fraction
        self.started = time.time()
        self.loops = {loop.cam.name: loop for loop in (loops or [])}
        self.hub = LiveHub(cfg.web.live_fps) if loops else None
        for loop in loops or []:
            self.hub.attach(loop)
        self._server = None
        self._thread: threading.Thread | None = None

    # -- what routes ask for -------------------------------------------------------------

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
        with self.rec.lock:   # the thread pool shares one SQLite connection
            if action == "delete":
                delete_event(self.rec.root, self.rec.index, event_id)
            else:
                set_kept(self.rec.root, self.rec.index, event_id, action == "keep")

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "WebServer":
        import uvicorn

        from motionwatch.review.app import allowed_hosts, build_app
        from motionwatch.review.protocol import MAX_CONNECTIONS, GuardedH11Protocol
        sock = self._listen()
        web = self.cfg.web
        config = uvicorn.Config(
            build_app(self, allowed_hosts(web, self.host, self.auth.required)),
            http=GuardedH11Protocol, ws="none", loop="asyncio", lifespan="off", log_config=None, access_log=False,
            # uvicorn's 503 rule counts connections too: above our cap it only limits requests in flight.
            # X-Forwarded-For only from the proxies the user names: uvicorn's default believes
            # it from 127.0.0.1, so any local client could be a new "address" per guess.
            proxy_headers=bool(web.trusted_proxies), forwarded_allow_ips=list(web.trusted_proxies) or None,
            server_header=False, limit_concurrency=MAX_CONNECTIONS + 1, timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            ssl_certfile=web.tls_cert, ssl_keyfile=web.tls_key or None)
        config.load()  # here, not on the server thread: a TLS error is the caller's to report
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)  # not one line per malformed request
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="web",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MotionwatchError(f"web: the server on {self.url} did not start (see the log above)")
            time.sleep(0.02)
        log.info("web UI on %s%s", self.url, " (password required)" if self.auth.required else "")
        return self

    def _listen(self) -> socket.socket:
        """Our own listening socket: a clear message when the port is taken, and the
        real port when 0 asked for any."""
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP,
            # and without it every keep-alive answer waits ~40 ms for a delayed ACK.
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host.strip("[]"), self.port))
            sock.listen(128)
        except OSError as e:
            why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise MotionwatchError(f"web: cannot listen on {self.host}:{self.port}: {why} "
                                   "(set web.port / --port to another port)") from None
        self.port = sock.getsockname()[1]
        return sock

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.cfg.web.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}/"

    def wait(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            pass

    def close(self) -> None:
        if self.hub:
            self.hub.close()   # ends every MJPEG stream
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=SHUTDOWN_SECONDS + 3)
        self.rec.close()
