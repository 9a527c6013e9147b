"""uvicorn's h11 protocol with the three connection limits it lacks.

uvicorn parses HTTP (h11), answers requests over `limit_concurrency` with 503
and closes idle keep-alive connections after `timeout_keep_alive`. It has no
deadline for a request head (a client sending one header line every few
seconds holds its connection for ever, and a fresh connection that sends
nothing is never timed out), it accepts any number of connections, and a
client that stops reading keeps its response (an MJPEG stream, a clip) parked
for ever. This subclass adds exactly those, each as one timer on the event
loop; everything else is uvicorn's.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("motionwatch.web")

MAX_CONNECTIONS = 200     # open connections; more are closed at once (each costs a socket, no thread)
HEAD_SECONDS = 10.0       # from connecting (or the previous response) until the whole request head arrived
STALL_SECONDS = 30.0      # a client that reads nothing for this long while we have bytes for it is dropped


class GuardedH11Protocol(H11Protocol):
    head_seconds = HEAD_SECONDS
    stall_seconds = STALL_SECONDS
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            # Closed before reading a byte: cheaper than any answer, and the client sees a reset.
            log.debug("web: connection cap (%d) reached; closing a new connection", self.max_connections)
            transport.abort()
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_head_timer")
        self._cancel("_stall_timer")
        super().connection_lost(exc)

    # -- the request-head deadline -------------------------------------------------

    def _arm_head_deadline(self) -> None:
        self._cancel("_head_timer")
        self._head_timer = self.loop.call_later(self.head_seconds, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_timer = None
        # h11 leaves the client in IDLE until a complete head is parsed; past that the
        # request is being served and the keep-alive / stall rules apply instead.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("web: request head not complete after %.0f s; closing", self.head_seconds)
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
