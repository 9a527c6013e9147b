"""The Starlette application: routes of the UI and JSON API, and the middleware
stack that guards them (outermost first): security headers, one framing per
request, Starlette's TrustedHostMiddleware, the auth gate, the POST guard (guards.py).

Every GET only reads. Keep and delete are POSTs that need the session's CSRF
token (header X-CSRF-Token or form field csrf) and, when the browser sends
one, a same-origin Origin header. Database reads run in Starlette's thread
pool (plain `def` endpoints); the live stream is a coroutine per viewer.
"""

from __future__ import annotations

import html
import logging
import re

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from motionwatch.errors import MotionwatchError
from motionwatch.index.database import DamagedRow
from motionwatch.review import api
from motionwatch.review.auth import COOKIE, SESSION_SECONDS
from motionwatch.review.files import Refused, media_path
from motionwatch.review.guards import BUSY, AuthGate, OneFraming, PostGuard, SecurityHeaders, check_password, \
    client_address, csrf_expected, error, session_token

log = logging.getLogger("motionwatch.review")

BOUNDARY = "mwframe"
NO_STORE = {"Cache-Control": "no-store"}


def web(request: Request):
    return request.app.state.web


def json(obj, status: int = 200) -> JSONResponse:
    return JSONResponse(obj, status, headers=NO_STORE)


def fail(request: Request, status: int, message: str) -> Response:
    return error(request.scope, status, message)


# --- pages and static files -----------------------------------------------------------

def index(request: Request) -> Response:
    path, ctype = web(request).static["index.html"]
    return FileResponse(path, media_type=ctype, headers=NO_STORE)


def static(request: Request) -> Response:
    name = request.path_params.get("name", "favicon.svg")
    hit = web(request).static.get(name)
    if hit is None or name == "login.html":
        return fail(request, 404, "not found")
    return FileResponse(hit[0], media_type=hit[1], headers={"Cache-Control": "no-cache"})


def login_page(request: Request, message: str = "", status: int = 200, nxt: str | None = None) -> Response:
    if not web(request).auth.required:
        return RedirectResponse("/", 303)
    page = web(request).static["login.html"][0].read_text()
    nxt = safe_next(nxt if nxt is not None else request.query_params.get("next", "/"))
    page = page.replace("{{error}}", html.escape(message)).replace("{{next}}", html.escape(nxt, quote=True))
    return Response(page, status, media_type="text/html; charset=utf-8", headers=NO_STORE)


async def login(request: Request) -> Response:
    auth = web(request).auth
    form = request.scope["mw.form"]
    nxt = form.get("next", "/") if isinstance(form.get("next"), str) else "/"
    if not auth.required:
        return RedirectResponse("/", 303)
    given = form.get("password", "")
    verdict = await check_password(auth, client_address(request.scope), given if isinstance(given, str) else "")
    if verdict == "busy":
        return login_page(request, BUSY[0].upper() + BUSY[1:] + ".", 429, nxt)
    if verdict != "ok":
        log.warning("web: wrong password from %s", client_address(request.scope))
        return login_page(request, "Wrong password.", 401, nxt)
    token, _ = auth.new_session()
    response = RedirectResponse(safe_next(nxt), 303)
    response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def logout(request: Request) -> Response:
    web(request).auth.end_session(session_token(request.scope))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


def safe_next(nxt: str) -> str:
    """Only local paths after login: no //evil.example, scheme, backslash or control characters."""
    if (not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or nxt.startswith("/login")
            or any(ord(c) < 0x20 or ord(c) == 0x7f for c in nxt)):
        return "/"
    return nxt


# --- JSON API -----------------------------------------------------------------------------

async def session(request: Request) -> Response:
    w = web(request)
    return json({"csrf": csrf_expected(w.auth, request.scope), "auth": w.auth.required,
                 "mode": "run" if w.loops else "serve", "live": sorted(w.hub.cameras) if w.hub else []})


def events(request: Request) -> Response:
    return json(api.events_page(web(request).rec, dict(request.query_params)))


def event(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    ev = api.event_detail(web(request).rec, event_id, web(request).trigger)
    if not ev:
        return fail(request, 404, f"no event {event_id!r}")
    try:
        return json(ev)
    except ValueError as e:  # NaN or infinity somewhere in event.json: not JSON
        raise api.DamagedEvent(api.damaged(event_id, e)) from None


def status(request: Request) -> Response:
    return json(web(request).status())


def live_state(request: Request) -> Response:
    return json(web(request).live_state())


def metrics(request: Request) -> Response:
    return Response(api.metrics(web(request).status()), media_type="text/plain; version=0.0.4; charset=utf-8",
                    headers=NO_STORE)


def change(request: Request) -> Response:
    event_id, action = request.path_params["event_id"], request.path_params["action"]
    w = web(request)
    if not api.EVENT_ID.fullmatch(event_id) or action not in ("keep", "unkeep", "delete"):
        return fail(request, 404, "not found")
    try:
        known = w.rec.get(event_id) is not None
    except DamagedRow:
        known = True  # keep or delete still work on the folder; the page says to reindex
    if not known:
        return fail(request, 404, f"no event {event_id!r}")
    try:
        w.change(event_id, action)
    except (MotionwatchError, OSError) as e:
        return fail(request, 409, str(e))  # the message already names the event
    log.info("web: event %s: %s (from %s)", event_id, action, client_address(request.scope))
    return json({"id": event_id, "action": action, "ok": True})


# --- files and live pictures ---------------------------------------------------------------

def media(request: Request) -> Response:
    # The still-encoded path: an encoded slash must not become a path step.
    raw = request.scope["raw_path"].decode("latin-1")[len("/media/"):]
    try:
        path, ctype = media_path(web(request).rec.root, raw)
    except (Refused, UnicodeDecodeError):
        return fail(request, 404, "not found")
    return FileResponse(path, media_type=ctype, headers={"Cache-Control": "private, max-age=3600"})


async def live(request: Request) -> Response:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\.(mjpg|jpg)", request.path_params["file"])
    if not m:
        return fail(request, 404, "not found")
    name, kind = m.groups()
    hub = web(request).hub
    cam = hub.cameras.get(name) if hub else None
    if cam is None:
        return fail(request, 404, f"no live camera {name!r}" + ("" if hub else " (live view needs `motionwatch run`)"))
    overlay = request.query_params.get("overlay") in ("1", "true", "yes")
    if kind == "jpg":
        data = await cam.snapshot(overlay)
        if not data:
            return fail(request, 503, f"camera {name!r} has no picture yet")
        return Response(data, media_type="image/jpeg", headers=NO_STORE)
    if cam.full:
        return fail(request, 503, f"too many live viewers of {name!r}; close a tab and retry")
    ctype = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    if request.method == "HEAD":
        return Response(b"", media_type=ctype, headers=NO_STORE)
    return StreamingResponse(mjpeg_parts(cam.frames(overlay)), media_type=ctype, headers=NO_STORE)


async def mjpeg_parts(frames):
    async for jpeg in frames:
        yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
               + jpeg + b"\r\n")


# --- errors and assembly -----------------------------------------------------------------------

async def http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    response = fail(request, exc.status_code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def bad_request(request: Request, exc: api.BadRequest) -> Response:
    return fail(request, 400, str(exc))


async def damaged_event(request: Request, exc: api.DamagedEvent) -> Response:
    return fail(request, 409, str(exc))


ROUTES = [
    Route("/", index), Route("/index.html", index),
    Route("/static/{name}", static), Route("/favicon.ico", static),
    Route("/login", login_page, methods=["GET"]), Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/api/session", session), Route("/api/events", events),
    Route("/api/events/{event_id}", event),
    Route("/api/events/{event_id}/{action}", change, methods=["POST"]),
    Route("/api/status", status), Route("/api/live", live_state), Route("/metrics", metrics),
    Route("/media/{path:path}", media), Route("/live/{file}", live),
]


def build_app(server, allowed_hosts: list[str]) -> Starlette:
    """`server` is the WebServer: what the routes read (index, auth, cameras)."""
    app = Starlette(routes=ROUTES, middleware=[
        Middleware(SecurityHeaders),
        Middleware(OneFraming),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts, www_redirect=False),
        Middleware(AuthGate, auth=server.auth),
        Middleware(PostGuard, auth=server.auth),
    ], exception_handlers={HTTPException: http_error, api.BadRequest: bad_request,
                        api.DamagedEvent: damaged_event})
    app.state.web = server
    return app


def allowed_hosts(web_cfg, host: str, password: bool) -> list[str]:
    """Host names answered: without a password only the bound address, loopback
    names and web.allowed_hosts (a DNS-rebinding page's own name is refused);
    with one and no list, any (the password guards, and a LAN may use any name)."""
    if password and not web_cfg.allowed_hosts:
        return ["*"]
    names = {"localhost", "127.0.0.1", "::1", *web_cfg.allowed_hosts}
    bound = host.lower().strip("[]")
    if bound not in ("0.0.0.0", "::", ""):
        names.add(bound)
    # Starlette compares the Host header's host part, which keeps an IPv6 literal's brackets.
    return sorted(f"[{n}]" if ":" in n else n for n in names)
