"""HTTP request handling: routing, the auth gate, files with Range, JSON, MJPEG.

Every GET only reads. Keep and delete are POSTs that need the session's CSRF
token (header X-CSRF-Token or form field csrf) and, when the browser sends
one, a same-origin Origin header.
"""

from __future__ import annotations

import html
import json
import logging
import re
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, quote, urlsplit

from motionwatch.errors import MotionwatchError
from motionwatch.web import api
from motionwatch.web.auth import COOKIE, SESSION_SECONDS
from motionwatch.web.files import BadRange, Refused, media_path, parse_range

log = logging.getLogger("motionwatch.web")

CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self'; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
CHUNK = 256 * 1024
MAX_BODY = 64 * 1024
BOUNDARY = "mwframe"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle or stalled connections give their thread back
    server_version = "motionwatch"
    sys_version = ""
    app = None  # set by WebServer on a subclass

    # -- plumbing -----------------------------------------------------------------

    def log_message(self, fmt, *args):  # access log only at debug level
        log.debug("%s %s", self.address_string(), fmt % args)

    def _common_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "same-origin")  # no-referrer would make form POSTs say Origin: null
        self.send_header("Content-Security-Policy", CSP)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None,
              cache: str = "no-store") -> None:
        self.send_response(status)
        self._common_headers()
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        if self._wants_json():
            self._json({"error": message}, status)
        else:
            self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def _wants_json(self) -> bool:
        return self.path.startswith("/api/") or "application/json" in self.headers.get("Accept", "")

    def _redirect(self, where: str, headers: dict | None = None) -> None:
        h = {"Location": where}
        h.update(headers or {})
        self._send(303, b"", "text/plain", h)

    # -- entry points --------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            url = urlsplit(self.path)
            self.route, self.params = url.path, dict(parse_qsl(url.query))
            if not self._host_ok():
                return self._error(421, "unknown Host header; use the address the server was started with")
            if self.route.startswith("/static/") or self.route in ("/login", "/favicon.ico"):
                return self._public(method)
            self.session = self._authenticate()
            if self.session is False:
                return self._deny()
            if method == "POST":
                return self._post()
            return self._get()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except api.BadRequest as e:
            self._error(400, str(e))
        except Exception:
            log.exception("web: %s %s failed", method, self.path)
            try:
                self._error(500, "internal error (see the server log)")
            except OSError:
                pass
        finally:
            # A body nobody read would be taken for the next request on this connection.
            if self.headers.get("Content-Length") not in (None, "0") and not self._body_read:
                self.close_connection = True

    # -- auth ------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        """Without a password, answer only to loopback names: a web page whose
        DNS name was rebound to 127.0.0.1 must not read or change anything."""
        app = self.app
        if app.auth.required:
            return True
        host = self.headers.get("Host", "")
        name = re.sub(r":\d+$", "", host).strip("[]").lower()
        return name in ("127.0.0.1", "localhost", "::1", app.host.lower().strip("[]")) or \
            name.startswith("127.")

    def _cookie(self) -> str | None:
        try:
            c = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        return c[COOKIE].value if COOKIE in c else None

    def _authenticate(self):
        """The session (or True for Basic / no password needed); False when refused."""
        auth = self.app.auth
        if not auth.required:
            return True
        s = auth.session(self._cookie())
        if s is not None:
            return s
        header = self.headers.get("Authorization")
        if header:
            client = self.client_address[0]
            if auth.throttled(client):
                return False
            if auth.basic_ok(header):
                return True
            auth.failed(client)
        return False

    def _deny(self) -> None:
        if self.route.startswith(("/api/", "/metrics", "/media/", "/live/")) or self.command == "POST":
            self._send(401, b'{"error": "login required"}', "application/json",
                       {"WWW-Authenticate": 'Basic realm="motionwatch", charset="UTF-8"'})
        else:
            self._redirect("/login?next=" + quote(self.path, safe=""))

    def _csrf_expected(self) -> str:
        s = self.session
        return s.csrf if hasattr(s, "csrf") else self.app.auth.global_csrf

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        if origin is None:  # not sent by non-browser clients; browsers send it on POST
            return True
        return urlsplit(origin).netloc.lower() == self.headers.get("Host", "").lower()

    # -- public routes -----------------------------------------------------------------

    def _public(self, method: str) -> None:
        if self.route == "/login":
            if method == "POST":
                return self._login()
            return self._login_page()
        if self.route == "/favicon.ico":
            return self._static("favicon.svg")
        if method == "POST":
            return self._error(405, "method not allowed")
        return self._static(self.route[len("/static/"):])

    def _login_page(self, error: str = "", status: int = 200) -> None:
        if not self.app.auth.required:
            return self._redirect("/")
        page = self.app.static["login.html"][0].read_text()
        nxt = _safe_next(self.params.get("next", "/"))
        page = page.replace("{{error}}", html.escape(error)).replace("{{next}}", html.escape(nxt, quote=True))
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _login(self) -> None:
        auth = self.app.auth
        if not self._same_origin():
            return self._error(403, "cross-site login refused")
        form = self._form()
        self.params = {"next": form.get("next", "/")}
        client = self.client_address[0]
        if auth.throttled(client):
            return self._login_page("Too many wrong passwords; wait a minute.", 429)
        if not auth.required:
            return self._redirect("/")
        if not auth.password_ok(form.get("password", "")):
            auth.failed(client)
            log.warning("web: wrong password from %s", client)
            return self._login_page("Wrong password.", 401)
        token, _ = auth.new_session()
        cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}"
        self._redirect(_safe_next(form.get("next", "/")), {"Set-Cookie": cookie})

    def _static(self, name: str) -> None:
        hit = self.app.static.get(name)
        if hit is None or name == "login.html":
            return self._error(404, "not found")
        path, ctype = hit
        self._send(200, path.read_bytes(), ctype, cache="no-cache")

    # -- GET ----------------------------------------------------------------------------

    def _get(self) -> None:
        r = self.route
        app = self.app
        if r in ("/", "/index.html"):
            return self._send(200, app.static["index.html"][0].read_bytes(), "text/html; charset=utf-8")
        if r == "/api/session":
            return self._json({"csrf": self._csrf_expected(), "auth": app.auth.required,
                               "mode": "run" if app.loops else "serve",
                               "live": sorted(app.hub.cameras) if app.hub else []})
        if r == "/api/events":
            return self._json(api.events_page(app.rec, self.params))
        m = re.fullmatch(r"/api/events/([^/]+)", r)
        if m:
            ev = api.event_detail(app.rec, m.group(1), app.trigger)
            return self._json(ev) if ev else self._error(404, f"no event {m.group(1)!r}")
        if r == "/api/status":
            return self._json(app.status())
        if r == "/api/live":
            return self._json(app.live_state())
        if r == "/metrics":
            return self._send(200, api.metrics(app.status()).encode(), "text/plain; version=0.0.4; charset=utf-8")
        if r.startswith("/media/"):
            return self._media(r[len("/media/"):])
        m = re.fullmatch(r"/live/([A-Za-z0-9_.-]+)\.(mjpg|jpg)", r)
        if m:
            return self._live(m.group(1), m.group(2))
        return self._error(404, "not found")

    def _media(self, raw: str) -> None:
        try:
            path, ctype = media_path(self.app.rec.root, raw)
        except (Refused, UnicodeDecodeError):
            return self._error(404, "not found")
        size = path.stat().st_size
        try:
            rng = parse_range(self.headers.get("Range"), size)
        except BadRange:
            self.send_response(416)
            self._common_headers()
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = rng if rng else (0, size - 1)
        length = max(0, last - first + 1)
        self.send_response(206 if rng else 200)
        self._common_headers()
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "private, max-age=3600")
        if rng:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as f:
            f.seek(first)
            left = length
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _live(self, name: str, kind: str) -> None:
        hub = self.app.hub
        cam = hub.cameras.get(name) if hub else None
        if cam is None:
            return self._error(404, f"no live camera {name!r}" + ("" if hub else " (live view needs `motionwatch run`)"))
        overlay = self.params.get("overlay") in ("1", "true", "yes")
        if kind == "jpg":
            data = cam.snapshot(overlay)
            if not data:
                return self._error(503, f"camera {name!r} has no picture yet")
            return self._send(200, data, "image/jpeg")
        if cam.full:
            return self._error(503, f"too many live viewers of {name!r}; close a tab and retry")
        self.close_connection = True
        self.send_response(200)
        self._common_headers()
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        for jpeg in cam.stream(overlay, self.app.stopping):
            self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                             .encode() + jpeg + b"\r\n")
            self.wfile.flush()

    # -- POST ---------------------------------------------------------------------------

    def _form(self) -> dict:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        if n < 0 or n > MAX_BODY:
            raise api.BadRequest("request body too large")
        body = self.rfile.read(n) if n else b""
        self._body_read = True
        ctype = self.headers.get("Content-Type", "")
        if "application/json" in ctype:
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                raise api.BadRequest("body is not valid JSON") from None
            return data if isinstance(data, dict) else {}
        return dict(parse_qsl(body.decode("utf-8", "replace")))

    def _post(self) -> None:
        form = self._form()
        if not self._same_origin():
            return self._error(403, "cross-site request refused")
        given = self.headers.get("X-CSRF-Token") or form.get("csrf")
        if not self.app.auth.csrf_ok(self._csrf_expected(), given if isinstance(given, str) else None):
            return self._error(403, "missing or wrong CSRF token; reload the page")
        r = self.route
        if r == "/logout":
            self.app.auth.end_session(self._cookie())
            return self._redirect("/login", {"Set-Cookie": f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"})
        m = re.fullmatch(r"/api/events/([A-Za-z0-9_-]{1,64})/(keep|unkeep|delete)", r)
        if not m:
            return self._error(404, "not found")
        event_id, action = m.groups()
        if self.app.rec.get(event_id) is None:
            return self._error(404, f"no event {event_id!r}")
        try:
            self.app.change(event_id, action)
        except (MotionwatchError, OSError) as e:
            return self._error(409, f"event {event_id}: {e}")
        log.info("web: event %s: %s (from %s)", event_id, action, self.client_address[0])
        self._json({"id": event_id, "action": action, "ok": True})


def _safe_next(nxt: str) -> str:
    """Only local paths after login (no //evil.example or scheme)."""
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or nxt.startswith("/login"):
        return "/"
    return nxt
