"""Full-quality pictures of a live stream analysed with a cheaper decode.

Detection decodes a live H.264/HEVC stream without the deblocking filter
(detection.fast_decode). A live frame cannot be sought again, but it can be
decoded again from the compressed packets of its GOP (the keyframe before it up
to it), which cost only the bitrate times the seconds. Each connection keeps
the packets of its current GOP (`GopRuns`); a frame out of the decoder is handed
the run its picture was sent in and how far that run reached then (`Redecode`).
Only a frame that is saved decodes its run again, on the thread that saves it,
with a decoder of its own.
"""

from __future__ import annotations

import logging
import threading

import av

from motionwatch.media.nal import skippable_towards

log = logging.getLogger("motionwatch")

# A GOP longer than this (packets or bytes) stops being kept: a camera whose GOP
# never ends (or a stream of intra refresh, no keyframe at all) must not grow
# without limit, and a saved picture redecodes at most this many packets (1080p
# here: 4 ms a packet on one core, 1.2 s at the bound). Frames past it are saved
# from the analysis decode. Cameras send a keyframe every 1 to 4 s (25 to 100 packets).
MAX_RUN_PACKETS = 300
MAX_RUN_BYTES = 16 << 20


class Run:
    """One GOP's packets in decode order, from its keyframe; `pts` is those sent."""

    __slots__ = ("packets", "pts", "nbytes", "full")

    def __init__(self):
        self.packets: list = []
        self.pts: set[int] = set()
        self.nbytes = 0
        self.full = False    # hit the bound: nothing more is kept


class GopRuns:
    """One connection's packets from its last keyframe (and the GOP before, whose last
    frames a reordering decoder hands out after the next keyframe was sent)."""

    def __init__(self, codec: str, extradata: bytes | None, time_base, prefix: int | None):
        self.codec = codec
        self.extradata = bytes(extradata) if extradata else None
        self.time_base = time_base
        self.prefix = prefix           # media.nal.length_size: which packets are disposable
        self._run: Run | None = None   # None until the first keyframe (joined mid-GOP)
        self._before: Run | None = None

    def push(self, pkt: av.Packet) -> None:
        """A demuxed packet, before it goes to the analysis decoder."""
        if pkt.size == 0:
            return   # a flush packet
        if pkt.is_keyframe:
            self._before, self._run = self._run, Run()
        run = self._run
        if run is None or run.full:
            return
        if len(run.packets) >= MAX_RUN_PACKETS or run.nbytes + pkt.size > MAX_RUN_BYTES:
            run.full = True
            log.debug("a GOP longer than %d packets or %d MB: its later frames are saved from the analysis decode",
                      MAX_RUN_PACKETS, MAX_RUN_BYTES >> 20)
            return
        # An RTSP stream's first packets may have no time yet (before the first RTCP
        # report), its keyframe among them: kept, the GOP's later frames refer to it.
        run.packets.append(pkt)
        if pkt.pts is not None:
            run.pts.add(pkt.pts)
        run.nbytes += pkt.size

    def redecode_for(self, pts: int | None) -> Redecode:
        """What decodes the frame shown at `pts` (just out of the analysis decoder) again."""
        for run in (self._run, self._before):
            if run is not None and pts in run.pts:
                # Its packets so far: the decoder gave the frame out, so it needed no later ones.
                return Redecode(self, run, len(run.packets))
        return Redecode(self, None, 0)


class Redecode:
    """A frame's full-quality picture, decoded again from its GOP's packets up to it.
    Called on the sink thread; the result is kept, so two savers decode once."""

    __slots__ = ("_runs", "_run", "_n", "_lock", "_done", "_frame")

    def __init__(self, runs: GopRuns, run: Run | None, n: int):
        self._runs, self._run, self._n = runs, run, n
        self._lock = threading.Lock()
        self._done = False
        self._frame = None

    def __call__(self, pts: int) -> av.VideoFrame | None:
        with self._lock:
            if not self._done:
                self._frame = self._decode(pts)
                self._done = True
                self._run = None    # the packets are no longer needed by this frame
            return self._frame

    def _decode(self, pts: int) -> av.VideoFrame | None:
        if self._run is None:
            log.info("a saved picture's GOP start was not kept (joined mid-GOP, or a GOP past %d packets): "
                     "it is saved from the analysis decode", MAX_RUN_PACKETS)
            return None
        runs = self._runs
        try:
            dec = _decoder(runs)
            for packet in self._run.packets[:self._n]:
                if skippable_towards(packet, pts, runs.codec, runs.prefix):
                    continue
                found = _shown_at(dec.decode(_own(packet, runs.time_base)), pts)
                if found is not None:
                    return found
            return _shown_at(dec.decode(None), pts)
        except av.FFmpegError as e:
            log.info("could not decode a saved picture again (%s): it is saved from the analysis decode", e)
            return None


def _decoder(runs: GopRuns) -> av.CodecContext:
    cc = av.CodecContext.create(runs.codec, "r")
    if runs.extradata:
        cc.extradata = runs.extradata   # parameter sets an RTSP camera sends only in its SDP
    # One thread: a GOP's worth of frames at most, where FFmpeg's frame threads cost
    # more CPU than they save (as for a file's snapshot).
    cc.thread_count = 1
    return cc


def _own(packet: av.Packet, time_base) -> av.Packet:
    """A copy for this decoder: the demuxed packet also belongs to the analysis decoder."""
    pkt = av.Packet(bytes(packet))
    pkt.pts, pkt.dts, pkt.time_base = packet.pts, packet.dts, time_base
    return pkt


def _shown_at(frames, pts: int):
    for f in frames:
        if f.pts == pts:
            return f
    return None
