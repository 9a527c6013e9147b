"""Decode one frame of an MP4/MOV from its own keyframe, when OpenCV's seek would not.

A snapshot of a luma-decoded file is re-decoded in colour (decode.ColourFetcher).
OpenCV's seek to frame N goes to the keyframe at or before N - 16 and decodes
forward, so a frame less than 16 frames after a keyframe costs the whole GOP
before it as well: at 1080p with 2 s keyframes that is 50 needless frames,
about 0.2 s of CPU, for one picture in three. From the file's own index
(sinks.mp4_index) we know where the keyframes are; for such a frame the
samples from its keyframe up to it are written as a small MP4 (sinks.mp4_write,
in memory where /dev/shm exists) and decoded from the start. Opening that file
costs a few frames' worth of decoding, so this is used only when it saves more.
"""

from __future__ import annotations

import logging
import os
import tempfile

import cv2
import numpy as np

from motionwatch.sinks.mp4_index import Unsupported, read_track
from motionwatch.sinks.mp4_write import write_part

log = logging.getLogger("motionwatch")

# OpenCV's FFmpeg backend seeks to N - 16 and reads forward (cap_ffmpeg_impl.hpp, seek()).
OPENCV_BACKOFF = 16
# Opening a small file costs about this many frames' decoding (FFmpeg probes the
# stream by decoding its first frames): measured 6 ms at 640x480 and 21 ms at 1080p.
OPEN_COST_FRAMES = 8
# Samples after the target (decode order) that B-frames may need before it can be shown.
MAX_REORDER = 32
# Longer files are left to OpenCV's seek: their index would hold ~60 MB of arrays.
MAX_FRAMES = 1_000_000


class GopIndex:
    """Keyframe positions of an MP4/MOV's video track, in the frame numbering of a decode."""

    def __init__(self, path: str, track):
        self.path = path
        self.track = track
        self.order = np.argsort(track.pts, kind="stable")   # frame index -> sample (decode order)
        self.key_samples = np.nonzero(track.keys)[0]
        rank = np.empty(len(self.order), np.int64)
        rank[self.order] = np.arange(len(self.order))
        self.key_frames = np.sort(rank[self.key_samples])    # frame index of each keyframe
        self.tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

    @classmethod
    def of(cls, path: str, track=None) -> GopIndex | None:
        """The index of an unfragmented H.264/HEVC MP4/MOV (from `track` when the file's
        index was read already, for cutting clips); None for anything else."""
        try:
            track = track or read_track(path)
        except (OSError, Unsupported):
            return None
        if not track.keys.any() or len(track.pts) > MAX_FRAMES:
            return None
        return cls(path, track)

    def saves(self, index: int) -> bool:
        """True when decoding `index` from its own keyframe beats OpenCV's seek to it."""
        if not 0 <= index < len(self.order):
            return False
        own = self._key_before(index)
        theirs = self._key_before(max(index - OPENCV_BACKOFF, 0))
        return own is not None and theirs is not None and own - theirs > OPEN_COST_FRAMES

    def _key_before(self, index: int) -> int | None:
        at = int(np.searchsorted(self.key_frames, index, side="right")) - 1
        return int(self.key_frames[at]) if at >= 0 else None

    def plan(self, index: int) -> tuple[int, int, int] | None:
        """(first sample, sample count, frames shown before it) to decode `index` from
        its own keyframe; None when the count of frames shown first would be a guess."""
        tr = self.track
        target = int(self.order[index])
        at = int(np.searchsorted(self.key_samples, target, side="right")) - 1
        if at < 0:
            return None
        first = int(self.key_samples[at])
        shown = tr.pts[target]
        # Every sample up to the last one (decode order) shown by the target's time:
        # the frames before it and the references its B-frames need.
        window = tr.pts[first:min(len(tr.pts), target + MAX_REORDER + 1)]
        count = int(np.nonzero(window <= shown)[0].max()) + 1
        if (window[:count] < tr.pts[first]).any():
            # Leading pictures of an open GOP (HEVC's CRA): whether the decoder shows
            # them when it starts here depends on their kind.
            return None
        return first, count, int(np.count_nonzero(window[:count] < shown))

    def decode(self, index: int, plan: tuple[int, int, int] | None = None) -> np.ndarray | None:
        """Frame `index` in BGR, decoded from the keyframe before it (by `plan` when the
        caller has it already); None if that fails."""
        plan = plan or self.plan(index)
        if plan is None:
            return None
        first, count, rank = plan
        try:
            fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=self.tmp_dir)
            os.close(fd)
            try:
                write_part(self.track, self.path, first, count, tmp)
                cap = cv2.VideoCapture(tmp, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
            finally:
                os.unlink(tmp)   # FFmpeg holds the file open; nothing is left behind
        except OSError as e:
            log.debug("%s: could not write the GOP of frame %d (%s)", self.path, index, e)
            return None
        try:
            bgr = None
            for _ in range(rank + 1):
                ok, bgr = cap.read()
                if not ok:
                    return None
            return bgr
        finally:
            cap.release()
