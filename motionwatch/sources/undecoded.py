"""Which packets of a file go undecoded, and where their frames fall in display order.

A packet is left out of the decoder when its picture is disposable (media.nal)
and the frame it shows is not wanted (the capture loop's detection.fps schedule
says it will not be analysed). Its frame still counts: it is handed on as an
`UndecodedFrame` at its place among the decoded ones, so frame indices, times,
motion counts and events are those of a decode of every frame.

Packets arrive in decode order, frames leave in display order (B-frames). The
index a packet's frame will have is the position of the next frame out plus the
frames before it in display order still on their way: the pts sent to the
decoder and not yet out, and those left out and not yet placed. A guess that is
wrong (a stream that reorders across more than that) costs no exactness: the
frame is decoded after all when the loop finds it due (`UndecodedFrame.with_picture`).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Callable

from motionwatch.media.nal import disposable


class SkipPlan:
    """One stream's packets left out, and the places in display order of their frames."""

    def __init__(self, codec: str, prefix: int, wanted: Callable[[int], bool]):
        self.codec = codec
        self.prefix = prefix
        self.wanted = wanted          # frame index -> will the capture loop analyse it
        self.stopped = False          # no more packets are left out (after a damaged packet)
        self.left_out = 0
        self._sent: list[int] = []    # pts decoding, not yet out
        self._skipped: list[int] = []   # pts left out, not yet placed

    def leave_out(self, pkt, position: int) -> bool:
        """Whether to keep `pkt` from the decoder; `position` is the index the next
        frame out will have. Packets that go to the decoder are remembered."""
        pts = pkt.pts
        if pts is None or pkt.is_discard:   # an edit list hides its frame: the decoder drops it, nothing to place
            return False
        # The disposable check first: it is the cheaper one, and most packets are not.
        if (self.stopped or not disposable(pkt, self.codec, self.prefix)
                or self.wanted(position + self._ahead(pts))):
            insort(self._sent, pts)
            return False
        insort(self._skipped, pts)
        self.left_out += 1
        return True

    def _ahead(self, pts: int) -> int:
        """Frames still to come out that are shown before `pts`."""
        n = 0
        for pending in (self._sent, self._skipped):
            n += bisect_left(pending, pts)
        return n

    def before(self, pts: int | None) -> list[int]:
        """The left-out pts to hand on before the decoded frame shown at `pts`.

        Frames leave the decoder in display order, so what was sent earlier and
        shows before `pts` will never come out (the decoder dropped it)."""
        if pts is None:
            return []
        del self._sent[:bisect_left(self._sent, pts + 1)]
        return self._take(bisect_left(self._skipped, pts))

    def rest(self) -> list[int]:
        """The left-out pts still to hand on once the decoder is drained."""
        return self._take(len(self._skipped))

    def _take(self, n: int) -> list[int]:
        taken = self._skipped[:n]
        del self._skipped[:n]
        return taken
