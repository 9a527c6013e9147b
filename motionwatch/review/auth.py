"""Who may use the web UI: the bind-address rule, passwords, sessions, CSRF.

Loopback binds may run without a password (the machine's own users only);
any other address needs one, or the server refuses to start. Secrets are
compared in constant time. A browser logs in through a form and gets an
HttpOnly, SameSite=Strict session cookie; scripts may use HTTP Basic. Every
changing request (POST) carries a CSRF token tied to the session.

No web framework is imported here: `check_bind` is also what `check-config`
runs, and it must not need the server stack.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import ssl
import threading
import time
from dataclasses import dataclass

from motionwatch.config import WebConfig
from motionwatch.errors import ConfigError
from motionwatch.review.throttle import LoginThrottle

COOKIE = "mw_session"
SESSION_SECONDS = 7 * 86400
MAX_SESSIONS = 1000


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def resolve_password(web: WebConfig) -> str | None:
    """web.password, else the environment variable web.password_env names."""
    if web.password:
        return web.password
    if web.password_env:
        value = os.environ.get(web.password_env)
        if value:
            return value
    return None


def check_bind(web: WebConfig, host: str) -> str | None:
    """The password to require, or None; refuses a non-loopback bind without one,
    and TLS settings whose files do not load (the listener would fail on them)."""
    password = resolve_password(web)
    if not is_loopback(host) and not password:
        env = f" or the environment variable {web.password_env}" if web.password_env else ""
        raise ConfigError(f"web.host: {host!r} is not a loopback address and no password is set; "
                          f"set web.password{env}, or bind 127.0.0.1")
    tls_context(web)
    return password


def tls_context(web: WebConfig) -> ssl.SSLContext | None:
    """The server's TLS context from web.tls_cert / web.tls_key, or None for plain HTTP."""
    cert, key = web.tls_cert, web.tls_key
    if not cert and not key:
        return None
    if not cert:
        raise ConfigError("web.tls_key is set but web.tls_cert is not; allowed: both (PEM files) or neither")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"web.tls_cert/tls_key: cannot load {cert!r}"
                          f"{f' with key {key!r}' if key else ''}: {why}; allowed: a PEM certificate "
                          "(chain) and its PEM private key, readable by this user") from None
    return ctx


@dataclass
class Session:
    csrf: str
    expires: float


class Auth:
    """Checks requests against the password; holds sessions in memory (a restart logs out)."""

    def __init__(self, password: str | None):
        self.password = password
        self.required = password is not None
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.throttle = LoginThrottle()
        # Without a password there are no sessions; one token per process still
        # stops other web sites from posting to a loopback server.
        self.global_csrf = secrets.token_urlsafe(32)

    # -- passwords -------------------------------------------------------------

    def password_ok(self, given: str) -> bool:
        if self.password is None:
            return True
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                   self.password.encode("utf-8", "surrogateescape"))

    @staticmethod
    def basic_password(header: str | None) -> str | None:
        """The password of an HTTP Basic header (any user name), None when there is none."""
        if not header or not header[:6].lower() == "basic ":
            return None
        try:
            user_pass = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        _, sep, given = user_pass.partition(":")
        return given if sep else None

    # -- sessions --------------------------------------------------------------

    def new_session(self) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        s = Session(csrf=secrets.token_urlsafe(32), expires=time.time() + SESSION_SECONDS)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].expires)
                del self._sessions[oldest]
            self._sessions[_digest(token)] = s
        return token, s

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        key = _digest(token)  # looked up by hash, so lookup timing says nothing about the token
        with self._lock:
            s = self._sessions.get(key)
            if s is not None and s.expires < time.time():
                del self._sessions[key]
                return None
            return s

    def end_session(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def csrf_ok(self, expected: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
