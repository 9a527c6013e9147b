"""Which decoded pictures show damaged data, so detection does not take the damage for motion.

A packet with bit errors (a bad sector, a camera's SD card, RTSP over a lossy
link) still decodes: FFmpeg's error concealment patches the broken macroblocks
from their neighbours and flags the picture (`VideoFrame.is_corrupt`). The
pictures predicted from it carry the patch, smeared on by motion vectors, until
the next keyframe; no flag says so. Detection saw that patch as a changed
region that stayed put (persistent, textured): a false event on a still scene
(tests/test_damaged_pictures.py). So a flagged picture and the pictures after
it, up to the next keyframe, are not analysed; they are still recorded (they
are what the camera sent).

A packet that does not decode at all (the decoder gives up on it) starts the same
run: the pictures after it may be predicted from the one it held.

A stream whose keyframes never come (intra refresh) or come rarely is analysed
again after HOLD_S at most, whatever is still patched. FFmpeg's HEVC decoder
patches without flagging: there damage is not told apart.
"""

from __future__ import annotations

# Cameras send a keyframe every 1-4 s; "smart" codecs stretch it to 10 s or more.
HOLD_S = 10.0


class DamageRun:
    """Fed every decoded picture in display order; says whether each shows damage."""

    def __init__(self, fps):
        """`fps`: the stream's rate (a number or a stream's Fraction; None or 0: unknown)."""
        self.hold = max(1, round(HOLD_S * float(fps or 25.0)))   # pictures
        self.left = 0   # pictures still to pass before the damage counts as gone

    def lost(self) -> None:
        """A packet did not decode: the pictures after it, up to a keyframe, may be built on its picture."""
        self.left = self.hold

    def damaged(self, frame) -> bool:
        """Whether `frame` (an av.VideoFrame) is flagged, or predicted from a flagged one."""
        if frame.is_corrupt:
            self.left = self.hold
            return True
        if not self.left:
            return False
        if frame.key_frame:
            self.left = 0
            return False
        self.left -= 1
        return True

    @property
    def holding(self) -> bool:
        """Whether a picture not decoded here (left out, decoded later) falls in a damaged run."""
        return self.left > 0
