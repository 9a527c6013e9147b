"""Where a video file can be cut into chunks that decode on their own, found by
demuxing alone.

A chunk begins at a keyframe that a fresh decoder decodes, with every picture
after it, exactly as a decoder that began at the file's start does: so chunks
decoded side by side give the frames of one decode of the whole file, bit for
bit, and the detector that sees them in order gives `--jobs 1`'s events.

That holds at a keyframe when
* the codec's keyframes are whole refreshes: H.264 and HEVC only at an IDR or
  other IRAP picture (an H.264 "recovery point" I picture is flagged a keyframe
  but later pictures may still refer to ones before it);
* no picture decoded before it is shown after it, and none decoded after it is
  shown before it (an open GOP's leading pictures refer to the previous GOP).
"""

from __future__ import annotations

from dataclasses import dataclass

from motionwatch.media.nal import refreshes

# Codecs whose keyframes (with the display-order check) start a clean decode: an
# intra picture after which nothing refers to a picture before it (MPEG-1/2/4 and
# the H.263 family refer to the last anchors only; VP8/VP9 keyframes reset every
# reference slot).
CUTTABLE = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "msmpeg4", "msmpeg4v2", "msmpeg4v1",
                      "wmv1", "wmv2", "h263", "flv1", "mjpeg", "vp8", "vp9"})
# ... of which only these need the picture itself to say so (refreshes()).
NEEDS_REFRESH = frozenset({"h264", "hevc"})
# Packets after a keyframe checked for leading pictures: reordering spans a few
# frames (x264's B-pyramid: 3); a whole GOP of B-frames is 16 at most.
LEAD_CHECK = 32


@dataclass(frozen=True)
class Chunk:
    key_pts: int | None   # the keyframe decoding starts at (None: the file's first packet)
    first: int            # packets before it: the index of its first frame, when each packet is one frame
    count: int | None     # packets in the chunk (None: the rest of the file, found uncuttable)


class Cutter:
    """Fed a file's packets in decode order, hands out its chunks of at least
    `min_packets` packets each (the last may be shorter). When no cut comes within
    `max_packets` (open GOPs, a keyframe a minute), the rest of the file is one
    chunk (`count` None), handed out at once: the caller decodes it as it goes
    rather than wait for a chunk too big to hold."""

    def __init__(self, codec: str, prefix: int | None, min_packets: int, max_packets: int = 1 << 62):
        self.codec = codec
        self.prefix = prefix
        self.min_packets = max(1, min_packets)
        self.max_packets = max(self.min_packets, max_packets)
        self.rest: Chunk | None = None   # handed out: nothing more to cut
        self.cuttable = codec in CUTTABLE and (codec not in NEEDS_REFRESH or prefix is not None)
        self.seen = 0                 # packets fed
        self._start = 0               # the current chunk's first packet
        self._start_pts: int | None = None
        self._latest_shown = None     # the highest pts fed so far
        self._candidate: tuple[int, int] | None = None   # (position, pts) of a keyframe being checked

    def feed(self, pts: int | None, key: bool, data) -> Chunk | None:
        """One packet (`data`: its bytes, looked at only for a keyframe); the chunk it
        completes, if any."""
        pos = self.seen
        self.seen += 1
        if self.rest is not None:
            return None
        if pts is None:
            # A packet without a time cannot be placed in display order: no cut can be checked.
            self.cuttable, self._candidate = False, None
            return self._give_up(pos)
        done = None
        if self._candidate is not None:
            cand_pos, cand_pts = self._candidate
            if pts < cand_pts:
                self._candidate = None   # a leading picture: not a clean start
            elif pos - cand_pos >= LEAD_CHECK:
                done = self._cut()
        if (self.cuttable and self._candidate is None and key and pos - self._start >= self.min_packets
                and (self._latest_shown is None or pts > self._latest_shown)
                and (self.codec not in NEEDS_REFRESH or refreshes(data, self.codec, self.prefix))):
            self._candidate = (pos, pts)
        self._latest_shown = pts if self._latest_shown is None else max(self._latest_shown, pts)
        return done if done is not None or self._candidate is not None else self._give_up(pos)

    def _give_up(self, pos: int) -> Chunk | None:
        """The rest of the file as one chunk, once the current one has grown too long."""
        if pos + 1 - self._start >= self.max_packets:
            self.rest = Chunk(self._start_pts, self._start, None)
        return self.rest

    def end(self) -> list[Chunk]:
        """The chunks still open once the file has ended."""
        if self.rest is not None:
            return []
        out = [self._cut()] if self._candidate is not None else []
        if self.seen > self._start:
            out.append(Chunk(self._start_pts, self._start, self.seen - self._start))
        return out

    def _cut(self) -> Chunk:
        pos, pts = self._candidate
        chunk = Chunk(self._start_pts, self._start, pos - self._start)
        self._start, self._start_pts, self._candidate = pos, pts, None
        return chunk
