"""Event clips encoded in process (PyAV's libx264): numbered parts, each written
under a temporary name and renamed only once it is whole.

For sources whose frames cannot be copied into the clip as they are (MJPEG
cameras, `pipe:`, picamera2, the demo, codecs browsers do not play such as
MPEG-4 Part 2); H.264/HEVC sources are stream copies (sinks.clip_remux).
Format: H.264 in MP4 (faststart), which every browser plays inline, or MPEG-4
Part 2 (`mp4v`) when asked for.

Frames are placed on the clip's timeline by their source timestamps, so a
live camera that delivers unevenly (or frames the sink queue had to drop)
still gives a clip that plays at real speed: a missing frame is filled by
repeating the one before it, for gaps up to a second.

A camera's JPEG (`JpegFrame`) is decoded by FFmpeg's MJPEG decoder straight to
YUV for the encoder, and a decoded `AvFrame` goes to it as it is: neither is
made into BGR for the clip.
"""

from __future__ import annotations

import errno
import os
from fractions import Fraction
from pathlib import Path

import av

from motionwatch.media.jpeg import JpegFrame, decode_yuv
from motionwatch.media.encode import Mp4Encoder
from motionwatch.media.frames import turned
from motionwatch.model import Frame
from motionwatch.index.database import TMP_PREFIX, fsync_file

FORMATS = ("auto", "copy", "h264", "mp4v")
SUFFIX = {"h264": ".mp4", "mp4v": ".mp4"}
MAX_FILL_S = 1.0          # longer holes in the timeline are cuts, not dropped frames
RETRY_S = 10.0            # after a failed part, try a new one this much later (source time)


def choose_format(requested: str) -> str:
    """The format clips are encoded in for `events.clip_codec` (auto and copy: H.264)."""
    return "mp4v" if requested == "mp4v" else "h264"


def tmp_name(final: Path) -> Path:
    """Hidden name a file is written under; the suffix stays so encoders pick the container."""
    return final.with_name(TMP_PREFIX + final.name)


def oserror_of(e: Exception) -> OSError:
    """FFmpeg's error as the OSError the clip's bookkeeping expects (errno kept: ENOSPC says disk full)."""
    if isinstance(e, OSError):
        return e
    return OSError(getattr(e, "errno", None) or errno.EIO, getattr(e, "strerror", None) or str(e))


class PartWriter:
    """One clip file. `write` and `close` raise OSError with a readable reason."""

    def __init__(self, final: Path, size: tuple[int, int], fps: float, fmt: str, rotation: int = 0,
                 sar: Fraction | None = None):
        """`size` is the frames' (upright); `rotation` the turn of the coded pictures
        `picture` hands on (Frame.rotation): they are encoded as they are and the
        clip carries the turn, as it carries the pixels' shape (`sar`, Frame.sar)."""
        self.final = final
        self.tmp = tmp_name(final)
        self.size = size
        self.frames = 0
        try:
            self.enc = Mp4Encoder(self.tmp, turned(size, rotation), fps, fmt, rotation, sar)
        except av.FFmpegError as e:
            raise oserror_of(e) from None

    def picture(self, frame: Frame):
        """What `write` takes for this frame (EventClip keeps the last one to fill holes):
        the decoded av frame (a camera's JPEG is decoded here, straight to YUV), or the
        BGR picture; None for a JPEG that does not decode (the capture loop decodes only
        the frames it analyses, so a damaged one can reach the clip)."""
        av_frame = getattr(frame, "av_frame", None)
        if av_frame is not None:
            return av_frame
        if isinstance(frame, JpegFrame) and frame.jpeg:
            if frame.undecodable:
                return None
            yuv = frame.take_yuv()
            return yuv if yuv is not None else decode_yuv(frame.jpeg)
        return frame.image

    def write(self, picture) -> None:
        try:
            self.enc.add(picture)
        except av.FFmpegError as e:
            raise oserror_of(e) from None
        self.frames += 1

    def close(self) -> None:
        """Stop encoding and make the temporary file whole (or fail)."""
        try:
            self.enc.close()
        except av.FFmpegError as e:
            raise oserror_of(e) from None

    def check(self) -> None:
        """After `close`: raise unless the temporary file is a whole clip."""
        if self.frames == 0:
            raise OSError(errno.ENODATA, "no frame was written")
        if not self.tmp.exists() or self.tmp.stat().st_size == 0:
            raise OSError(errno.EIO, f"{self.tmp.name} is missing or empty after encoding")

    def abort(self) -> None:
        """Stop and remove the temporary file (best effort: the folder may be gone)."""
        self.enc.abort()
        try:
            self.tmp.unlink()
        except OSError:
            pass


def publish(tmp: Path, final: Path, done: list[Path], unrenamed: list[tuple[Path, Path]]) -> None:
    """Give a whole part its real name (into `done`), or leave it for the recorder to
    rename later (into `unrenamed`) when e.g. the folder went read-only."""
    try:
        fsync_file(tmp)   # on disk before it gets its real name: power cuts happen
        os.replace(tmp, final)
        done.append(final)
    except OSError:
        unrenamed.append((tmp, final))


def open_part(final: Path, frame: Frame, fps: float, fmt: str) -> PartWriter:
    """The writer for a part whose first frame is `frame` (its size is the part's)."""
    return PartWriter(final, frame.size, fps, fmt, frame.rotation, frame.sar)


class EventClip:
    """An event's clip as numbered parts `clip-001.mp4`, `clip-002.mp4`, ...

    Frames are placed on each part's timeline by timestamp (see the module
    docstring). A failed part is abandoned (its temporary file removed when
    possible) and a new part is tried `RETRY_S` seconds of source time later,
    so a disk that comes back mid-event still gets the rest of the event.
    `errors` collects what went wrong for the recorder to log once.
    """

    def __init__(self, folder: Path, fmt: str, fps: float):
        self.folder = folder
        self.fmt = fmt
        self.fps = fps if fps and fps > 0 else 10.0
        self.number = 0
        self.part: PartWriter | None = None
        self.done: list[Path] = []                 # parts finished and renamed
        self.unrenamed: list[tuple[Path, Path]] = []  # (tmp, final): whole but not renamed yet
        self.errors: list[str] = []
        self.reported = 0        # how many of `errors` the recorder has logged
        self.refused: list[str] = []   # stays empty: encoded clips fail only in writing (PacketClip fills its own)
        self.failed_ts: float | None = None
        self.first: Frame | None = None
        self.frames = 0
        self._t0 = 0.0
        self._slots = 0          # output frames in the current part
        self._last = None        # the last picture written (BGR or av frame), to fill holes

    def add(self, frame: Frame, cut: bool = False) -> None:
        if self.part is not None and frame.size != self.part.size:
            self._finish_part()   # a new picture size: a new part at that size, not a scaled one
        if self.part is None and not self._open(frame):
            return
        k = round((frame.ts - self._t0) * self.fps)
        if cut or k - self._slots > MAX_FILL_S * self.fps:
            self._t0 = frame.ts - self._slots / self.fps   # continue right after the cut
            k = self._slots
        if k < self._slots:
            return    # faster than the clip's rate: this slot is already filled
        try:
            picture = self.part.picture(frame)
            if picture is None:
                return    # a damaged JPEG: its slot is filled like a dropped frame's
            while self._slots < k and self._last is not None:   # frames that never came: hold the last picture
                self.part.write(self._last)
                self._slots += 1
                self.frames += 1
            self.part.write(picture)
            self._slots += 1
            self.frames += 1
            self._last = picture
        except OSError as e:
            self._failed(frame.ts, e)

    def split(self) -> None:
        """End the current part; the next frame opens a new one."""
        self._finish_part()

    def finish(self) -> None:
        self._finish_part()

    @property
    def parts(self) -> list[Path]:
        """Final paths of every part that is (or will be, once renamed) whole, in order."""
        return sorted(self.done + [final for _, final in self.unrenamed])

    def summary(self, parts: list[Path]) -> dict:
        """event.json's clip_* fields, given the parts that exist."""
        fields = {"clip_format": self.fmt, "clip_fps": round(self.fps, 3),
                  "clip_seconds": round(self.frames / self.fps, 2) if parts else 0.0}
        if self.first is not None and parts:
            fields["clip_start_offset_s"] = round(self.first.ts, 3)
        return fields

    def _open(self, frame: Frame) -> bool:
        if self.failed_ts is not None and frame.ts - self.failed_ts < RETRY_S:
            return False
        self.number += 1
        final = self.folder / f"clip-{self.number:03d}{SUFFIX[self.fmt]}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.part = open_part(final, frame, self.fps, self.fmt)
        except OSError as e:
            self.part = None
            self.failed_ts = frame.ts
            self.errors.append(f"cannot start {final.name}: {e.strerror or e}")
            return False
        self.failed_ts = None
        self._t0, self._slots, self._last = frame.ts, 0, None
        if self.first is None:
            self.first = frame
        return True

    def _failed(self, ts: float, err: OSError) -> None:
        self.errors.append(f"{self.part.final.name} abandoned: {err.strerror or err}")
        self.part.abort()
        self.part = None
        self.failed_ts = ts

    def _finish_part(self) -> None:
        part, self.part = self.part, None
        if part is None:
            return
        try:
            part.close()
            part.check()
        except OSError as e:
            self.errors.append(f"{part.final.name} abandoned: {e.strerror or e}")
            part.abort()
            return
        publish(part.tmp, part.final, self.done, self.unrenamed)
