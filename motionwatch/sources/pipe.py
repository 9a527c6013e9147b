"""`pipe:COMMAND`: an MJPEG stream on a command's standard output.

Any camera tool that can write MJPEG to stdout works without Python bindings,
e.g. `pipe:rpicam-vid -t 0 --codec mjpeg -o -` on a Raspberry Pi or
`pipe:ffmpeg -f v4l2 -i /dev/video0 -f mjpeg -`. The command is split like a
shell would (shlex) but run without one, in its own process group so closing
the source ends it and all its children.
"""

from __future__ import annotations

import logging
import os
import select
import shlex
import signal
import subprocess
import threading
import time
from collections import deque

import cv2
import numpy as np

from motionwatch.errors import SourceError
from motionwatch.media.jpeg import EOI, SOI, JpegFrames
from motionwatch.sources.base import LIVE_BATCH_S, OPEN_TIMEOUT_MS, LiveSource, SourceOptions

log = logging.getLogger("motionwatch.pipe")

SOS = 0xDA
# Markers without a length field: TEM, RST0-7 (SOI/EOI handled apart).
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}
MAX_FRAME_BYTES = 32 << 20   # more than this without an end marker is not MJPEG
CHUNK = 1 << 16


class MjpegSplitter:
    """Cuts a byte stream into whole JPEG images.

    It walks the marker segments up to the start of scan, so an EXIF thumbnail
    (a JPEG inside APP1, with its own end marker) does not cut a frame short;
    inside entropy-coded data 0xFF is always stuffed, so the next FFD9 after
    the scan header is the real end.
    """

    def __init__(self):
        self.buf = bytearray()
        self.skipped = 0          # bytes thrown away while looking for a start marker
        self._pos = 0             # where the segment walk / end search resumes
        self._in_scan = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while True:
            jpeg = self._next()
            if jpeg is None:
                break
            out.append(jpeg)
        if len(self.buf) > MAX_FRAME_BYTES:
            raise SourceError(f"no end of JPEG after {MAX_FRAME_BYTES >> 20} MiB; "
                              "is the command writing MJPEG to stdout?")
        return out

    def _next(self) -> bytes | None:
        buf = self.buf
        if self._pos == 0:
            start = buf.find(SOI)
            if start < 0:
                keep = 1 if buf.endswith(b"\xff") else 0
                self.skipped += len(buf) - keep
                del buf[:len(buf) - keep]
                return None
            if start:
                self.skipped += start
                del buf[:start]
            self._pos, self._in_scan = 2, False
        if not self._in_scan and not self._walk_segments():
            return None
        end = buf.find(EOI, self._pos)
        if end < 0:
            self._pos = max(self._pos, len(buf) - 1)
            return None
        jpeg = bytes(buf[:end + 2])
        del buf[:end + 2]
        self._pos, self._in_scan = 0, False
        return jpeg

    def _walk_segments(self) -> bool:
        """Advance over header segments; True once inside the first scan."""
        buf, pos = self.buf, self._pos
        while pos + 4 <= len(buf):
            if buf[pos] != 0xFF:
                pos += 1          # tolerate fill bytes / sloppy encoders
                continue
            marker = buf[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in _NO_LENGTH:
                pos += 2
                continue
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            pos += 2 + length
            if marker == SOS:
                self._pos, self._in_scan = pos, True
                return pos <= len(buf)
        self._pos = pos
        return False


class _Run:
    """One run of the command: its process and the reader's parsing state.

    Each `open()` makes a new one that its reader thread owns, so a reader
    still winding down never touches the next run's pipe."""

    def __init__(self, proc: subprocess.Popen, stop: threading.Event):
        self.proc = proc
        self.stop = stop          # this connection's stop flag (LiveSource.open made it)
        self.splitter = MjpegSplitter()
        self.pending: list[bytes] = []
        self.eof = False
        self.first: bytes | None = None   # the JPEG that proved the command works
        self.stderr_tail: deque[str] = deque(maxlen=8)


class PipeSource(JpegFrames, LiveSource):
    """Runs the command; the reader keeps the newest JPEG it wrote, undecoded, and
    `read()` decodes it as far as detection needs (grey at the detection size;
    colour only for frames that are saved, as for an MJPEG camera)."""

    kind = "pipe"

    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self.detect_width = self.options.detect_width
        self.batch_s = LIVE_BATCH_S    # its frames are JPEG bytes until analysed
        self.command = spec[len("pipe:"):].strip()
        try:
            self.argv = shlex.split(self.command)
        except ValueError as e:
            raise SourceError(f"{spec}: cannot split the command: {e}") from None
        if not self.argv:
            raise SourceError("pipe: needs a command, e.g. pipe:rpicam-vid -t 0 --codec mjpeg -o -")
        self.run: _Run | None = None

    @property
    def proc(self) -> subprocess.Popen | None:
        return self.run.proc if self.run else None

    # -- LiveSource hooks -----------------------------------------------------------

    def _connect(self) -> _Run:
        run = self._start_process()
        try:
            run.first, img = self._wait_first_frame(run, OPEN_TIMEOUT_MS / 1000)
        except SourceError:
            _kill(run.proc)
            _close_pipe(run)
            raise
        h, w = img.shape[:2]
        self.size = (w, h)
        self.run = run
        return run

    def _grab_from(self, run: _Run) -> bytes | None:
        if run.first is not None:
            jpeg, run.first = run.first, None
            return jpeg
        while not run.stop.is_set():
            jpeg = self._newest_jpeg(run, wait=0.5)
            if jpeg is None:
                if run.eof:
                    self.error = _exit_reason(self.argv[0], run)
                    return None
                continue
            return jpeg     # decoded by read(), which skips and counts a damaged one
        return None

    def _release(self, run: _Run) -> None:
        _kill(run.proc)     # the pipe ended on its own: make sure nothing is left behind
        _close_pipe(run)

    def _disconnect(self) -> None:
        # Runs on the closing thread: ending the process ends the reader's read with EOF.
        if self.run is not None:
            _kill(self.run.proc)

    def describe(self) -> str:
        return f"pipe {self.command}"

    # -- process --------------------------------------------------------------------

    def _start_process(self) -> _Run:
        try:
            # Own session = own process group, so close() can end the whole tree.
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
        except FileNotFoundError:
            raise SourceError(f"pipe: command not found: {self.argv[0]!r} "
                              "(give the full path or install it; no shell is used)") from None
        except PermissionError:
            raise SourceError(f"pipe: permission denied running {self.argv[0]!r}") from None
        except OSError as e:
            raise SourceError(f"pipe: cannot run {self.argv[0]!r}: {e.strerror or e}") from None
        run = _Run(proc, self._stop)
        # Drain stderr so a chatty tool (ffmpeg) never blocks on a full pipe; keep the tail for errors.
        threading.Thread(target=_drain_stderr, args=(self.argv[0], run), name=f"stderr-{self.argv[0]}",
                         daemon=True).start()
        return run

    # -- reading --------------------------------------------------------------------

    def _wait_first_frame(self, run: _Run, timeout: float) -> tuple[bytes, np.ndarray]:
        """The first JPEG that decodes, and its picture: proof that the command writes MJPEG."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jpeg = self._newest_jpeg(run, wait=min(0.5, max(0.0, deadline - time.monotonic())))
            if jpeg is not None:
                img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                if img is not None and img.size:
                    return jpeg, img
                self.bad_frames += 1
            elif run.eof:
                junk = run.splitter.skipped + len(run.splitter.buf)
                hint = f" (it wrote {junk} bytes but no JPEG; is it writing MJPEG to stdout?)" if junk else ""
                raise SourceError(f"pipe: {_exit_reason(self.argv[0], run)} before sending a picture{hint}")
        hint = ("it wrote no JPEG; is it writing MJPEG to stdout (e.g. ffmpeg ... -f mjpeg -)?"
                if run.splitter.skipped else "it wrote nothing")
        raise SourceError(f"pipe: no frame from {self.argv[0]!r} within {timeout:.0f} s: {hint}")

    def _newest_jpeg(self, run: _Run, wait: float) -> bytes | None:
        """Read what is there (waiting up to `wait` for something); return the newest
        whole JPEG, counting older ones as dropped so decoding never falls behind."""
        fd = run.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], wait)
        while ready:
            data = os.read(fd, CHUNK)
            if not data:
                run.eof = True
                break
            run.pending += run.splitter.feed(data)
            ready, _, _ = select.select([fd], [], [], 0)
        if not run.pending:
            return None
        self.dropped += len(run.pending) - 1
        jpeg = run.pending[-1]
        run.pending = []
        return jpeg


def _drain_stderr(name: str, run: _Run) -> None:
    for raw in iter(run.proc.stderr.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            run.stderr_tail.append(line)
            log.debug("%s: %s", name, line)
    run.proc.stderr.close()


def _kill(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after 2 s."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=2.0)
            return
        except subprocess.TimeoutExpired:
            continue


def _close_pipe(run: _Run) -> None:
    try:
        run.proc.stdout.close()
    except OSError:
        pass


def _exit_reason(name: str, run: _Run) -> str:
    try:
        code = run.proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        code = None
    time.sleep(0.05)  # let the stderr thread catch the last words
    last = run.stderr_tail[-1] if run.stderr_tail else ""
    what = f"exited with code {code}" if code is not None else "closed its output"
    return f"{name} {what}" + (f": {last}" if last else "")
