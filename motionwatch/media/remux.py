"""Stream-copy cuts: a run of the source's own packets written as MP4 (faststart).

No decode, no encode: the clip holds the source's frames bit for bit. A part
starts on a keyframe, and ends after the shortest run of packets whose display
times are whole (`closing_end`: with B-frames, a packet later in decode order
may be shown earlier).
"""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path
from typing import Protocol, Sequence

import av


class Timed(Protocol):
    pts: int
    key: bool


def closing_end(packets: Sequence[Timed], last_pts: int, at_eof: bool, time: str = "pts") -> int:
    """Number of leading packets to copy: the fewest that reach `last_pts` and whose display
    times (the attribute `time`) form one run with nothing later in the stream shown
    before them (B-frames)."""
    n = len(packets)
    shown = [getattr(p, time) for p in packets]
    tail_min = [math.inf] * (n + 1)
    for i in range(n - 1, -1, -1):
        tail_min[i] = min(tail_min[i + 1], shown[i])
    best_closed = 0
    top = -math.inf
    for i in range(n if at_eof else n - 1):
        top = max(top, shown[i])
        if top < tail_min[i + 1]:
            best_closed = i + 1
            if top >= last_pts:
                return i + 1
    return n if at_eof else max(best_closed, 1)


# Containers that may hold the copy, in turn: MP4 first (the copied clips are MP4);
# NUT and Matroska take the codecs of clips encoded from packets that MP4 refuses
# (msmpeg4; ProRes, which NUT refuses too).
HOLDERS = ("mp4", "nut", "matroska")


def holder_copy(stream: av.video.stream.VideoStream):
    """(holder, its copy of `stream`, opaque): the copy is made under an encoder of the
    codec where there is one, else (`opaque`) under the stream's own decoder (AV1 read
    by libdav1d names no encoder). ValueError when no holder takes the codec."""
    for fmt in HOLDERS:
        for opaque in (False, True):
            holder = av.open(io.BytesIO(), "w", format=fmt)
            try:
                return holder, holder.add_stream_from_template(stream, opaque=opaque), opaque
            except ValueError:   # the format refuses the codec, or no encoder has its name
                holder.close()
    raise ValueError(f"no container here takes a copy of a {stream.codec_context.name} stream")


class CodecTemplate:
    """A private copy of a stream's codec parameters (SPS/PPS, size), taken at open
    before the first decode: the clip muxer reads it on the sink thread while the
    decoder goes on with the original, and it outlives the source's connection."""

    def __init__(self, stream: av.video.stream.VideoStream, time_base: Fraction | None = None):
        self._holder, self.stream, self._opaque = holder_copy(stream)
        self.codec = stream.codec_context.name   # the decoder's name: clips encoded from packets decode with it
        self.coding = stream.codec_context.codec.canonical_name   # the format's (probe.StreamFacts.coding)
        self.time_base = Fraction(time_base or stream.time_base)
        cc = self.stream.codec_context
        self.size = (cc.width, cc.height)
        self.in_band = False    # parameter sets come with the keyframes, not from the template
        # The display turn of the pictures (media.frames.display_rotation), told by the
        # source once it decoded one. A copied packet keeps it by itself: the display
        # matrix is among the parameters `add_stream_from_template` copies.
        self.rotation = 0

    def resized(self, size: tuple[int, int]) -> CodecTemplate:
        """The parameters of the same stream after its picture size changed mid-stream.

        The old parameter sets (extradata) describe the old size, so they are left
        out: the MP4 muxer then takes them from the part's first keyframe, which
        carries them in-band (the decoder could not have found the new size otherwise)."""
        again = CodecTemplate(self.stream, self.time_base)
        # (the holder's stream has an encoder's context: its name may be e.g. libx264)
        again.codec, again.coding = self.codec, self.coding
        again.size, again.in_band, again.rotation = size, True, self.rotation
        return again

    def add_to(self, out: av.container.OutputContainer) -> av.video.stream.VideoStream:
        """A stream of `out` with these parameters."""
        stream = out.add_stream_from_template(self.stream, opaque=self._opaque)
        if self.in_band:
            cc = stream.codec_context
            cc.width, cc.height = self.size
            cc.extradata = None
        return stream


class Mp4Remux:
    """One MP4 file of copied packets; the first packet written must be a keyframe.

    Timestamps are moved so the first keyframe shows at 0."""

    def __init__(self, path: Path, template: CodecTemplate):
        self.path = path
        self.out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = template.add_to(self.out)
        self.template = template
        if template.coding == "hevc":
            self.stream.codec_tag = "hvc1"   # the tag Apple's players want
        self.time_base = template.time_base
        self.zero: int | None = None
        self.shift = 0                    # added to the source's times after a jump back
        self._last_dts: int | None = None
        self._step = 0                    # the last rise of dts: a frame's duration
        self.frames = 0
        self.first_pts: int | None = None
        self.end_pts: int | None = None    # pts just past the last shown frame

    def write(self, pts: int, dts: int | None, duration: int, key: bool, data: av.Packet) -> None:
        if self.zero is None:
            self.zero = pts
            self.first_pts = pts
        dts = pts if dts is None else dts
        step = duration or self._step or 1
        if self._last_dts is not None and dts + self.shift <= self._last_dts:
            # The stream's clock jumped back (a camera restarted its counter, a looped
            # restream): MP4 needs rising times, so what follows is moved on to continue.
            self.shift = self._last_dts + step - dts
        if self._last_dts is not None and dts + self.shift > self._last_dts:
            self._step = dts + self.shift - self._last_dts
        self._last_dts = dts + self.shift
        # A copy of the bytes with our timestamps: the ring's packet may still be in
        # the demuxing thread's hands (being decoded), and its times are the source's.
        pkt = av.Packet(data)
        pkt.pts = pts + self.shift - self.zero
        pkt.dts = dts + self.shift - self.zero
        pkt.duration = duration
        pkt.is_keyframe = key
        pkt.time_base = self.time_base
        pkt.stream = self.stream
        self.out.mux(pkt)
        self.frames += 1
        end = pts + self.shift + step
        self.end_pts = end if self.end_pts is None else max(self.end_pts, end)

    @property
    def seconds(self) -> float:
        if self.first_pts is None:
            return 0.0
        return float((self.end_pts - self.first_pts) * self.time_base)

    def close(self) -> None:
        self.out.close()
