"""uvicorn's h11 protocol with the three connection limits it lacks.

uvicorn parses HTTP (h11), answers requests over `limit_concurrency` with 503
and closes idle keep-alive connections after `timeout_keep_alive`. It has no
deadline for a request (a client sending one header line, or one body byte,
every few seconds holds its connection for ever, and a fresh connection that
sends nothing is never timed out), it accepts any number of connections, and
a client that stops reading keeps its response (an MJPEG stream, a clip)
parked for ever. This subclass adds exactly those, each a timer or a check on
the event loop; everything else is uvicorn's. It uses uvicorn's H11Protocol
attributes (conn, connections, cycle, loop, transport); tests/test_web_attacks.py
checks each limit against a real server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("motionwatch.review")

MAX_CONNECTIONS = 200     # open connections (each costs a socket, no thread)
MAX_PER_ADDRESS = 50      # of those, from one client address: one client cannot fill the cap
REQUEST_SECONDS = 10.0    # from connecting (or the previous response) until the whole request (head, body) arrived
STALL_SECONDS = 30.0      # a client that reads nothing for this long while we have bytes for it is dropped
# The kernel's send buffer per connection. Linux grows it up to net.ipv4.tcp_wmem's
# maximum (4 MB here) for a client that reads nothing: the live view's frames then
# filled it for about a minute before a stalled viewer counted as stalled at all, and
# each such viewer held 4 MB. 256 kB (Linux doubles it) still carries the live view
# and downloads at LAN speed.
SEND_BUFFER = 256 * 1024


class GuardedH11Protocol(H11Protocol):
    request_seconds = REQUEST_SECONDS
    stall_seconds = STALL_SECONDS
    max_connections = MAX_CONNECTIONS
    max_per_address = MAX_PER_ADDRESS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            except OSError:
                pass   # a socket that refuses it keeps the kernel's own size
        self._opened = time.monotonic()
        self._head_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        # Connections that are mid-request (a body that never comes) cannot be evicted;
        # without a share per address, one client holding 200 of them locked everyone out.
        mine = self._same_address()
        if len(mine) > self.max_per_address and not self._evict_idle(mine):
            log.debug("web: %d connections from %s; closing a new one", len(mine) - 1, self._address())
            self._refuse()
            return
        if len(self.connections) > self.max_connections and not self._evict_idle(self.connections):
            log.debug("web: %d connections all busy; closing a new one", len(self.connections) - 1)
            self._refuse()
            return
        self._arm_head_deadline()

    def _refuse(self) -> None:
        """Close this new connection before reading a byte (cheaper than any answer),
        counted out at once as an evicted one is: its connection_lost comes later on
        the loop, and a burst of refused ones still counted made the cap refuse the
        next client too."""
        self.connections.discard(self)
        self.transport.abort()

    def _address(self) -> str | None:
        return self.client[0] if self.client else None

    def _same_address(self) -> list:
        me = self._address()
        return [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c._address() == me]

    def _evict_idle(self, among) -> bool:
        """At a cap, close the oldest connection `among` those that is waiting for a
        request (idle, or sending its head): a flood of idle connections then costs
        its own members, while a new client that sends its request at once is served."""
        idle = [c for c in among if c is not self and isinstance(c, GuardedH11Protocol)
                and c.conn.their_state is h11.IDLE and (c.cycle is None or c.cycle.response_complete)
                and not c.transport.is_closing()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._opened)
        self.connections.discard(oldest)   # counted out now; connection_lost follows on the loop
        oldest.transport.abort()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_head_timer")
        self._cancel("_stall_timer")
        super().connection_lost(exc)

    # -- the request deadline --------------------------------------------------------

    def _arm_head_deadline(self) -> None:
        self._cancel("_head_timer")
        self._head_timer = self.loop.call_later(self.request_seconds, self._request_overdue)

    def _request_overdue(self) -> None:
        self._head_timer = None
        # h11 keeps the client IDLE until a whole head is parsed and in SEND_BODY until
        # the body is in; past that (DONE) the request is being answered and the
        # keep-alive and stall rules apply instead.
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            log.debug("web: request not complete after %.0f s; closing", self.request_seconds)
            self.transport.abort()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head has the same deadline

    # -- the write-stall deadline --------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self._cancel("_stall_timer")
        self._stall_timer = self.loop.call_later(self.stall_seconds, self._stalled)

    def resume_writing(self) -> None:
        self._cancel("_stall_timer")
        super().resume_writing()

    def _stalled(self) -> None:
        self._stall_timer = None
        if not self.transport.is_closing():
            log.debug("web: client read nothing for %.0f s; dropping it", self.stall_seconds)
            self.transport.abort()  # connection_lost then ends the response cleanly

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name, None)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)
