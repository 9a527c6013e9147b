"""Who may use the web UI: the bind-address rule, passwords, sessions, CSRF.

Loopback binds may run without a password (the machine's own users only);
any other address needs one, or the server refuses to start. Secrets are
compared in constant time. A browser logs in through a form and gets an
HttpOnly, SameSite=Strict session cookie; scripts may use HTTP Basic. Every
changing request (POST) carries a CSRF token tied to the session.

The bind-address and TLS checks are in motionwatch.pipeline.web_bind: `run`
and `check-config` make them before any web code is imported.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from motionwatch.review.throttle import LoginThrottle

COOKIE = "mw_session"
SESSION_SECONDS = 7 * 86400
MAX_SESSIONS = 1000


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
