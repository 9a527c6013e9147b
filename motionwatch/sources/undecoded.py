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

A disposable frame whose next frame shown is decoded anyway (it was sent to the
decoder before it, as the P-frame after a lone B-frame is) may pass its turn to
be analysed to that frame (`passes`): the capture loop analyses the next frame
instead, one frame interval later, and keeps its schedule. The frame is then
left out even when due: x264's adaptive B-frames land on the analysed frames
about half the time, and decoding them only to be analysed cost a tenth of a
scan of a real camera file (docs/performance.md).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Callable

from motionwatch.media.nal import disposable


# More frames marked as passing their turn on than can be waiting to come out.
MAX_PASSES = 256


class SkipPlan:
    """One stream's packets left out, and the places in display order of their frames."""

    def __init__(self, codec: str, prefix: int, wanted: Callable[[int], bool] | None,
                 passing: Callable[[], bool] | None = None):
        self.codec = codec
        self.prefix = prefix
        # frame index -> does the capture loop need its picture (None: every frame
        # is decoded; the plan only marks the frames that pass their turn on)
        self.wanted = wanted
        self.passing = passing        # () -> the loop lets a due frame that `passes` pass its turn on
        self.passes: set[int] = set()   # pts of disposable frames whose next frame shown is decoded anyway
        self.stopped = False          # no more packets are left out (after a damaged packet)
        self.left_out = 0
        self._keyed = False            # a keyframe has gone to the decoder
        self._sent: list[int] = []    # pts decoding, not yet out
        self._skipped: list[int] = []   # pts left out, not yet placed

    def leave_out(self, pkt, position: int) -> bool:
        """Whether to keep `pkt` from the decoder; `position` is the index the next
        frame out will have. Packets that go to the decoder are remembered."""
        pts = pkt.pts
        if pts is None or pkt.is_discard:   # an edit list hides its frame: the decoder drops it, nothing to place
            return False
        if not self._keyed:
            # Before the first keyframe (a recording or a live join that starts
            # mid-GOP) the decoder drops what cannot be decoded: send it all, so
            # that no frame the decoder never gives is counted.
            self._keyed = pkt.is_keyframe
            if not self._keyed:
                return False
        # The disposable check first: it is the cheaper one, and most packets are not.
        if not disposable(pkt, self.codec, self.prefix):
            insort(self._sent, pts)
            return False
        # Which frames pass their turn depends on the packets alone, never on what
        # is left out, so every way of decoding a file analyses the same frames.
        passes = self.passing is not None and self._next_is_sent(pkt)
        if passes:
            self.passes.add(pts)
        if self.stopped or self.wanted is None or (
                self.wanted(position + self._ahead(pts)) and not (passes and self.passing())):
            insort(self._sent, pts)
            return False
        insort(self._skipped, pts)
        self.left_out += 1
        return True

    def _next_is_sent(self, pkt) -> bool:
        """Whether the frame shown right after `pkt`'s (one frame duration later) is
        decoding already. Without a duration nothing can be said: no."""
        after = pkt.pts + (pkt.duration or 0)
        i = bisect_left(self._sent, after)
        return after > pkt.pts and i < len(self._sent) and self._sent[i] == after

    def passes_on(self, pts: int | None) -> bool:
        """Whether the frame shown at `pts` passes its turn on (asked once, as it is handed out)."""
        if pts in self.passes:
            self.passes.discard(pts)
            return True
        if len(self.passes) > MAX_PASSES:   # marked frames the decoder never gave out
            self.passes = {p for p in self.passes if p > (pts or 0)}
        return False

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
