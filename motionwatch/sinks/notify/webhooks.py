"""Webhooks: POST each ended event's JSON to the configured URLs.

Each URL has its own background worker (thread and bounded queue), so one
slow or dead receiver never delays another. A failed delivery (network error,
timeout, HTTP 5xx or 429) is retried with exponential backoff up to `retries`
times, keeping the order of events; other 4xx answers are the receiver
refusing it and are not retried. With `snapshot: true` the request is multipart/form-data with the
parts `event` (application/json) and `snapshot` (image/jpeg).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from motionwatch import __version__
from motionwatch.config import WebhookConfig
from motionwatch.events import EventEnded
from motionwatch.sinks.worker import Worker, event_record
from motionwatch.sinks.runner import Sink
from motionwatch.config.source_spec import redact

log = logging.getLogger("motionwatch.webhooks")

QUEUE_SIZE = 100
BACKOFF_START = 1.0
BACKOFF_CAP = 60.0
CLOSE_GRACE = 10.0     # seconds spent at shutdown delivering what is still queued


class Webhooks(Sink):
    name = "webhooks"

    def __init__(self, hooks: tuple[WebhookConfig, ...], root: Path):
        self.root = Path(root)
        self.endpoints = [Endpoint(h, self.root) for h in hooks]

    def handle(self, signal) -> None:
        if isinstance(signal, EventEnded):
            rec = event_record(signal, self.root)
            for ep in self.endpoints:
                ep.submit(rec)

    def close(self) -> None:
        deadline = time.monotonic() + CLOSE_GRACE
        for ep in self.endpoints:
            ep.close(deadline)


class Endpoint:
    """One URL: its events delivered in order by its own background worker."""

    def __init__(self, cfg: WebhookConfig, root: Path):
        self.cfg = cfg
        self.root = root
        self.shown = redact(cfg.url)
        self.sent = self.failed = 0
        self._closing = threading.Event()
        self._deadline = float("inf")
        self.worker = Worker(f"webhook {self.shown}", self._deliver, maxsize=QUEUE_SIZE)

    @property
    def dropped(self) -> int:
        return self.worker.dropped

    def submit(self, rec: dict) -> None:
        self.worker.submit(rec)

    def close(self, deadline: float) -> None:
        self._deadline = deadline
        self._closing.set()
        if not self.worker.close(max(0.0, deadline - time.monotonic()) + 1):
            log.warning("webhook %s: %d event(s) not delivered at shutdown", self.shown, self.worker.pending)

    def _deliver(self, rec: dict) -> None:
        body, ctype = self._body(rec)   # once: a retry sends the same bytes
        delay = BACKOFF_START
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                if not self._wait(delay):
                    break
                delay = min(delay * 2, BACKOFF_CAP)
            problem, retry = self._post(body, ctype)
            if problem is None:
                self.sent += 1
                return
            if not retry:
                break
            log.info("webhook %s: event %s: %s (try %d of %d)", self.shown, rec.get("id"), problem,
                     attempt + 1, self.cfg.retries + 1)
        self.failed += 1
        log.error("webhook %s: event %s not delivered: %s", self.shown, rec.get("id"), problem)

    def _wait(self, delay: float) -> bool:
        """Sleep before a retry; False when shutdown leaves no time for it."""
        end = time.monotonic() + delay
        if self._closing.wait(delay):   # shutdown began: retry only if it fits before the deadline
            if end > self._deadline:
                return False
            time.sleep(max(0.0, end - time.monotonic()))
        return True

    def _post(self, body: bytes, ctype: str) -> tuple[str | None, bool]:
        """One request; (None, _) on success, else (what went wrong, worth retrying)."""
        req = urllib.request.Request(self.cfg.url, data=body, method="POST", headers={
            "Content-Type": ctype, "User-Agent": f"motionwatch/{__version__}"})
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_seconds) as resp:
                resp.read(65536)
            return None, False
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code} {e.reason}", e.code >= 500 or e.code in (408, 429)
        except urllib.error.URLError as e:
            return f"{e.reason}", True
        except (OSError, ValueError) as e:  # timeouts, resets, a malformed answer
            return f"{e or type(e).__name__}", True

    def _body(self, rec: dict) -> tuple[bytes, str]:
        data = json.dumps(rec).encode()
        if not self.cfg.snapshot:
            return data, "application/json"
        jpeg = b""
        if rec.get("snapshot"):
            try:
                jpeg = (self.root / rec["snapshot"]).read_bytes()
            except OSError as e:
                log.warning("webhook %s: snapshot of event %s unreadable: %s", self.shown, rec.get("id"), e)
        return multipart(data, jpeg, rec.get("id", "event"))


def multipart(event_json: bytes, jpeg: bytes, name: str) -> tuple[bytes, str]:
    boundary = "motionwatch-" + secrets.token_hex(12)
    parts = [(b'Content-Disposition: form-data; name="event"\r\n'
              b"Content-Type: application/json\r\n\r\n", event_json)]
    if jpeg:
        parts.append((f'Content-Disposition: form-data; name="snapshot"; filename="{name}.jpg"\r\n'
                      "Content-Type: image/jpeg\r\n\r\n".encode(), jpeg))
    b = boundary.encode()
    body = b"".join(b"--" + b + b"\r\n" + head + payload + b"\r\n" for head, payload in parts)
    return body + b"--" + b + b"--\r\n", f"multipart/form-data; boundary={boundary}"
