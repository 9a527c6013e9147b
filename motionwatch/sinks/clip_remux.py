"""Event clips that are the source's own packets (H.264/HEVC): stream copy into MP4.

The capture loop hands the event's packets over from the source's packet ring
in batches (`ClipPackets`), oldest first, starting on the keyframe at or
before (first motion - pre-roll). They are muxed here, on the sink thread, as
they come, except the packets after the newest keyframe that is certainly
inside the clip: only at the event's end is it known where the clip stops,
after the shortest run whose display order is whole (media.remux.closing_end).
So the sink holds at most about one GOP, however long the event. Parts
(`events.max_seconds`) start on keyframes, so they join without a gap or an
overlap.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from motionwatch.media.remux import Mp4Remux, closing_end
from motionwatch.sinks.clip import oserror_of, publish, tmp_name


class PacketClip:
    """Same bookkeeping as `EventClip` (done, unrenamed, errors, refused) so the recorder treats both alike."""

    def __init__(self, folder: Path, event, template, time_base: Fraction, fps: float, max_seconds: float,
                 first: int):
        """`first`: the ring's clock at the event's first picture (events.ClipPackets:
        the clip's times are on that clock, which runs on across a restart of the
        stream's own)."""
        self.folder = folder
        self.event = event
        self.template = template
        self.time_base = time_base
        self.fmt = template.coding   # event.json's clip_format: av1, whichever decoder reads it
        self.fps = fps
        self.max_pts = int(max_seconds / time_base)
        self.done: list[Path] = []
        self.unrenamed: list[tuple[Path, Path]] = []
        self.errors: list[str] = []
        self.reported = 0
        self.refused: list[str] = []  # what the source's packets could not become (see _fail)
        self.pending: list = []       # packets not yet muxed (decode order)
        self.part: Mp4Remux | None = None
        self.number = 0
        self.failed = False
        self.seconds = 0.0
        self.first_clock = first
        self._start: int | None = None       # the clock at the first whole part's first packet
        self.finished = False

    def add(self, frame, cut: bool = False) -> None:   # frames are not needed: the packets are the clip
        pass

    def split(self) -> None:
        pass

    def packets(self, packets: list, upto: int) -> None:
        """More of the event's packets; those before the newest keyframe shown at or
        before `upto` (a frame with motion: the clip reaches it) are muxed now."""
        self.pending.extend(packets)
        cut = 0
        for i, p in enumerate(self.pending):
            if i and p.key and p.clock <= upto:
                cut = i
        if cut:
            self._mux(self.pending[:cut])
            del self.pending[:cut]

    def end(self, end: int, at_eof: bool) -> None:
        """The event is over: the clip ends once display order is whole past `end`."""
        n = closing_end(self.pending, end, at_eof, time="clock") if self.pending else 0
        self._mux(self.pending[:n])
        self.pending = []

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.pending = []
        self._close_part()

    def _mux(self, packets: list) -> None:
        for p in packets:
            if self.failed:
                return
            template = p.template or self.template
            if self.part is not None and template is not self.part.template:
                self._close_part()   # the picture size changed: a new part with the new stream facts
            if self.part is None and not p.key:
                continue   # a part must start on a keyframe
            if self.part is not None and p.key and p.clock - self.part.start >= self.max_pts:
                self._close_part()
            try:
                if self.part is None:
                    self._open_part(template)
                    self.part.start = p.clock
                self.part.write(p.pts, p.dts, p.duration, p.key, p.data)
            except (OSError, av.FFmpegError) as e:
                self._fail(e)

    def _open_part(self, template) -> None:
        self.number += 1
        final = self.folder / f"clip-{self.number:03d}.mp4"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.part = Mp4Remux(tmp_name(final), template)
        self.part.final = final

    def _fail(self, e: Exception) -> None:
        err = oserror_of(e)
        part, self.part = self.part, None
        name = part.final.name if part is not None else f"clip-{self.number:03d}.mp4"
        if isinstance(e, av.FFmpegError) and not isinstance(e, OSError):
            # The muxer refused the packets themselves (a damaged file's timestamps,
            # say), not the disk: writing is not broken, and a retry would fail alike.
            self.refused.append(f"{name} abandoned: the source's packets cannot be copied into an MP4 "
                                f"({err.strerror or e}); the event is saved with its snapshot")
        else:
            self.errors.append(f"{name} abandoned: {err.strerror or err}")
        self.failed = True
        if part is not None:
            try:
                part.close()
            except (OSError, av.FFmpegError):
                pass
            try:
                part.path.unlink()
            except OSError:
                pass

    def _close_part(self) -> None:
        part, self.part = self.part, None
        if part is None:
            return
        try:
            part.close()
        except (OSError, av.FFmpegError) as e:
            self.part = part
            self._fail(e)
            return
        if self._start is None:
            self._start = part.start
        self.seconds += part.seconds
        publish(part.path, part.final, self.done, self.unrenamed)

    @property
    def parts(self) -> list[Path]:
        return sorted(self.done + [final for _, final in self.unrenamed])

    def summary(self, parts: list[Path]) -> dict:
        """event.json's clip_* fields for the parts that exist."""
        fields = {"clip_format": self.fmt, "clip_fps": round(self.fps, 3),
                  "clip_seconds": round(self.seconds, 2) if parts else 0.0}
        if parts and self._start is not None:
            offset = self.event.first.ts - float((self.first_clock - self._start) * self.time_base)
            fields.update(clip_start_offset_s=round(max(0.0, offset), 3), clip_copied=True)
        return fields
