"""Which decoded pictures show damaged data, so detection does not take the damage for motion.

A packet with bit errors (a bad sector, a camera's SD card, RTSP over a lossy
link) still decodes: FFmpeg's error concealment patches the broken macroblocks
from their neighbours and flags the picture (`VideoFrame.is_corrupt`). The
pictures predicted from it carry the patch, smeared on by motion vectors, until
the next keyframe; no flag says so. Detection saw that patch as a changed
region that stayed put (persistent, textured): a false event on a still scene
(tests/test_damaged_pictures.py). So a flagged picture and the pictures after
it, up to the next keyframe decoded after it, are not analysed; they are still
recorded (they are what the camera sent). A keyframe decoded before the damage
but shown after it (B-frames reorder pictures) does not end the run: the B-frames
shown after it may be predicted from the damaged picture.

A packet that does not decode at all (the decoder gives up on it) starts the same
run: the pictures after it may be predicted from the one it held.

A packet the demuxer says came damaged (`Packet.is_corrupt`: MPEG-TS packets were
lost on the way, which an HTTP or UDP camera stream, a restreamer or a DVR's .ts
recording has) starts the run too, from the next packet's picture on, keyframe or
not. That is what tells damage in HEVC carried over MPEG-TS: FFmpeg's HEVC decoder
patches without flagging, so damage inside an HEVC stream otherwise is not told
apart (its strict error check finds too little of it: docs/media.md). Where
recordings are joined (files end to end, a looping restreamer) FFmpeg flags a
packet just before the join too: the old recording's last picture is taken for
damaged, and the new recording's keyframe ends the run. HLS and DASH segments are
not told by the flag (UNFLAGGED_FORMATS).

A stream whose keyframes never come (intra refresh) or come rarely is analysed
again after HOLD_S at most, whatever is still patched.
"""

from __future__ import annotations

from collections import deque

# Cameras send a keyframe every 1-4 s; "smart" codecs stretch it to 10 s or more.
HOLD_S = 10.0
# Packets whose pictures are still to come out of the decoder (its reorder delay and
# frame threads hold a few; a picture that never comes is forgotten after this many).
PENDING = 64
# Formats whose packets' damage flags say nothing: HLS and DASH segments come whole
# over HTTP, and a packager that starts each segment's MPEG-TS continuity counters
# again has FFmpeg flag the packet at every segment start, which would hide every
# segment's pictures (tests/test_live_stream.py, the `segment` HLS).
UNFLAGGED_FORMATS = frozenset({"hls", "dash"})


class DamageRun:
    """Fed every decoded picture in display order; says whether each shows damage."""

    def __init__(self, fps, container_format: str = ""):
        """`fps`: the stream's rate (a number or a stream's Fraction; None or 0: unknown);
        `container_format`: FFmpeg's name of the demuxer (UNFLAGGED_FORMATS)."""
        self.hold = max(1, round(HOLD_S * float(fps or 25.0)))   # pictures
        self.flags_count = container_format not in UNFLAGGED_FORMATS
        self.left = 0   # pictures still to pass before the damage counts as gone
        self._bad_pts: deque[int] = deque(maxlen=PENDING)   # pictures of packets that came damaged
        self._next_bad = False   # the last packet was flagged: the next one counts as damaged too
        self._seq = 0                         # packets told of so far (`arrived`): the last one's arrival number
        self._recent: deque[int | None] = deque(maxlen=PENDING)   # the last packets' pts, in arrival order
        self._damage_seq = 0                  # arrival number of the packet the damage came with

    def _start(self, seq: int) -> None:
        self.left = self.hold
        self._damage_seq = max(self._damage_seq, seq)

    def lost(self) -> None:
        """A packet did not decode: the pictures after it, up to a keyframe, may be built on its picture."""
        self._start(self._seq)

    def arrived(self, packet) -> None:
        """Told of every packet before it is decoded: the one after a packet the
        demuxer flags damaged makes its own picture, keyframe or not, and those after
        it damaged. The one after, because FFmpeg's MPEG-TS demuxer puts the flag on
        the packet before the one that lost data (19 of 19 losses in a stream that
        lost 0.4% of its TS packets; docs/media.md). (Where the flagged packet lost
        its own last TS packet, its picture is damaged at the bottom and analysed:
        one picture does not make an event.)"""
        if not packet.size:
            return
        self._seq += 1
        self._recent.append(packet.pts)
        if not self.flags_count:
            return
        if self._next_bad:
            self._start(self._seq)
            if packet.pts is not None:
                self._bad_pts.append(packet.pts)
        self._next_bad = packet.is_corrupt

    def damaged(self, frame) -> bool:
        """Whether `frame` (an av.VideoFrame) is flagged, came in a damaged packet, or
        is predicted from such a picture."""
        came_bad = bool(self._bad_pts) and frame.pts in self._bad_pts
        if came_bad:
            self._bad_pts.remove(frame.pts)   # (so the usual frame finds the deque empty)
        if came_bad or frame.is_corrupt:
            self._start(self._arrival(frame.pts, self._seq))
            return True
        if not self.left:
            return False
        if frame.key_frame:
            # Only a keyframe decoded after the damage ends it. One decoded before it and
            # shown after it (reordered) is whole, but the B-frames shown after it may be
            # predicted from the damaged picture: in HEVC with B-frames that loss made a
            # false event (a keyframe at 4.00 s, the damaged P-frame at 4.20 s).
            if self._arrival(frame.pts, self._seq + 1) > self._damage_seq:
                self.left = 0
            return False
        self.left -= 1
        return True

    def _arrival(self, pts: int | None, unknown: int) -> int:
        """The arrival number of the last packet with `pts` among the recent ones;
        `unknown` when it is not among them. Looked up only for keyframes and damaged
        pictures: keeping a map up to date cost every packet four times as much."""
        if pts is not None:
            for back, seen in enumerate(reversed(self._recent)):
                if seen == pts:
                    return self._seq - back
        return unknown

    @property
    def holding(self) -> bool:
        """Whether a picture not decoded here (left out, decoded later) falls in a damaged run."""
        return self.left > 0
