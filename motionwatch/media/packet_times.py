"""Timestamps for the packets a container leaves without.

MPEG-PS (.mpg, .vob, and the ".mp4" files many NVRs export, which are MPEG-PS
inside) gives a time only to the PES packets that carry one (the standard asks for
one at least every 0.7 s), and FFmpeg's parser splits those into pictures without.
Such a packet could not be placed in a copied clip, so an event of an H.264 or HEVC
.mpg file had no clip at all. In a stream whose pictures are not reordered, a
packet's time is the one before it plus that one's duration, as ffmpeg's own tools
count it (its "next dts"). A stream that reorders pictures (B-frames) cannot be told
so; `media.probe.facts` reads such a file as untimed (clips from decoded frames).

The times such a stream does carry are off by a picture now and then: FFmpeg gives
the PES's time to the picture that starts in it, which may be the one after the
picture the time is for (two pictures with one time; the copied clip then lost a
picture at each). So in those formats a time within half a picture of one more
or less than counted is taken as the count; a larger step (frames the camera dropped, a
join) is kept.
"""

from __future__ import annotations

import av

from motionwatch.media.probe import SPARSELY_TIMED_FORMATS


class PacketTimes:
    """Fills in a demuxed packet's missing pts and dts, in decode order."""

    def __init__(self, reorders: bool, sparse: bool = False):
        """`sparse`: the format times only some packets (media.probe.SPARSELY_TIMED_FORMATS)."""
        self.reorders = reorders
        self.sparse = sparse
        self._next: int | None = None   # where the packet after the last one starts
        self._step = 0                  # the last packet's duration

    def fill(self, pkt: av.Packet) -> None:
        if self.reorders or not pkt.size:
            return
        if pkt.pts is None and pkt.dts is None or self._off_by_one(pkt):
            if self._next is None:
                return
            pkt.dts = pkt.pts = self._next
        elif self.sparse and pkt.pts is None:
            pkt.pts = pkt.dts
        elif self.sparse and pkt.dts is None:
            # Elsewhere a missing dts is the demuxer's (Matroska's first B-frame packets):
            # a stream said not to reorder may still, so it is left as it is.
            pkt.dts = pkt.pts
        stamp = pkt.dts if pkt.dts is not None else pkt.pts
        self._next = stamp + pkt.duration if pkt.duration else None
        self._step = pkt.duration or 0

    def _off_by_one(self, pkt: av.Packet) -> bool:
        """A sparse format's time one picture from the count (see the module's text)."""
        if not self.sparse or self._next is None or not self._step:
            return False
        stamp = pkt.dts if pkt.dts is not None else pkt.pts
        return stamp != self._next and abs(abs(stamp - self._next) - self._step) * 2 < self._step


def packets_to_decode(packets, stream):
    """`packets` (a demux of `stream`) with missing times filled in (`PacketTimes`),
    less those that only repeat a picture (`repeats_last`): what every reader of a
    stream hands its ring, its decoder and media.damage."""
    times = PacketTimes(bool(stream.codec_context.has_b_frames),
                        stream.container.format.name in SPARSELY_TIMED_FORMATS)
    for pkt in packets:
        if not repeats_last(pkt):
            times.fill(pkt)
            yield pkt


def repeats_last(pkt: av.Packet) -> bool:
    """An empty packet with a time: "show the last picture again" (how Theora and VP8
    send a frame that did not change). There is nothing to decode, and a decoder
    sent an empty packet drains and takes nothing after it: an Ogg Theora file was
    read up to its first such packet and called truncated. Only the demuxer's last
    packet (empty, no time) is to reach the decoder, to drain it."""
    return not pkt.size and (pkt.pts is not None or pkt.dts is not None)
