"""Which of a camera's JPEGs are damaged, for the pictures the detector analyses.

A JPEG that lost data on its way (a USB webcam whose bus dropped packets, a flaky
camera or link) still decodes in libjpeg, which only warns ("Corrupt JPEG data:
premature end of data segment") and fills the rest of the picture with garbage or
one flat colour: to the detector, motion over much of the picture. One such frame
every few seconds held events open for seconds after the visit; every other one
started events of their own (docs/performance.md, 2026-12-07 08:25). FFmpeg's
MJPEG decoder with `err_detect=explode` refuses those JPEGs: every lost run of
bytes tried, and none of the whole JPEGs of any kind a camera sends (4:2:0, 4:2:2,
4:4:4, grey, restart markers, progressive, without Huffman tables). A few single
flipped bits pass it, but TCP and USB lose data rather than flip bits.

A strict decode costs about what libjpeg's reduced one does, so only pictures that
differ from the last whole one as damage does (over much of the picture, or across
its bottom rows: from the lost data to the end) are checked, at FFmpeg's 1/8 scale;
a frame decoded in full for a clip anyway is checked by that decode.
"""

from __future__ import annotations

import logging
import threading

import av
import cv2
import numpy as np

log = logging.getLogger("motionwatch")

# A picture is checked when, on a grid of samples (every GRID-th pixel each way),
# more than SUSPECT_SHARE of them differ from the last whole picture by more than
# SUSPECT_LEVEL, or more than SUSPECT_TAIL of those in some run of two or more
# sample rows ending at the bottom: damage runs from the lost data to the end of
# the picture. On frames of seven real clips and a generated room, each JPEG with
# a run of bytes lost that changed more than 1% of the picture was checked in at
# least 95.6 cases in 100 (the damage of those that were not covered at most 3.8%
# of the picture), and 0-19% of the clips' whole pictures were (the busiest small
# pictures: 62-99%) (docs/performance.md, 2026-12-07 08:25).
SUSPECT_LEVEL = 16
SUSPECT_SHARE = 0.08
SUSPECT_TAIL = 0.15
GRID = 8
# A stream FFmpeg has not accepted a JPEG of within this many checks (or ever) is
# one whose JPEGs its strict decoder finds fault with as a rule: they are analysed
# as libjpeg decodes them rather than not at all.
TRUST_CHECKS = 100
# After a damaged JPEG the camera is likely to send more (a bus or link that drops
# data keeps doing so): the next WARY_CHECKS analysed JPEGs (30 s at 15 a second)
# are each checked before libjpeg decodes them, which catches the damage the gate
# would pass and keeps libjpeg's `Corrupt JPEG data` line, one per damaged JPEG
# it decodes, out of the log.
WARY_CHECKS = 450


def strict_decoder(lowres: int = 0) -> av.CodecContext:
    """FFmpeg's MJPEG decoder that raises on damaged data (optionally at 1/2**lowres scale)."""
    dec = av.CodecContext.create("mjpeg", "r")
    dec.options = {"err_detect": "explode", "lowres": str(lowres)}
    dec.thread_count = 1
    return dec


def decode_one(dec: av.CodecContext, jpeg: bytes) -> av.VideoFrame | None:
    """The JPEG decoded by `dec` (a `strict_decoder` refuses damaged ones); None when it fails."""
    try:
        frames = dec.decode(av.Packet(jpeg))
    except av.FFmpegError:
        return None
    return frames[-1] if frames else None


class JpegCheck:
    """One stream's judge: `damaged_gray` for a grey libjpeg decoded, `decode` for a
    full decode. The capture thread asks; the live view may, for a frame it shows
    before that is analysed, so the decoders are used under a lock."""

    def __init__(self, name: str = "camera") -> None:
        self.name = name   # for the log
        self.last: np.ndarray | None = None   # the last analysed grey (JpegFrame sets it)
        self.since_whole: int | None = None   # refusals since FFmpeg last accepted one; None: never yet
        self.wary = 0   # analysed JPEGs left to check before they are decoded (WARY_CHECKS)
        self._probe: av.CodecContext | None = None
        self._full: av.CodecContext | None = None
        self._lock = threading.Lock()

    def damaged_before(self, jpeg: bytes) -> bool | None:
        """While the camera sent a damaged JPEG lately, whether this one is damaged,
        asked before libjpeg decodes it; otherwise None (not checked)."""
        if self.wary <= 0:
            return None
        self.wary -= 1
        return self.verdict(self._probed(jpeg))

    def damaged_gray(self, jpeg: bytes, gray: np.ndarray) -> bool:
        """Whether the JPEG whose reduced grey libjpeg gave as `gray` is damaged."""
        last = self.last
        if last is not None and last.shape == gray.shape and not differs_as_damage(gray, last):
            return False
        return self.verdict(self._probed(jpeg))

    def _probed(self, jpeg: bytes) -> bool:
        """Whether FFmpeg's strict decoder at 1/8 scale takes the JPEG."""
        with self._lock:
            if self._probe is None:
                self._probe = strict_decoder(lowres=3)
            return decode_one(self._probe, jpeg) is not None

    def decode(self, jpeg: bytes) -> tuple[av.VideoFrame | None, bool]:
        """(FFmpeg's full decode, or None where it refused; damaged)."""
        with self._lock:
            if self._full is None:
                self._full = strict_decoder()
            frame = decode_one(self._full, jpeg)
        return frame, self.verdict(frame is not None)

    def verdict(self, whole: bool) -> bool:
        """Count one check; whether the JPEG counts as damaged."""
        if whole:
            self.since_whole = 0
            return False
        if self.since_whole is None or self.since_whole >= TRUST_CHECKS:
            if self.since_whole == TRUST_CHECKS:
                log.warning("%s: FFmpeg finds fault with every JPEG the camera sent lately; "
                            "analysing them as they decode", self.name)
                self.since_whole += 1
            return False
        self.since_whole += 1
        self.wary = WARY_CHECKS
        return True


def differs_as_damage(gray: np.ndarray, last: np.ndarray) -> bool:
    """Whether `gray` differs from `last` as damage would (see SUSPECT_SHARE)."""
    a = np.ascontiguousarray(gray[GRID // 2::GRID, GRID // 2::GRID])
    b = np.ascontiguousarray(last[GRID // 2::GRID, GRID // 2::GRID])
    rows = np.count_nonzero(cv2.absdiff(a, b) > SUSPECT_LEVEL, axis=1)
    changed = int(rows.sum())
    if changed == 0 or changed > SUSPECT_SHARE * a.size:
        return changed > 0
    tail = np.cumsum(rows[::-1])[1:] / (np.arange(2, len(rows) + 1) * a.shape[1])
    return bool(tail.max() > SUSPECT_TAIL)
