"""Variants of the red-team attacks that the first regression tests did not try,
against a real `motionwatch serve` on loopback: smuggling with both framing
headers, and event.json shapes the contract checks let through."""

from __future__ import annotations

import json
import shutil

import pytest

from test_web_attacks import raw
from test_web_http import scanned, server  # noqa: F401  (a scanned folder, a serve on it)
from web_support import Proc


@pytest.mark.parametrize("framing", [
    "Content-Length: 5\r\nTransfer-Encoding: chunked",
    "Transfer-Encoding: chunked\r\nContent-Length: 5",
    "content-length: 5\r\nTRANSFER-ENCODING: Chunked",
])
def test_content_length_and_chunked_together_is_refused_and_closed(server, framing):
    """RFC 9112 6.3: a request with both framings may be a smuggling attempt; a proxy
    in front that trusted Content-Length would see the next request where we see
    body bytes. Refuse it (400) and close, so nothing after it on the connection is
    ever served."""
    inner = f"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
    head = (f"POST /api/events/x/keep HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{framing}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n")
    answer = raw(server.port, (head + "0\r\n\r\n" + inner).encode())
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1 and b'"csrf"' not in answer, answer[:400]
    # The same on a GET, which has no business with a body at all.
    answer = raw(server.port, (head.replace("POST /api/events/x/keep", "GET /api/events") + "0\r\n\r\n"
                               + inner).encode())
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1 ") == 1, answer[:400]
    assert server.request("GET", "/api/events")[0] == 200   # an honest request still is served


@pytest.mark.parametrize("clip_parts", [5, True, 2.5, "clip-001.mp4", {"path": "clip-001.mp4"}, [[1, 2]], [None]])
def test_event_page_survives_odd_clip_parts(tmp_path, scanned, clip_parts):
    """`clip_parts` is not a contract field, so the event checks let any JSON through;
    the event's page must still answer (200, no clip for a value that names none),
    never a 500 with a traceback in the log."""
    root = tmp_path / "recordings"
    shutil.copytree(scanned, root, ignore=shutil.ignore_patterns("events.db*"))
    path = next(root.glob("*/*/*/event.json"))
    rec = json.loads(path.read_text())
    rec["clip_parts"] = clip_parts
    path.write_text(json.dumps(rec))
    p = Proc(["serve", "--recordings", str(root), "--port", "0"])
    try:
        status, _, body = p.request("GET", f"/api/events/{rec['id']}")
        assert status == 200, (status, body[:300])
        urls = json.loads(body)["clip_urls"]
        assert all(isinstance(u, str) and u.startswith("/media/") for u in urls), urls
    finally:
        log = p.stop()
    assert "Traceback" not in log, log[-2000:]


@pytest.mark.parametrize("body", [b"[" * 60_000, b'{"a":' * 12_000])
def test_deeply_nested_json_body_is_400_before_login_and_with_no_password(scanned, server, body):
    """A JSON body nested deeper than the parser's stack (within the 64 KiB limit):
    400 naming the problem, not a 500 with a traceback; on the login form of a
    password-protected server too, which anyone may post to."""
    from web_support import free_port
    port = free_port()
    p = Proc(["serve", "--recordings", str(scanned), "--port", str(port)],
             env={"MOTIONWATCH_WEB_PASSWORD": "pw"}, port=port)
    json_type = {"Content-Type": "application/json"}
    try:
        status, _, answer = p.request("POST", "/login", body=body, headers=json_type)
        assert status == 400 and b"JSON" in answer, (status, answer[:200])
    finally:
        log = p.stop()
    assert "Traceback" not in log, log[-2000:]
    status, _, answer = server.request("POST", "/api/events/x/keep", body=body, headers=json_type)
    assert status == 400 and b"JSON" in answer, (status, answer[:200])


def basic(password: str) -> str:
    import base64
    return "Basic " + base64.b64encode(f"u:{password}".encode()).decode()


def guesses(p: Proc, forwarded_for, n: int, tag: str, parallel: bool) -> list[int]:
    """Statuses of n new wrong passwords, each sent with the X-Forwarded-For
    forwarded_for(i) gives (one after another, or all at once)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> int:
        return p.request("GET", "/api/session", headers={"Authorization": basic(f"{tag}-{i}"),
                                                          "X-Forwarded-For": forwarded_for(i)})[0]
    if not parallel:
        return [one(i) for i in range(n)]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def password_server(scanned, tmp_path, config: str = "") -> Proc:
    from web_support import free_port
    cfg = tmp_path / "web.yaml"
    cfg.write_text(config or "{}\n")
    port = free_port()
    return Proc(["serve", "--config", str(cfg), "--recordings", str(scanned), "--port", str(port)],
                env={"MOTIONWATCH_WEB_PASSWORD": "right-pw"}, port=port)


def test_a_forged_x_forwarded_for_does_not_escape_the_login_throttle(scanned, tmp_path):
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default, so a local client
    (or anyone behind a proxy on this machine that passes the header through) made
    every guess a new 'address' and guessed at full speed. Without web.trusted_proxies
    the header is ignored: 12 guesses at once after 10 wrong ones are held back (429)."""
    p = password_server(scanned, tmp_path)
    try:
        first = guesses(p, lambda i: f"198.51.100.{i}", 10, "seq", parallel=False)
        assert first == [401] * 10, first
        burst = guesses(p, lambda i: f"198.51.100.{50 + i}", 12, "burst", parallel=True)
        assert 429 in burst, burst
    finally:
        p.stop()


def test_behind_a_trusted_proxy_one_guesser_does_not_lock_out_the_others(scanned, tmp_path):
    """web.trusted_proxies: the throttle counts the client the proxy names, so a
    guesser's flood (held back with 429) leaves another client's right password
    working; a client's own forged X-Forwarded-For value (left of what the proxy
    appends) does not make it someone else."""
    p = password_server(scanned, tmp_path, "web:\n  trusted_proxies: [127.0.0.1]\n")
    try:
        attacker = "203.0.113.9"
        assert guesses(p, lambda i: attacker, 10, "seq", parallel=False) == [401] * 10
        assert 429 in guesses(p, lambda i: f"203.0.113.5, {attacker}", 12, "forged", parallel=True)
        status, headers, _ = p.request("POST", "/login", body="password=right-pw&next=/",
                                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                                "X-Forwarded-For": "203.0.113.5"})
        assert status == 303 and "mw_session=" in headers.get("set-cookie", ""), (status, headers)
    finally:
        p.stop()


def test_one_address_holding_requests_half_sent_cannot_fill_the_connection_cap(server):
    """210 connections from 127.0.0.2, each a POST whose body never comes (held open
    up to the request deadline and reopened by a real attacker), filled the
    200-connection cap, and every other client was reset. One address gets at most
    a share of the cap, so a client from 127.0.0.1 is still served meanwhile."""
    import http.client
    import socket
    held = []
    try:
        for _ in range(210):
            s = socket.socket()
            s.settimeout(5)
            s.bind(("127.0.0.2", 0))
            try:
                s.connect(("127.0.0.1", server.port))
                s.sendall(f"POST /api/events/x/keep HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                          "Content-Length: 1000\r\n\r\na".encode())
            except OSError:
                s.close()
                continue
            held.append(s)
        answers = []
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                c.request("GET", "/api/session")
                answers.append(c.getresponse().status)
            except OSError as e:
                answers.append(type(e).__name__)
            finally:
                c.close()
        assert answers == [200, 200, 200], answers
    finally:
        for s in held:
            s.close()
