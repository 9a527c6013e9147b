"""Webhooks against a real HTTP receiver on loopback: JSON and multipart
bodies from a real `run`, retries with backoff on 5xx, no retry on 4xx, a dead
receiver logged and given up on, and bad URLs rejected as config errors."""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import events_json, mw, wait_until
from motionwatch.config import WebhookConfig
from motionwatch.events import EventEnded
from motionwatch.sinks.notify.webhooks import Webhooks


class Receiver:
    """Records every POST; /flaky answers 503 twice before 200, /reject always 400."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    hits[self.path] = hits.get(self.path, 0) + 1
                    n = hits[self.path]
                code = 400 if self.path == "/reject" else 503 if self.path == "/flaky" and n <= 2 else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def multipart_parts(req: dict) -> dict[str, tuple[str, bytes]]:
    raw = f"Content-Type: {req['headers']['Content-Type']}\r\n\r\n".encode() + req["body"]
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    return {p.get_param("name", header="content-disposition"): (p.get_content_type(), p.get_payload(decode=True))
            for p in msg.iter_parts()}


def test_run_posts_event_json_and_multipart_snapshot(tmp_path, recordings, receiver):
    cfg = tmp_path / "mw.yaml"
    cfg.write_text(json.dumps({
        "events": {"gap_seconds": 1.0, "post_roll_seconds": 0.5},
        "webhooks": [{"url": receiver.url("/json")}, {"url": receiver.url("/multi"), "snapshot": True}]}))
    proc = mw("run", "--source", "demo", "--config", str(cfg), "--recordings", str(recordings), "--duration", "7")
    assert proc.returncode == 0, proc.stderr
    events = events_json(recordings)
    assert events
    plain, multi = receiver.at("/json"), receiver.at("/multi")
    assert len(plain) == len(multi) == len(events)
    by_id = {e["id"]: e for e in events}
    for req in plain:
        assert req["headers"]["Content-Type"] == "application/json"
        assert req["headers"]["User-Agent"].startswith("motionwatch/")
        sent = json.loads(req["body"])
        stored = by_id[sent["id"]]
        assert sent["state"] == "end"
        for key in ("camera", "start", "end", "peak_fraction", "snapshot", "boxes", "clip"):
            assert sent[key] == stored[key], key
    for req in multi:
        parts = multipart_parts(req)
        ctype, body = parts["event"]
        assert ctype == "application/json"
        sent = json.loads(body)
        ctype, jpeg = parts["snapshot"]
        assert ctype == "image/jpeg"
        assert jpeg == (recordings / by_id[sent["id"]]["snapshot"]).read_bytes()


def ended(tmp_path: Path, event_id: str = "abc123") -> EventEnded:
    """An EventEnded as the recorder leaves it (saved record and folder set)."""
    folder = tmp_path / "cam" / event_id
    folder.mkdir(parents=True)
    (folder / "snapshot.jpg").write_bytes(b"\xff\xd8fake\xff\xd9")
    saved = {"id": event_id, "camera": "cam", "start": "2026-11-25T10:00:00.000+00:00",
             "end": "2026-11-25T10:00:05.000+00:00", "peak_fraction": 0.1, "snapshot": f"cam/{event_id}/snapshot.jpg",
             "clip": None, "boxes": []}
    ev = SimpleNamespace(id=event_id, camera="cam", first=SimpleNamespace(wall=time.time()))
    return EventEnded(ev, None, "gap", saved=saved, folder=str(folder))


def test_5xx_is_retried_with_backoff_until_delivered(tmp_path, receiver, caplog):
    hooks = Webhooks((WebhookConfig(url=receiver.url("/flaky"), retries=3, timeout_seconds=5),), tmp_path)
    with caplog.at_level(logging.INFO):
        hooks.handle(ended(tmp_path))
        assert wait_until(lambda: hooks.endpoints[0].sent == 1)
        hooks.close()
    tries = receiver.at("/flaky")
    assert len(tries) == 3 and all(json.loads(t["body"])["id"] == "abc123" for t in tries)
    assert "HTTP 503" in caplog.text and hooks.endpoints[0].failed == 0


def test_4xx_is_not_retried_and_a_dead_receiver_is_given_up(tmp_path, receiver, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    hooks = Webhooks((WebhookConfig(url=receiver.url("/reject"), retries=5),
                      WebhookConfig(url=dead, retries=1, timeout_seconds=1)), tmp_path)
    with caplog.at_level(logging.INFO):
        hooks.handle(ended(tmp_path))
        assert wait_until(lambda: all(ep.failed == 1 for ep in hooks.endpoints))
        hooks.close()
    assert len(receiver.at("/reject")) == 1
    assert "HTTP 400" in caplog.text and "not delivered" in caplog.text
    assert "Connection refused" in caplog.text


def test_a_bad_url_is_a_config_error(tmp_path, recordings):
    cfg = tmp_path / "mw.yaml"
    cfg.write_text('webhooks:\n  - url: "ftp://example.org/x"\n')
    proc = mw("run", "--source", "demo", "--config", str(cfg), "--recordings", str(recordings), "--duration", "1")
    assert proc.returncode == 2
    assert "webhooks[0].url: 'ftp://example.org/x' is not allowed; allowed: an http:// or https:// URL" in proc.stderr
    assert "Traceback" not in proc.stderr
