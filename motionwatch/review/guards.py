"""Our own rules, each an ASGI middleware around the routes (the Host rule is
Starlette's TrustedHostMiddleware, set up in app.py):

- OneFraming: a request that carries both Content-Length and Transfer-Encoding
  is refused and its connection closed.
- SecurityHeaders: CSP and friends on every answer.
- AuthGate: a session cookie, HTTP Basic (through the login throttle) or no
  password needed; otherwise 401 for the API and a redirect to /login for pages.
- PostGuard: every POST has a small body (read here, at most MAX_BODY, chunked
  or not), a same-origin Origin header when the browser sends one, and, except
  the login form, the CSRF token of its session.
"""

from __future__ import annotations

import asyncio
import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from motionwatch.review.auth import COOKIE, Auth

CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self'; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form POSTs say Origin: null
    (b"content-security-policy", CSP.encode()),
]
MAX_BODY = 64 * 1024
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/login", "/favicon.ico")
API_PREFIXES = ("/api/", "/metrics", "/media/", "/live/")
BUSY = "too many wrong passwords from your address; wait a few seconds"


def error(scope: Scope, status: int, message: str, headers: dict | None = None):
    """The error answer: JSON for the API (and clients asking for JSON), else text."""
    accept = Headers(scope=scope).get("accept", "")
    if scope["path"].startswith("/api/") or "application/json" in accept:
        return JSONResponse({"error": message}, status, headers=headers)
    return PlainTextResponse(message + "\n", status, headers=headers)


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OneFraming:
    """h11 reads a request with both Content-Length and Transfer-Encoding by the
    latter and keeps the connection open; RFC 9112 6.3 says such a request may be
    smuggling (a proxy in front may have framed it by Content-Length) and the
    connection MUST be closed after answering. Answer 400 with Connection: close,
    so nothing that follows on that connection is served."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                return await error(scope, 400, "both Content-Length and Transfer-Encoding; allowed: one of them",
                                   {"Connection": "close"})(scope, receive, send)
        await self.app(scope, receive, send)


def session_token(scope: Scope) -> str | None:
    try:
        c = SimpleCookie(Headers(scope=scope).get("cookie", ""))
    except CookieError:
        return None
    return c[COOKIE].value if COOKIE in c else None


async def check_password(auth: Auth, client: str, given: str) -> str:
    """The verdict: "ok", "wrong", or "busy" (this address has too many attempts waiting)."""
    if auth.throttle.known_wrong(given):
        return "wrong"
    wait = auth.throttle.wait_for_turn(client)
    if wait is None:
        return "busy"
    if wait:
        await asyncio.sleep(wait)  # costs this request only: other clients are served meanwhile
    if auth.password_ok(given):
        return "ok"
    auth.throttle.failed(client, given)
    return "wrong"


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "?"


class AuthGate:
    """Sets scope["mw.session"]: the Session, True (Basic, or no password needed)."""

    def __init__(self, app: ASGIApp, auth: Auth):
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        scope["mw.session"] = None
        if path.startswith(PUBLIC_PREFIXES) or path in PUBLIC_PATHS or not self.auth.required:
            scope["mw.session"] = True if not self.auth.required else None
            return await self.app(scope, receive, send)
        session = self.auth.session(session_token(scope))
        if session is None:
            given = self.auth.basic_password(Headers(scope=scope).get("authorization"))
            verdict = "wrong" if given is None else await check_password(self.auth, client_address(scope), given)
            if verdict == "busy":
                return await error(scope, 429, BUSY)(scope, receive, send)
            session = True if verdict == "ok" else None
        if session is None:
            return await self._deny(scope)(scope, receive, send)
        scope["mw.session"] = session
        await self.app(scope, receive, send)

    @staticmethod
    def _deny(scope: Scope):
        if scope["path"].startswith(API_PREFIXES) or scope["method"] == "POST":
            return JSONResponse({"error": "login required"}, 401,
                                headers={"WWW-Authenticate": 'Basic realm="motionwatch", charset="UTF-8"'})
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else "")
        return RedirectResponse("/login?next=" + quote(target, safe=""), 303)


class PostGuard:
    """Reads and checks every POST body before a route sees it; the parsed form
    (urlencoded or JSON) is scope["mw.form"]."""

    def __init__(self, app: ASGIApp, auth: Auth):
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        if body is None:
            return await error(scope, 413, f"request body too large; allowed: at most {MAX_BODY} bytes")(
                scope, receive, send)
        headers = Headers(scope=scope)
        try:
            form = _parse_form(body, headers.get("content-type", ""))
        except ValueError:
            return await error(scope, 400, "body is not valid JSON")(scope, receive, send)
        if not same_origin(headers):
            return await error(scope, 403, "cross-site request refused")(scope, receive, send)
        if scope["path"] != "/login":
            given = headers.get("x-csrf-token") or form.get("csrf")
            if not self.auth.csrf_ok(csrf_expected(self.auth, scope), given if isinstance(given, str) else None):
                return await error(scope, 403, "missing or wrong CSRF token; reload the page")(scope, receive, send)
        scope["mw.form"] = form
        await self.app(scope, receive, send)


def csrf_expected(auth: Auth, scope: Scope) -> str:
    s = scope.get("mw.session")
    return s.csrf if hasattr(s, "csrf") else auth.global_csrf


def same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    if origin is None:  # not sent by non-browser clients; browsers send it on POST
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (h11 has already undone any chunked encoding), None past MAX_BODY."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # the client left
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse_form(body: bytes, ctype: str) -> dict:
    # urlencoded by hand (parse_qsl): Starlette's form parser needs python-multipart,
    # a dependency for two fields (password, csrf) that never carry files.
    if "application/json" in ctype:
        try:
            data = json.loads(body or b"{}")
        except RecursionError:   # "[[[[..." within MAX_BODY nests deeper than the parser's stack
            raise ValueError("nested too deeply") from None
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(body.decode("utf-8", "replace")))
