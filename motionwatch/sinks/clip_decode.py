"""Event clips encoded from the source's compressed packets, for codecs an MP4 clip
cannot carry as they are (MPEG-4 Part 2, MJPEG from FFmpeg, MPEG-2, ...) and for
H.264 clips made narrower than the source (`events.clip_width`).

The pre-roll stays compressed in the source's packet ring (the bitrate times the
seconds) instead of decoded pictures (a 1080p picture is 3 MB). Only when an
event starts are its packets decoded, here on the sink thread, from the keyframe
before the pre-roll, and the pictures from (first motion - pre-roll) to the end of
the post-roll encoded by `EventClip` (parts, holes, failures, renames as there).

Decoding runs only as far as the event is known to reach (the last motion plus
the post-roll): a decoded picture past that waits, and with it the packets after
it, so no more than the decoder's delay is ever held decoded.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path

import av

from motionwatch.media.frames import StreamAspect, turned
from motionwatch.sinks.clip import EventClip


class Decoded:
    """What `EventClip` needs of a frame: a decoded picture at a source time, a clip
    size (upright), the picture's display turn and its pixels' shape (see Frame.rotation, Frame.sar)."""

    __slots__ = ("av_frame", "index", "ts", "size", "rotation", "sar")

    def __init__(self, av_frame: av.VideoFrame, index: int, ts: float, size: tuple[int, int], rotation: int,
                 sar: Fraction | None = None):
        self.av_frame, self.index, self.ts, self.size, self.rotation = av_frame, index, ts, size, rotation
        self.sar = sar


def clip_size(size: tuple[int, int], width: int) -> tuple[int, int]:
    """`size` scaled to `width` (aspect kept, even), or itself when 0 or no narrower."""
    w, h = size
    if not width or width >= w:
        return size
    return width - width % 2, max(2, round(h * width / w / 2) * 2)


def decoder_for(template) -> av.CodecContext:
    """A decoder for the stream the template describes (its parameter sets included)."""
    tpl = template.stream.codec_context
    cc = av.CodecContext.create(template.codec, "r")
    if tpl.extradata and not template.in_band:
        cc.extradata = tpl.extradata
    cc.width, cc.height = template.size
    if tpl.format is not None:
        cc.pix_fmt = tpl.format.name   # raw video (a V4L2 camera's YUYV) says it nowhere else
    cc.thread_count = 1   # the sink thread encodes too; one decoder thread keeps it predictable
    return cc


class PacketEncodeClip(EventClip):
    """An `EventClip` fed with packet batches (`ClipPackets`) instead of frames."""

    def __init__(self, folder: Path, event, template, time_base: Fraction, fmt: str, fps: float,
                 rolls: tuple[float, float], width: int, max_seconds: float, first: int):
        """`first`: the ring's clock at the event's first picture (events.ClipPackets:
        the pictures are placed on that clock, which runs on across a restart of the
        stream's own times)."""
        super().__init__(folder, fmt, fps)
        self.event = event
        self.time_base = time_base
        self.width = width
        self.max_seconds = max_seconds
        self._part_ts: float | None = None   # source time of the current part's first picture
        pre_roll_s, post_roll_s = rolls
        self.first_clock = first
        self.start = first - int(pre_roll_s / time_base)
        self.post_roll = int(post_roll_s / time_base)
        self._template = template
        self._decoder = None
        self._aspect: StreamAspect | None = None   # the decoder's pixel shape
        self._queue: deque = deque()   # packets not yet decoded (decode order)
        self._held: list = []          # decoded pictures past what the event is known to reach
        self._count = 0
        self._told_damage = False   # a packet that did not decode has been warned of

    def packets(self, packets: list, upto: int) -> None:
        """More of the event's packets: the event reaches at least `upto` (a frame
        with motion) plus the post-roll, so the pictures up to there are encoded now."""
        self._queue.extend(packets)
        self._run(upto + self.post_roll, flush=False)

    def end(self, end: int, at_eof: bool) -> None:
        self._run(end, flush=True)
        self._queue.clear()
        self._held = []

    def _run(self, limit: int, flush: bool) -> None:
        held, self._held = self._held, []
        if not self._take(held, limit):
            return
        while self._queue:
            if not self._take(self._decode(self._queue.popleft()), limit):
                return
        if flush and self._decoder is not None:
            self._take(self._decode(None), limit)

    def _take(self, frames: list[av.VideoFrame], limit: int) -> bool:
        """Encode those of `frames` (display order) that are in the clip; False when
        one is past `limit`: it and the rest are held until the limit moves on."""
        for i, f in enumerate(frames):
            pts = f.pts
            if pts is None:
                continue
            if pts > limit:
                self._held = list(frames[i:])
                return False
            if pts >= self.start:
                ts = self.event.first.ts + float((pts - self.first_clock) * self.time_base)
                if self._part_ts is None or ts - self._part_ts >= self.max_seconds - 1e-6:
                    self.split()   # events.max_seconds: a new part (the tracker's ClipPart, for frames)
                    self._part_ts = ts
                rotation = self._template.rotation
                self.add(Decoded(f, self._count, ts, turned(clip_size((f.width, f.height), self.width), rotation),
                                 rotation, self._aspect.of(f)))
                self._count += 1
        return True

    def _decode(self, packet) -> list[av.VideoFrame]:
        try:
            if packet is None:
                return self._decoder.decode(None)
            template = packet.template or self._template
            if self._decoder is None or template is not self._template:
                self._decoder, self._template = decoder_for(template), template
                self._aspect = StreamAspect(self._decoder)
            # A packet of our own: the ring's may still be in the demuxing thread's hands.
            # Its times are the ring's clock, so the pictures are too.
            pkt = av.Packet(packet.data)
            shift = packet.clock - packet.pts
            pkt.pts, pkt.time_base = packet.clock, self.time_base
            pkt.dts = None if packet.dts is None else packet.dts + shift
            return self._decoder.decode(pkt)
        except av.FFmpegError as e:
            # The source's damage, not the disk's: a warning, and writing goes on (told
            # once per clip: a damaged stretch is many packets).
            if not self._told_damage:
                self._told_damage = True
                self.refused.append(f"a packet of the source could not be decoded for the clip "
                                    f"({e.strerror or e}); the pictures it carries are left out of it")
            return []
