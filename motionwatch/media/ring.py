"""The compressed pre-roll: a ring of a stream's packets, from the keyframe
before the pre-roll starts to the newest packet.

It costs the stream's bitrate times the seconds it keeps (a 1080p camera at
4 Mbit/s: 1 MB for 2 s), where decoded frames would cost 3 MB each. The
demuxing thread pushes; the capture loop takes packet ranges out for clips.
While an event is open the ring is pinned at the event's first packet, so
nothing the clip still needs is dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass(slots=True)
class Packet:
    """One compressed picture: its bytes stay in the demuxer's buffer (`data`)."""

    seq: int            # position in decode order since the ring began
    pts: int
    dts: int | None
    key: bool
    duration: int
    data: av.Packet
    template: object = None   # media.remux.CodecTemplate: the stream facts it was coded with
    clock: int = 0      # the ring's own time: pts, carried on across a stream clock that jumped back


class PacketRing:
    """Packets in decode order, trimmed to `keep` seconds of presentation time
    back from the newest (whole GOPs: the trim stops at a keyframe)."""

    def __init__(self, time_base: Fraction, keep_s: float, template=None):
        self.time_base = time_base
        self.template = template   # the stream facts packets pushed from now on are tagged with
        self.keep = int(keep_s / time_base)
        self._items: deque[Packet] = deque()
        self._keys: deque[Packet] = deque()    # the keyframes among them, oldest first
        self._lock = threading.Lock()
        self._seq = 0
        self._newest = None     # highest clock seen
        self._offset = 0        # clock - pts since the stream's clock last jumped back
        self._pin: int | None = None    # lowest seq that must stay (an open clip)

    def push(self, pkt: av.Packet) -> None:
        if pkt.pts is None or pkt.size == 0:
            return   # flush packets and ones without a time cannot be placed in a clip
        item = Packet(self._seq, pkt.pts, pkt.dts, bool(pkt.is_keyframe), pkt.duration or 0, pkt, self.template)
        with self._lock:
            self._seq += 1
            item.clock = self._clock(item)
            self._items.append(item)
            if item.key:
                self._keys.append(item)
            if self._newest is None or item.clock > self._newest:
                self._newest = item.clock
            self._trim()

    def _clock(self, item: Packet) -> int:
        """The ring's time for a packet. A stream whose clock jumps back by more than
        the ring keeps (a looped restream, a camera that restarted its counter, an
        MPEG-TS clock wrapping after 26.5 h) would otherwise never reach the horizon
        again until its times passed the old ones, and the ring would grow all that
        while (the bitrate times however long that is); so the ring's clock carries
        on from the newest packet instead. B-frames go back a few frames only."""
        clock = item.pts + self._offset
        if self._newest is not None and clock < self._newest - self.keep:
            self._offset = self._newest + max(1, item.duration) - item.pts
            clock = item.pts + self._offset
        return clock

    def _trim(self) -> None:
        horizon = self._newest - self.keep
        items, keys = self._items, self._keys
        # Drop what precedes the second keyframe only when that keyframe is itself
        # before the horizon: the ring always starts on a keyframe at or before it.
        while len(keys) >= 2 and keys[1].clock <= horizon and (self._pin is None or keys[1].seq <= self._pin):
            keys.popleft()
            while items[0].seq < keys[0].seq:
                items.popleft()

    def follow_size(self, size: tuple[int, int], rotation: int = 0) -> None:
        """The decoder saw pictures of `size` (coded) shown turned by `rotation`: if that
        is a new size (a camera reconfigured mid-stream), packets from the newest
        keyframe on, and all pushed later, carry stream facts of the new size, so a
        clip part that starts there is muxed with them (sinks.clip_remux)."""
        if self.template is None:
            return
        # A clip encoded from the packets carries the turn (their own decoder, made
        # from codec parameters alone, does not see the container's display matrix).
        self.template.rotation = rotation
        if size == self.template.size:
            return
        self.template = template = self.template.resized(size)
        with self._lock:
            start = self._keys[-1].seq if self._keys else 0
            for p in reversed(self._items):
                if p.seq < start:
                    break
                p.template = template

    def since(self, pts: int, back: int = 0) -> list[Packet]:
        """Packets from the last keyframe shown at or before `back` ticks before the
        newest packet shown at `pts` (the oldest keyframe if none is).

        Reckoned on the ring's clock, which runs on across a stream whose times
        started again (files joined end to end, a camera that restarted its
        counter): the pre-roll of a picture just after the restart is `back` of the
        stream as it came, not every packet kept because all times before the
        restart are larger."""
        with self._lock:
            items = list(self._items)
        at = self.clock_at(pts, items)
        start = 0
        for i, p in enumerate(items):
            if p.key and p.clock <= at - back:
                start = i
        while start < len(items) and not items[start].key:
            start += 1
        return items[start:]

    def clock_at(self, pts: int, items: list[Packet] | None = None) -> int:
        """The ring's clock of the newest packet shown at `pts` (a picture decoded from
        the ring's packets), or `pts` on the clock as it runs now when none is kept."""
        if items is None:
            with self._lock:
                items = list(self._items)
        return next((p.clock for p in reversed(items) if p.pts == pts), pts + self._offset)

    def after(self, seq: int) -> list[Packet]:
        """Packets pushed after the one numbered `seq`."""
        with self._lock:
            return [p for p in self._items if p.seq > seq]

    def pin(self, seq: int | None) -> None:
        """Keep every packet from `seq` on (None: let the ring trim again)."""
        with self._lock:
            self._pin = seq
            if seq is None and self._newest is not None:
                self._trim()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(p.data.size for p in self._items)

    def __len__(self) -> int:
        return len(self._items)
