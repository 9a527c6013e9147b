"""The web UI's bind rule, checked before anything starts: a non-loopback
address needs a password, and TLS files must load. `run` and `check-config`
call it through preflight; the review server uses it too (review.auth)."""

from __future__ import annotations

import ipaddress
import os
import ssl

from motionwatch.config import WebConfig
from motionwatch.errors import ConfigError


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
