"""The red-team cases against the web UI, as regression tests on a real
`motionwatch serve` on loopback: CRLF in the login `next`, chunked bodies
(request smuggling), 2,000 idle connections against the cap, a slow-header
client, out-of-range dates, and symlinks to the index or out of the root.
(Host rebinding, Range and the login throttle are in test_web_http.py.)"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from test_web_http import scanned, server  # noqa: F401  (the same fixtures: a scanned folder, a serve)
from web_support import Proc


def raw(port: int, data: bytes, read_for: float = 3.0) -> bytes:
    """Send bytes as they are and collect everything the server answers until it
    closes or is quiet for `read_for` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_for) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def proc_status(pid: int, key: str) -> int:
    """A number from /proc/PID/status: "Threads", "VmRSS" (kB)."""
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith(key + ":")))


def test_crlf_in_login_next_sets_no_header(scanned):
    from web_support import free_port
    port = free_port()
    p = Proc(["serve", "--recordings", str(scanned), "--port", str(port)],
             env={"MOTIONWATCH_WEB_PASSWORD": "pw"}, port=port)
    try:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        for nxt in ("/%0d%0aSet-Cookie:%20evil=1", "/%0aLocation:%20http://evil.example", "/x%0d%0a%0d%0a<b>",
                    "/%09//evil.example", "/%7f"):
            status, headers, body = p.request("POST", "/login", body=f"password=pw&next={nxt}", headers=form)
            assert status == 303 and headers["location"] == "/", nxt
            assert "evil" not in json.dumps(headers), nxt
        # The login page puts a hostile `next` in its form as "/".
        status, _, body = p.request("GET", "/login?next=/%0d%0aSet-Cookie:x=1")
        assert status == 200 and b'value="/"' in body and b"Set-Cookie" not in body
    finally:
        p.stop()


def test_chunked_body_is_one_request_not_two(server):
    """A chunked POST whose body looks like a second request is read as a body:
    one answer, and the 'inner' request is never served."""
    ev = server.get_json("/api/events")["events"][0]
    inner = b"GET /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    body = b"csrf=wrong&x=" + inner
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = (f"POST /api/events/{ev['id']}/keep HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()
    answer = raw(server.port, head + chunked)
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b'"csrf"' not in answer
    # The same, with the right token in the chunked body, keeps the event.
    token = server.get_json("/api/session")["csrf"]
    body = f"csrf={token}".encode()
    chunked = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in (body[:5], body[5:])) + b"0\r\n\r\n"
    answer = raw(server.port, head + chunked)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert server.get_json(f"/api/events/{ev['id']}")["kept"] is True
    server.request("POST", f"/api/events/{ev['id']}/unkeep", headers={"X-CSRF-Token": token})
    # A body over the limit is refused, chunked or not.
    big = b"x" * (70 * 1024)
    answer = raw(server.port, head + f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_two_thousand_idle_connections_cost_no_threads_and_are_let_go(server):
    """2,000 idle connections (loopback, bounded loop): no thread each; at the cap the
    oldest idle one makes room, so a real request is answered during the flood; the
    rest are closed by the request deadline."""
    before, rss_before = proc_status(server.p.pid, "Threads"), proc_status(server.p.pid, "VmRSS")
    socks = []
    try:
        for _ in range(2000):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", server.port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        assert proc_status(server.p.pid, "Threads") <= before + 4
        grew_mb = (proc_status(server.p.pid, "VmRSS") - rss_before) / 1024
        print(f"2,000 idle connections: server RSS +{grew_mb:.1f} MB")
        assert grew_mb < 20      # the thread-per-connection server grew 49 MB
        assert server.request("GET", "/api/events")[0] == 200    # while the 2,000 are still open
        # Every idle connection is closed by the server (cap at once, the others at the deadline).
        deadline = time.monotonic() + 60
        open_ = list(socks)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        continue
                except BlockingIOError:
                    still.append(s)
                    continue
                except OSError:
                    continue  # reset: closed by the cap
            open_ = still
            time.sleep(0.5)
        assert not open_, f"{len(open_)} idle connections still open after 60 s"
    finally:
        for s in socks:
            s.close()
    assert server.request("GET", "/api/events")[0] == 200
    assert proc_status(server.p.pid, "Threads") <= before + 4


def test_slow_header_client_is_cut_off_at_the_head_deadline(server):
    """One header line every 2 s would take 60 s; the request deadline ends it long before."""
    sent = trickle(server.port, b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                   [f"X-Slow-{i}: {'a' * 10}\r\n".encode() for i in range(30)])
    assert sent is not None and sent < 30, "the server waited for the whole slow request head"


def test_slow_body_client_is_cut_off_at_the_request_deadline(server):
    """A POST whose 1,000-byte body comes one byte every 2 s is closed at the deadline."""
    head = (f"POST /api/events/x/keep HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n").encode()
    assert trickle(server.port, head, [b"a"] * 30) is not None, "the server waited 60 s for a slow body"


def trickle(port: int, first: bytes, pieces: list[bytes], every: float = 2.0) -> int | None:
    """Send `first`, then one piece every `every` seconds; the number of pieces sent
    when the server ended the connection (closed, reset or answered), None if it never did."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(first)
        for sent, piece in enumerate(pieces):
            time.sleep(every)
            try:
                s.sendall(piece)
                s.setblocking(False)
                try:
                    s.recv(4096)
                    return sent       # closed (b"") or answered before the request was whole
                except BlockingIOError:
                    pass
                s.setblocking(True)
            except OSError:
                return sent
    return None


@pytest.mark.parametrize("query", ["date=9999-12-31", "date=0001-01-01", "date=2026-02-30", "since=1e400",
                                   "until=nan", "since=9999-12-31T23:59:59", "since=0001-01-01T00:00:00",
                                   "limit=" + "9" * 5000, "offset=-1", "camera=%00"])
def test_out_of_range_query_values_are_4xx_with_a_reason(server, query):
    status, headers, body = server.request("GET", "/api/events?" + query)
    if query == "camera=%00":
        assert status == 200 and json.loads(body)["events"] == []
        return
    assert status == 400, (query, status, body[:200])
    assert "allowed" in json.loads(body)["error"]


def test_symlinks_to_the_index_or_out_of_the_root_are_not_served(server, scanned):
    ev = server.get_json("/api/events")["events"][0]
    folder = scanned / Path(ev["snapshot_url"][len("/media/"):]).parent
    links = {"db.jpg": scanned / "events.db", "wal.jpg": scanned / "events.db-wal",
             "json.jpg": folder / "event.json", "out.jpg": scanned.parent / "secret.jpg"}
    for name, target in links.items():
        (folder / name).symlink_to(target)
    (scanned / "door" / "elsewhere").symlink_to(scanned.parent, target_is_directory=True)
    rel = folder.relative_to(scanned)
    try:
        for name in links:
            status, _, body = server.request("GET", f"/media/{rel}/{name}")
            assert status == 404 and b"SQLite" not in body and b"SECRET" not in body, name
        status, _, body = server.request("GET", "/media/door/elsewhere/secret.jpg")
        assert status == 404 and b"SECRET" not in body
        assert server.request("GET", ev["snapshot_url"])[0] == 200   # the real snapshot still is
    finally:
        for name in links:
            (folder / name).unlink()
        (scanned / "door" / "elsewhere").unlink()


def test_damaged_records_in_the_index_cost_one_event_not_the_page(tmp_path):
    """Rows whose event.json had NaN, a string offset or a missing field (indexed by an
    older build): the gallery shows the sound events and leaves those out; their own
    pages are a 409 that says to reindex, never a 500."""
    from motionwatch.model import iso
    from motionwatch.index.database import EventIndex
    root = tmp_path / "rec"
    idx = EventIndex(root)
    base = {"camera": "door", "start_offset_s": 1.0, "end_offset_s": 3.0, "start_frame": 15, "end_frame": 45,
            "peak_fraction": 0.02, "frames_with_motion": 30, "snapshot": None, "clip": None, "boxes": []}
    bad = {"nan01": {"peak_fraction": float("nan")}, "str01": {"end_offset_s": "3 s"},
           "inf01": {"start_offset_s": float("inf")}, "big01": {"fractions": [[0.0, float("nan")]]}}
    for i, event_id in enumerate(["good1", *bad]):
        rec = dict(base, id=event_id, start=iso(1_790_000_000 + 60 * i), end=iso(1_790_000_002 + 60 * i))
        idx.add(rec, root / event_id)
        rec.update(bad.get(event_id, {}))   # in the stored record only (SQLite's columns refuse NaN)
        with idx.db:
            idx.db.execute("UPDATE events SET json = ? WHERE id = ?", (json.dumps(rec), event_id))
    idx.close()
    p = Proc(["serve", "--recordings", str(root), "--port", "0"])
    try:
        ids = [e["id"] for e in p.get_json("/api/events")["events"]]
        assert "good1" in ids and not {"nan01", "str01", "inf01"} & set(ids), ids
        assert p.request("GET", "/api/events/good1")[0] == 200
        for event_id in bad:
            status, _, body = p.request("GET", f"/api/events/{event_id}")
            assert status == 409 and "--reindex" in json.loads(body)["error"], (event_id, status, body[:200])
    finally:
        p.stop()
