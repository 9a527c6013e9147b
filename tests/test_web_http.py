"""HTTP-level tests of the web UI against a real `motionwatch serve` on loopback:
path traversal, auth on a non-loopback bind, CSRF, Range requests, paging over
10,000 events, status and metrics."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import mw, wait_until
from motionwatch.index.database import EventIndex
from web_support import Proc, free_port, scan_into


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, two_visits_video) -> Path:
    """A recordings folder from a real scan, plus a file outside it that must never leak."""
    base = tmp_path_factory.mktemp("web")
    rec = base / "recordings"
    scan_into(two_visits_video[0], rec, "door", "2026-11-20T09:00:00")
    (base / "secret.jpg").write_bytes(b"SECRET-OUTSIDE-ROOT")
    return rec


@pytest.fixture(scope="module")
def server(scanned):
    p = Proc(["serve", "--recordings", str(scanned), "--port", "0"])
    yield p
    p.stop()


def first_event(server: Proc) -> dict:
    events = server.get_json("/api/events")["events"]
    assert events, "the scan recorded no event"
    return server.get_json(f"/api/events/{events[0]['id']}")


def csrf(server: Proc, headers: dict | None = None) -> str:
    return server.get_json("/api/session", headers)["csrf"]


# --- events API ---------------------------------------------------------------------

def test_events_api_lists_the_scanned_events(server, scanned):
    data = server.get_json("/api/events")
    on_disk = json.loads(mw("events", "--json", "--recordings", str(scanned), check=True).stdout)
    assert [e["id"] for e in data["events"]] == [e["id"] for e in on_disk]
    assert data["total"] == len(on_disk) and data["cameras"] == ["door"] and data["more"] is False
    ev = server.get_json(f"/api/events/{on_disk[0]['id']}")
    for key in ("id", "camera", "start", "end", "peak_fraction", "boxes", "fractions", "snapshot_url", "clip_urls"):
        assert key in ev
    status, headers, body = server.request("GET", ev["snapshot_url"])
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"


def test_unknown_event_and_bad_parameters_are_clear(server):
    status, _, body = server.request("GET", "/api/events/nope")
    assert status == 404 and b"no event" in body
    status, _, body = server.request("GET", "/api/events?limit=abc")
    assert status == 400 and b"limit" in body
    status, _, body = server.request("GET", "/api/events?date=25/11/2026")
    assert status == 400 and b"YYYY-MM-DD" in body


# --- traversal -------------------------------------------------------------------------

def test_no_file_outside_the_recordings_root_or_static_folder(server, scanned):
    ev = first_event(server)
    folder = Path(ev["snapshot"]).parent
    # A symlink inside the root that points outside it.
    (scanned / folder / "leak.jpg").symlink_to(scanned.parent / "secret.jpg")
    attempts = [
        "/media/../secret.jpg", "/media/%2e%2e/secret.jpg", "/media/%2E%2E%2Fsecret.jpg",
        "/media/door%2f..%2f..%2fsecret.jpg", "/media/..%5csecret.jpg", "/media/./events.db",
        "/media/events.db", f"/media/{folder}/event.json", f"/media/{folder}/", f"/media/{folder}",
        f"/media/{folder}/leak.jpg", "/media//etc/passwd", "/media/%00.jpg", "/media/",
        "/static/../server.py", "/static/%2e%2e/server.py", "/static/", "/static/..%2fhandler.py",
        "/../../etc/passwd", "/media/" + "%252e%252e/secret.jpg",
    ]
    for path in attempts:
        status, _, body = server.request("GET", path)
        assert status in (400, 404), (path, status)
        assert b"SECRET" not in body and b"import" not in body, path
    # ...while the real files are served.
    status, _, body = server.request("GET", f"/media/{ev['snapshot']}")
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert server.request("GET", "/static/app.js")[0] == 200


# --- Range -----------------------------------------------------------------------------

def test_range_requests(server):
    url = first_event(server)["snapshot_url"]
    status, headers, whole = server.request("GET", url)
    size = len(whole)
    assert status == 200 and headers["accept-ranges"] == "bytes" and int(headers["content-length"]) == size
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=10-19"})
    assert status == 206 and body == whole[10:20] and headers["content-range"] == f"bytes 10-19/{size}"
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=100-"})
    assert status == 206 and body == whole[100:]
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=-50"})
    assert status == 206 and body == whole[-50:] and headers["content-range"] == f"bytes {size - 50}-{size - 1}/{size}"
    status, headers, body = server.request("GET", url, headers={"Range": f"bytes=0-{size + 1000}"})
    assert status == 206 and body == whole
    for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
        status, headers, body = server.request("GET", url, headers={"Range": unsatisfiable})
        assert status == 416 and headers["content-range"] == f"bytes */{size}", unsatisfiable
    # Malformed ranges are refused with a 4xx, never a 500 or bytes of the file.
    for bad in ("bytes=20-10", "bytes=abc", "items=0-1", "bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 5000,
                "bytes=--5", "bytes=", "bytes=\t"):
        status, headers, body = server.request("GET", url, headers={"Range": bad})
        assert status in (400, 416) and whole not in body, (bad[:40], status)
    # Over 100 ranges get the whole file (the Range is ignored); a giant end is clipped
    # to the file; several ranges come as multipart/byteranges.
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=" + ",".join(["0-1"] * 101)})
    assert status == 200 and body == whole
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=5-" + "9" * 100})
    assert status == 206 and body == whole[5:]
    status, headers, body = server.request("GET", url, headers={"Range": "bytes=0-1, 10-11"})
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
    assert whole[0:2] in body and whole[10:12] in body
    status, headers, body = server.request("HEAD", url)
    assert status == 200 and body == b"" and int(headers["content-length"]) == size


# --- CSRF and GET-never-changes ------------------------------------------------------------

def test_keep_needs_post_and_csrf_token(server, scanned):
    ev = first_event(server)
    path = f"/api/events/{ev['id']}/keep"
    assert server.request("GET", path)[0] == 405               # GET never changes anything
    assert server.request("POST", path)[0] == 403              # no token
    assert server.request("POST", path, headers={"X-CSRF-Token": "wrong"})[0] == 403
    token = csrf(server)
    status, _, _ = server.request("POST", path, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert status == 403                                        # cross-site, even with the token
    assert server.get_json(f"/api/events/{ev['id']}")["kept"] is False
    status, _, body = server.request("POST", path, headers={"X-CSRF-Token": token,
                                                            "Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200, body
    assert server.get_json(f"/api/events/{ev['id']}")["kept"] is True
    assert json.loads((scanned / ev["snapshot"]).parent.joinpath("event.json").read_text())["kept"] is True
    status, _, _ = server.request("POST", f"/api/events/{ev['id']}/unkeep", body="csrf=" + token,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and server.get_json(f"/api/events/{ev['id']}")["kept"] is False


def test_delete_removes_folder_and_row(tmp_path, two_visits_video):
    rec = tmp_path / "rec"
    scan_into(two_visits_video[0], rec, "yard", "2026-11-21T10:00:00")
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        ev = first_event(p)
        folder = rec / Path(ev["snapshot"]).parent
        assert folder.is_dir()
        assert p.request("POST", f"/api/events/{ev['id']}/delete")[0] == 403
        assert folder.is_dir()
        status, _, _ = p.request("POST", f"/api/events/{ev['id']}/delete", headers={"X-CSRF-Token": csrf(p)})
        assert status == 200 and not folder.exists()
        assert p.request("GET", f"/api/events/{ev['id']}")[0] == 404
    finally:
        p.stop()


def test_dns_rebinding_host_is_refused_without_password(server):
    """Without a password only the bound address and loopback names are answered:
    a page whose DNS name was rebound to 127.0.0.1 must not read the CSRF token."""
    for host in ("evil.example:8765", f"127.evil.example:{server.port}", "127.0.0.1.evil.example",
                 "localhost.evil.example", "[::1].evil.example", "127.0.0.1:80@evil.example", "", "127.1",
                 "0x7f.0.0.1", "LOCALHOST.:1"):
        status, _, body = server.request("GET", "/api/session", headers={"Host": host})
        assert status == 400 and b"csrf" not in body, (host, status)
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "LocalHost", f"[::1]:{server.port}"):
        assert server.request("GET", "/api/session", headers={"Host": host})[0] == 200, host


# --- auth ---------------------------------------------------------------------------------

def test_non_loopback_bind_without_password_refuses_to_start(scanned):
    proc = mw("serve", "--recordings", str(scanned), "--host", "0.0.0.0", "--port", "0",
              env={"MOTIONWATCH_WEB_PASSWORD": ""}, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "0.0.0.0" in lines[0] and "password" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_non_loopback_bind_requires_auth_even_from_loopback(scanned):
    port = free_port()
    p = Proc(["serve", "--recordings", str(scanned), "--host", "0.0.0.0", "--port", str(port)],
             env={"MOTIONWATCH_WEB_PASSWORD": "correct horse"}, port=port)
    try:
        for path in ("/api/events", "/api/status", "/metrics", "/api/session"):
            status, headers, _ = p.request("GET", path)
            assert status == 401 and "basic" in headers["www-authenticate"].lower(), path
        ev_path = p.request("GET", "/api/events", headers=_basic("x", "correct horse"))
        assert ev_path[0] == 200
        snapshot = json.loads(ev_path[2])["events"][0]["snapshot_url"]
        assert p.request("GET", snapshot)[0] == 401
        assert p.request("GET", "/api/events", headers=_basic("x", "wrong"))[0] == 401
        status, headers, _ = p.request("GET", "/")
        assert status == 303 and headers["location"].startswith("/login")
        assert p.request("GET", "/static/app.css")[0] == 200      # the login page needs it
        # Login form: wrong password, then right; the cookie is HttpOnly and SameSite=Strict.
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, body = p.request("POST", "/login", body="password=nope&next=/", headers=form)
        assert status == 401 and b"Wrong password" in body
        status, headers, _ = p.request("POST", "/login", body="password=correct+horse&next=//evil.example/",
                                       headers=form)
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        session = {"Cookie": cookie.split(";")[0]}
        assert p.request("GET", snapshot, headers=session)[0] == 200
        token = csrf(p, session)
        ev_id = json.loads(ev_path[2])["events"][0]["id"]
        # The CSRF token belongs to the session: the server-wide token does not work.
        assert p.request("POST", f"/api/events/{ev_id}/keep", headers=session)[0] == 403
        assert p.request("POST", f"/api/events/{ev_id}/keep", headers={**session, "X-CSRF-Token": token})[0] == 200
        p.request("POST", f"/api/events/{ev_id}/unkeep", headers={**session, "X-CSRF-Token": token})
        # Logging out ends the session.
        assert p.request("POST", "/logout", body="csrf=" + token, headers={**session, **form})[0] == 303
        assert p.request("GET", "/api/events", headers=session)[0] == 401
    finally:
        p.stop()


def test_throttle_slows_guessing_but_lets_the_right_password_in(scanned):
    """Behind one address (a reverse proxy: everyone), guesses are throttled per
    address and per credential, but the right password still gets in."""
    port = free_port()
    p = Proc(["serve", "--recordings", str(scanned), "--port", str(port)],
             env={"MOTIONWATCH_WEB_PASSWORD": "pw"}, port=port)
    try:
        codes = [p.request("GET", "/api/events", headers=_basic("u", f"guess{i}"))[0] for i in range(12)]
        assert codes == [401] * 12
        # The address is throttled now, yet the right password gets through (after a short turn)...
        assert p.request("GET", "/api/events", headers=_basic("u", "pw"))[0] == 200
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, headers, _ = p.request("POST", "/login", body="password=pw&next=/", headers=form)
        assert status == 303 and "mw_session=" in headers["set-cookie"]
        # ...while a burst of new guesses is not all checked: the queue is short.
        with ThreadPoolExecutor(20) as pool:
            burst = list(pool.map(lambda i: p.request("GET", "/api/events", headers=_basic("u", f"burst{i}"))[0],
                                  range(20)))
        assert 429 in burst and set(burst) <= {401, 429} and burst.count(401) < 20
        # A password already found wrong is answered at once, without taking a turn.
        assert p.request("GET", "/api/events", headers=_basic("u", "guess3"))[0] == 401
    finally:
        p.stop()


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- paging over 10,000 events -----------------------------------------------------------------

def make_big_index(root: Path, n: int = 10_000) -> None:
    """An index of n events (rows only, no folders: the API reads the index)."""
    idx = EventIndex(root)
    t0 = 1_790_000_000.0
    base = json.loads(json.dumps({"end_offset_s": 3.0, "start_offset_s": 1.0, "start_frame": 15, "end_frame": 45,
                                  "peak_fraction": 0.02, "frames_with_motion": 30, "snapshot": None, "clip": None,
                                  "boxes": []}))
    from motionwatch.model import iso
    idx.db.execute("PRAGMA synchronous=OFF")
    for i in range(n):
        rec = dict(base, id=f"ev{i:05d}", camera=("front", "back")[i % 2], start=iso(t0 + 60 * i),
                   end=iso(t0 + 60 * i + 2))
        idx.add(rec, Path(f"x/{i}"))
    idx.close()


def test_paging_stays_correct_with_10000_events(tmp_path):
    root = tmp_path / "big"
    make_big_index(root)
    p = Proc(["serve", "--recordings", str(root), "--port", "0"])
    try:
        first = p.get_json("/api/events?limit=60")
        assert first["total"] == 10_000 and first["more"] and first["events"][0]["id"] == "ev09999"
        last = p.get_json("/api/events?limit=60&offset=9960")
        assert [e["id"] for e in last["events"]] == [f"ev{i:05d}" for i in range(39, -1, -1)]
        assert last["more"] is False
        back = p.get_json("/api/events?camera=back&limit=10&offset=100")
        assert back["total"] == 5000 and all(e["camera"] == "back" for e in back["events"])
        assert back["events"][0]["id"] == f"ev{9999 - 200:05d}"
        ev = p.get_json("/api/events/ev05000")
        assert ev["newer_id"] == "ev05001" and ev["older_id"] == "ev04999"
        t0 = time.monotonic()
        for offset in (0, 5000, 9990):
            p.get_json(f"/api/events?limit=60&offset={offset}")
        print(f"3 pages of 60 from 10,000 events in {1000 * (time.monotonic() - t0):.0f} ms")
    finally:
        p.stop()


# --- status and metrics ---------------------------------------------------------------------------

def test_status_and_metrics(server, scanned):
    st = server.get_json("/api/status")
    assert st["mode"] == "serve" and st["events"] >= 1
    door = next(c for c in st["cameras"] if c["name"] == "door")
    assert door["indexed_events"] == st["events"] and door["last_event_id"]
    assert st["disk"]["used_bytes"] > 0 and st["disk"]["limits"]["min_free_gb"] == 1.0
    status, headers, body = server.request("GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert f'motionwatch_indexed_events{{camera="door"}} {st["events"]}' in text
    assert "# TYPE motionwatch_recordings_bytes gauge" in text


def test_security_headers_and_no_listing(server):
    status, headers, body = server.request("GET", "/")
    assert status == 200 and b"/static/app.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert b"http://" not in body and b"https://" not in body          # no CDN, works offline
    assert b"http" not in (Path(__file__).parents[1] / "motionwatch/review/static/app.js").read_bytes() \
        .replace(b"http://www.w3.org/2000/svg", b"")


def test_serve_without_recordings_and_port_in_use(tmp_path, scanned):
    proc = mw("serve", "--recordings", str(tmp_path / "none"), "--port", "0", timeout=30)
    assert proc.returncode == 1 and "no recordings folder" in proc.stderr and "Traceback" not in proc.stderr
    port = free_port()
    p = Proc(["serve", "--recordings", str(scanned), "--port", str(port)], port=port)
    try:
        proc = mw("serve", "--recordings", str(scanned), "--port", str(port), timeout=30)
        assert proc.returncode == 1 and "in use" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        p.stop()


def test_run_with_web_on_an_open_address_refuses_before_watching(tmp_path):
    cfg = tmp_path / "web.yaml"
    cfg.write_text("web:\n  enabled: true\n  host: 0.0.0.0\n")
    proc = mw("run", "--source", "demo", "--config", str(cfg), "--recordings", str(tmp_path / "rec"),
              "--duration", "5", env={"MOTIONWATCH_WEB_PASSWORD": ""}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "web.host" in proc.stderr and "password" in proc.stderr and "Traceback" not in proc.stderr
    assert "watching" not in proc.stderr


def test_status_follows_a_camera_that_is_lost_and_comes_back(tmp_path):
    """A real MJPEG-over-HTTP camera (tests/mjpeg_server.py) killed and restarted
    while `run` serves the web UI: /api/status and /metrics say lost, then connected."""
    from mjpeg_server import ServerProcess
    cam = ServerProcess(mode="still").start()
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cameras:\n  - name: door\n    source: {cam.url}\n    timeout_seconds: 1.0\n"
                   f"web:\n  enabled: true\n  port: {port}\n")
    run = Proc(["run", "--config", str(cfg), "--recordings", str(tmp_path / "rec")], port=port)

    def door() -> dict:
        return next(c for c in run.get_json("/api/status")["cameras"] if c["name"] == "door")

    def wait_for(connected: bool, timeout: float = 30.0) -> dict:
        return wait_until(lambda: (st := door())["connected"] is connected and st, timeout,
                          what=f"/api/status to say connected={connected}")

    try:
        up = wait_for(True)
        assert up["live"] and up["frames"] >= 0
        cam.kill()
        lost = wait_for(False)
        assert lost["since"] >= up["since"]
        assert 'motionwatch_camera_connected{camera="door"} 0' in run.request("GET", "/metrics")[2].decode()
        cam.start()
        back = wait_for(True, timeout=60)
        assert back["reconnects"] >= 1
        assert 'motionwatch_camera_connected{camera="door"} 1' in run.request("GET", "/metrics")[2].decode()
    finally:
        run.stop()
        cam.kill()


def test_a_failed_change_names_the_event_once(tmp_path, two_visits_video):
    """Keep on an event whose folder vanished is a 409 whose message says the id once
    (it used to read "event X: event 'X': ...")."""
    import shutil
    rec = tmp_path / "rec"
    scan_into(two_visits_video[0], rec, "yard", "2026-11-21T10:00:00")
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        ev = first_event(p)
        shutil.rmtree(rec / Path(ev["snapshot"]).parent)
        status, _, body = p.request("POST", f"/api/events/{ev['id']}/keep", headers={"X-CSRF-Token": csrf(p)})
        message = json.loads(body)["error"]
        said = message.count(f"event '{ev['id']}'") + message.count(f"event {ev['id']}")
        assert status == 409 and said == 1 and "is gone" in message, message
    finally:
        p.stop()


def test_tls_serves_https_with_secure_cookies(tmp_path, scanned):
    """web.tls_cert / web.tls_key: HTTPS without a proxy (a self-signed certificate made with openssl)."""
    import http.client
    import ssl
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    cfg = tmp_path / "tls.yaml"
    cfg.write_text(f"web:\n  tls_cert: {cert}\n  tls_key: {key}\n")
    port = free_port()
    p = Proc(["serve", "--config", str(cfg), "--recordings", str(scanned), "--port", str(port)],
             env={"MOTIONWATCH_WEB_PASSWORD": "pw"}, port=port)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
        c.request("POST", "/login", body="password=pw&next=/",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        assert r.status == 303 and "secure" in r.getheader("set-cookie").lower()
        c.close()
        # Plain HTTP on the TLS port gets no page.
        status = None
        try:
            status = p.request("GET", "/api/events")[0]
        except (OSError, http.client.HTTPException):
            pass
        assert status in (None, 400)
    finally:
        p.stop()
    # A key that is not there: one line naming the setting, exit 2.
    cfg.write_text(f"web:\n  tls_cert: {cert}\n  tls_key: {tmp_path / 'nokey.pem'}\n")
    proc = mw("serve", "--config", str(cfg), "--recordings", str(scanned), "--port", "0", timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "web.tls_cert" in lines[0], proc.stderr


def test_allowed_hosts_adds_names_and_keeps_the_rule(tmp_path, scanned):
    """web.allowed_hosts: a configured name (and a wildcard) is answered, others still are not;
    a bad entry is one line and exit 2."""
    cfg = tmp_path / "hosts.yaml"
    cfg.write_text('web:\n  allowed_hosts: [pi.local, "*.home.example"]\n')
    port = free_port()
    p = Proc(["serve", "--config", str(cfg), "--recordings", str(scanned), "--port", str(port)], port=port)
    try:
        for host, want in ((f"pi.local:{port}", 200), ("cam.home.example", 200), (f"127.0.0.1:{port}", 200),
                           ("pi.local.evil.example", 400), ("home.example.evil", 400), ("evil.example", 400)):
            assert p.request("GET", "/api/session", headers={"Host": host})[0] == want, host
    finally:
        p.stop()
    cfg.write_text('web:\n  allowed_hosts: ["http://pi.local:8765"]\n')
    proc = mw("serve", "--config", str(cfg), "--recordings", str(scanned), "--port", "0", timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "web.allowed_hosts" in lines[0], proc.stderr
