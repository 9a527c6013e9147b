"""The wrong-password brake: per client address and per credential.

- Per credential: a password already found wrong is answered "wrong" at once,
  from its keyed fingerprint, without being checked or counted again. A script
  retrying a stale password then neither burns its address's budget nor gets
  anything new.
- Per address: after MAX_FAILS new wrong passwords within WINDOW seconds, the
  address's next attempts are checked one at a time, SPACING seconds apart,
  each waiting at most MAX_WAIT for its turn (beyond that: refused, 429).
  Guessing slows to one try per SPACING, while the right password, whoever
  sends it from behind the same proxy, still gets in after a short wait instead
  of being locked out.

No clock other than time.monotonic; no I/O; safe to call from any thread.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque

WINDOW = 60.0
MAX_FAILS = 10
SPACING = 1.0
MAX_WAIT = 5.0
MAX_ADDRESSES = 10_000
MAX_KNOWN_WRONG = 4096


class LoginThrottle:
    def __init__(self):
        self._key = secrets.token_bytes(32)  # fingerprints mean nothing outside this process
        self._lock = threading.Lock()
        self._fails: dict[str, deque[float]] = {}
        self._next_turn: dict[str, float] = {}
        self._wrong: OrderedDict[bytes, None] = OrderedDict()

    def _fingerprint(self, given: str) -> bytes:
        return hmac.new(self._key, given.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def known_wrong(self, given: str) -> bool:
        fp = self._fingerprint(given)
        with self._lock:
            if fp in self._wrong:
                self._wrong.move_to_end(fp)
                return True
            return False

    def wait_for_turn(self, client: str) -> float | None:
        """Seconds this attempt must wait before its password is checked (0: now),
        or None when the address already has MAX_WAIT of attempts queued."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent(client, now)
            if len(recent) < MAX_FAILS:
                return 0.0
            turn = max(now, self._next_turn.get(client, now))
            if turn - now > MAX_WAIT:
                return None
            self._next_turn[client] = turn + SPACING
            return turn - now

    def failed(self, client: str, given: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._fails) >= MAX_ADDRESSES:  # many addresses guessing: forget the quiet ones
                for c in [c for c in self._fails if not self._recent(c, now)]:
                    self._fails.pop(c, None)
                    self._next_turn.pop(c, None)
            self._fails.setdefault(client, deque(maxlen=MAX_FAILS * 4)).append(now)
            self._wrong[self._fingerprint(given)] = None
            while len(self._wrong) > MAX_KNOWN_WRONG:
                self._wrong.popitem(last=False)

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._fails.get(client, deque())
        while times and now - times[0] >= WINDOW:
            times.popleft()
        return times
