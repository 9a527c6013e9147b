"""Event clips: numbered parts, each written under a temporary name and renamed
only once it is whole.

Format: H.264 in MP4 (`-movflags +faststart`) through the system's ffmpeg
when it has libx264, because every browser plays it inline and it is the
smallest per second of video; otherwise OpenCV's own MPEG-4 Part 2 (`mp4v`)
MP4, which OpenCV's pip wheels always write, VLC and every desktop player
open, and browsers offer as a download. VP8 WebM (`webm`) plays in browsers
without ffmpeg but costs several times the CPU. The README section *Recording* has the
measurements behind this choice.

Frames are placed on the clip's timeline by their source timestamps, so a
live camera that delivers unevenly (or frames the sink queue had to drop)
still gives a clip that plays at real speed: a missing frame is filled by
repeating the one before it, for gaps up to a second.

Frames of an MJPEG camera (or a `pipe:` command writing MJPEG) are handed to
ffmpeg as the camera's own JPEG bytes (`JpegPart`): nothing is decoded in
Python and ~20x fewer bytes go through the pipe than as raw BGR.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from motionwatch.errors import MotionwatchError
from motionwatch.jpeg_frame import JpegFrame
from motionwatch.model import Frame
from motionwatch.store import TMP_PREFIX, fsync_file

log = logging.getLogger("motionwatch.clip")

FORMATS = ("auto", "copy", "h264", "mp4v", "webm")
SUFFIX = {"h264": ".mp4", "mp4v": ".mp4", "webm": ".webm"}
CV_FOURCC = {"mp4v": "mp4v", "webm": "VP80"}
WRITE_TIMEOUT_S = 20.0   # an encoder that takes no frame for this long has hung
FINISH_TIMEOUT_S = 120.0
MAX_FILL_S = 1.0          # longer holes in the timeline are cuts, not dropped frames
RETRY_S = 10.0            # after a failed part, try a new one this much later (source time)
X264_ARGS = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "23")
# Said outright, so both kinds of part are tagged alike: BT.601 limited range is what
# ffmpeg's BGR conversion gives and what JPEG's YCbCr is once its range is narrowed.
BT601_TV = ("-colorspace", "bt470bg", "-color_range", "tv")
MP4_ARGS = ("-movflags", "+faststart", "-f", "mp4")
# x264's threads cost ~0.25 ms a 640x480 frame in hand-offs. One thread encodes
# 640x480 at ultrafast in ~0.55 ms here, 720p in three times that: a Raspberry Pi 4,
# several times slower, should still keep up with 30 fps (estimated, not measured on one).
ONE_THREAD_PIXELS = 1280 * 720
# Frames go to ffmpeg in bursts: an encoder woken per frame costs ~0.3 ms more a
# 640x480 frame (cold caches, thread wake-ups) than one fed half a second at once.
BURST_S = 0.5
BURST_BYTES = 8 * 2**20
# JPEG's full-range YCbCr narrowed to video range with a lookup table (0.2 ms a
# 640x480 frame, where swscale's range conversion costs 0.4 ms); the picture is
# then encoded as the yuvj420p it still claims to be, and the stream's VUI flag is
# set to limited range: an ordinary yuv420p clip, like the ones made from BGR.
TV_RANGE_LUT = ("lutyuv=y=16.5+val*219/255:u=128.5+(val-128)*224/255:v=128.5+(val-128)*224/255")
JPEG_OUT_ARGS = ("-pix_fmt", "yuvj420p", "-bsf:v", "h264_metadata=video_full_range_flag=0")
FALLBACK_JPEG_QUALITY = 95   # a frame that is not a camera JPEG, encoded as one (see JpegPart)


@lru_cache(maxsize=1)
def ffmpeg_with_x264() -> str | None:
    """Path of an ffmpeg that can encode H.264, or None."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if "libx264" in out else None


def choose_format(requested: str) -> str:
    """The format clips are encoded in for `events.clip_codec`; h264 without ffmpeg is an error.

    `copy` (and `auto`) cut a video file's clips from the file (sinks.clip_copy);
    for every other source they encode as `auto` does."""
    if requested in ("auto", "copy"):
        return "h264" if ffmpeg_with_x264() else "mp4v"
    if requested == "h264" and not ffmpeg_with_x264():
        raise MotionwatchError("events.clip_codec: h264 needs the ffmpeg program with libx264, "
                               "which is not on PATH; install ffmpeg or use auto, mp4v or webm")
    return requested


def tmp_name(final: Path) -> Path:
    """Hidden name a file is written under; the suffix stays so encoders pick the container."""
    return final.with_name(TMP_PREFIX + final.name)


def _even(size: tuple[int, int]) -> tuple[int, int]:
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


class PartWriter:
    """One clip file. `write` and `close` raise OSError with a readable reason."""

    def __init__(self, final: Path, size: tuple[int, int]):
        self.final = final
        self.tmp = tmp_name(final)
        self.size = size
        self.frames = 0

    def picture(self, frame: Frame):
        """What `write` takes for this frame (EventClip keeps the last one to fill holes)."""
        return frame.image

    def write(self, picture) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop encoding and make the temporary file whole (or fail)."""
        raise NotImplementedError

    def check(self) -> None:
        """After `close`: raise unless the temporary file is a whole clip."""
        if self.frames == 0:
            raise OSError(errno.ENODATA, "no frame was written")
        if not self.tmp.exists() or self.tmp.stat().st_size == 0:
            raise OSError(errno.EIO, f"{self.tmp.name} is missing or empty after encoding")

    def abort(self) -> None:
        """Stop and remove the temporary file (best effort: the folder may be gone)."""
        try:
            self.close()
        except OSError:
            pass
        try:
            self.tmp.unlink()
        except OSError:
            pass

    def _fit(self, image: np.ndarray) -> np.ndarray:
        w, h = self.size
        if image.shape[1] != w or image.shape[0] != h:
            if image.shape[1] >= w and image.shape[0] >= h and image.shape[1] - w <= 1 and image.shape[0] - h <= 1:
                return image[:h, :w]   # odd source size: drop the last row/column
            return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return image


class FfmpegPipe(PartWriter):
    """H.264 MP4 written by an ffmpeg child process that reads the frames on its stdin."""

    def __init__(self, final: Path, size: tuple[int, int], fps: float, exe: str, input_args: list[str],
                 output_args: list[str]):
        super().__init__(final, size)
        self._err = tempfile.TemporaryFile()
        self._burst = max(1, round(fps * BURST_S))
        self._pending: list = []     # frames not yet handed to ffmpeg
        self._pending_bytes = 0
        threads = ["-threads", "1"] if size[0] * size[1] <= ONE_THREAD_PIXELS else []
        cmd = [exe, "-hide_banner", "-nostats", "-loglevel", "error", *input_args, "-framerate", f"{fps:.6g}",
               "-i", "pipe:0", "-an", *output_args, *X264_ARGS, *threads, *BT601_TV, *MP4_ARGS, "-y", str(self.tmp)]
        # Own session: a Ctrl-C meant for motionwatch must not kill the encoder
        # before the clip is finished. If motionwatch itself is killed, ffmpeg
        # sees end of input and completes the hidden temporary file only.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=self._err, start_new_session=True)
        try:   # encoding is background work: capture and detection come first
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, 10)
        except OSError:
            pass
        self._fd = self.proc.stdin.fileno()
        os.set_blocking(self._fd, False)

    def write_bytes(self, data) -> None:
        """One frame's bytes for ffmpeg, handed over with the next burst; OSError when
        ffmpeg stopped or takes nothing for WRITE_TIMEOUT_S."""
        data = memoryview(data).cast("B")
        self._pending.append(data)
        self._pending_bytes += data.nbytes
        self.frames += 1
        if len(self._pending) >= self._burst or self._pending_bytes >= BURST_BYTES:
            self._flush()

    def _flush(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for data in pending:
            self._send(data)

    def _send(self, data: memoryview) -> None:
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while data:
            try:
                n = os.write(self._fd, data)
            except BlockingIOError:
                n = 0
            except BrokenPipeError:
                raise OSError(errno.EPIPE, self._reason("ffmpeg stopped")) from None
            if n:
                data = data[n:]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                raise OSError(errno.ETIMEDOUT, f"ffmpeg took no frame for {WRITE_TIMEOUT_S:.0f} s")
            select.select([], [self._fd], [], left)

    def abort(self) -> None:
        self.proc.kill()     # no point finishing a clip that will be removed
        self._pending = []
        super().abort()

    def close(self) -> None:
        if self._pending:
            self._flush()   # an OSError leaves the part to `abort`, which kills ffmpeg
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            code = self.proc.wait(FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise OSError(errno.ETIMEDOUT, "ffmpeg did not finish the clip in time") from None
        reason = self._reason(f"ffmpeg exited with status {code}") if code != 0 else ""
        self._err.close()
        if code != 0:
            raise OSError(errno.EIO, reason)

    def _reason(self, what: str) -> str:
        """ffmpeg's own last words (e.g. 'No space left on device'), if any."""
        try:
            self._err.seek(0)
            lines = [ln for ln in self._err.read().decode(errors="replace").splitlines() if ln.strip()]
        except (OSError, ValueError):   # ValueError: already closed
            lines = []
        return f"{what}: {lines[-1].strip()}" if lines else what


class FfmpegPart(FfmpegPipe):
    """Raw BGR frames (900 KB each at 640x480) piped to ffmpeg."""

    def __init__(self, final: Path, size: tuple[int, int], fps: float, exe: str):
        w, h = _even(size)
        super().__init__(final, (w, h), fps, exe, ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}"],
                         ["-pix_fmt", "yuv420p"])

    def write(self, image: np.ndarray) -> None:
        self.write_bytes(np.ascontiguousarray(self._fit(image)))


class JpegPart(FfmpegPipe):
    """A camera's JPEGs piped to ffmpeg as they came (`coded` is their picture size):
    ffmpeg decodes them, crops or scales them to the clip's size and encodes them."""

    def __init__(self, final: Path, size: tuple[int, int], coded: tuple[int, int], fps: float, exe: str):
        w, h = _even(size)
        self.coded = coded
        cw, ch = coded
        if (cw, ch) == (w, h):
            fit = []
        elif w <= cw <= w + 1 and h <= ch <= h + 1:
            fit = [f"crop={w}:{h}:0:0"]   # odd camera size: drop the last row/column, as _fit does
        else:
            fit = [f"scale={w}:{h}:flags=area"]   # events.clip_width
        super().__init__(final, (w, h), fps, exe, ["-f", "mjpeg"],
                         ["-vf", ",".join([*fit, TV_RANGE_LUT]), *JPEG_OUT_ARGS])

    def picture(self, frame: Frame) -> bytes:
        if isinstance(frame, JpegFrame) and frame.coded_size == self.coded:
            return frame.jpeg
        # Not this camera's JPEG (cannot happen within one source, which ends the
        # event when its size changes): made into one, so the part goes on.
        image = frame.image
        if image.shape[1::-1] != self.coded:
            image = cv2.resize(image, self.coded, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, FALLBACK_JPEG_QUALITY])
        if not ok:
            raise OSError(errno.EIO, "a frame could not be encoded as JPEG for the clip")
        return buf.tobytes()

    def write(self, jpeg: bytes) -> None:
        self.write_bytes(jpeg)


class OpenCvPart(PartWriter):
    """OpenCV's VideoWriter (FFmpeg backend inside the wheel): mp4v MP4 or VP8 WebM."""

    def __init__(self, final: Path, size: tuple[int, int], fps: float, fmt: str):
        super().__init__(final, size)
        fourcc = cv2.VideoWriter_fourcc(*CV_FOURCC[fmt])
        self.vw = cv2.VideoWriter(str(self.tmp), cv2.CAP_FFMPEG, fourcc, fps, self.size)
        if not self.vw.isOpened():
            self.vw.release()
            raise OSError(errno.EIO, f"OpenCV cannot open a {fmt} writer for {self.tmp}")

    def write(self, image: np.ndarray) -> None:
        ok = self.vw.write(self._fit(image))
        if ok is False:   # OpenCV < 4.10 returned None: then only the final check tells
            raise OSError(errno.EIO, f"OpenCV could not write a frame to {self.tmp.name}")
        self.frames += 1

    def close(self) -> None:
        self.vw.release()

    def check(self) -> None:
        super().check()
        # OpenCV reports few errors (a full disk can go unnoticed): read it back.
        cap = cv2.VideoCapture(str(self.tmp), cv2.CAP_FFMPEG)
        ok = cap.isOpened() and cap.read()[0]
        cap.release()
        if not ok:
            raise OSError(errno.EIO, f"{self.tmp.name} cannot be read back after encoding")


def open_part(final: Path, frame: Frame, fps: float, fmt: str) -> PartWriter:
    """The writer for a part whose first frame is `frame` (its size is the part's)."""
    if fmt == "h264":
        exe = ffmpeg_with_x264()
        if exe is None:
            raise OSError(errno.ENOENT, "ffmpeg with libx264 is gone")
        if jpeg_coded(frame):
            return JpegPart(final, frame.size, frame.coded_size, fps, exe)
        return FfmpegPart(final, frame.size, fps, exe)
    return OpenCvPart(final, frame.size, fps, fmt)


def jpeg_coded(frame: Frame) -> bool:
    """Whether the frame carries a camera's JPEG that ffmpeg can encode from."""
    return isinstance(frame, JpegFrame) and bool(frame.jpeg) and min(frame.coded_size) > 0


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
        self.failed_ts: float | None = None
        self.first: Frame | None = None
        self.frames = 0
        self._t0 = 0.0
        self._slots = 0          # output frames in the current part
        self._last = None        # the last picture written (BGR or JPEG bytes), to fill holes

    def add(self, frame: Frame, cut: bool = False) -> None:
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
            while self._slots < k:     # frames that never came: hold the last picture
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
        self._t0, self._slots = frame.ts, 0
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
        try:
            fsync_file(part.tmp)   # on disk before it gets its real name: power cuts happen
            os.replace(part.tmp, part.final)
            self.done.append(part.final)
        except OSError:   # whole, but e.g. the folder went read-only: the recorder renames it later
            self.unrenamed.append((part.tmp, part.final))
