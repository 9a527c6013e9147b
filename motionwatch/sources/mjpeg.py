"""MJPEG over HTTP (`multipart/x-mixed-replace`), read with the standard library.

Most IP cameras and ESP32-CAMs serve their live picture this way: one HTTP
response whose body is a run of JPEG images separated by a boundary. A general
decoder (FFmpeg) would decode every one of them to a full-size picture on the
reader thread, including the frames the detector then drops, although the
detector only looks at a 320-px grey picture and only saved frames need colour.

Here the reader thread only splits the stream into JPEG byte strings (no
decode, so a dropped frame costs nothing). `read()` decodes the newest one
straight to reduced grey with libjpeg's DCT scaling
(`IMREAD_REDUCED_GRAYSCALE_2/4/8`: the largest reduction still at least the
detection width), and the frame keeps the JPEG bytes: its full-size colour
picture is decoded only if a snapshot or the live view asks for it; clips are
encoded in process from the JPEG bytes (sinks.clip).
While frames are being asked for in colour, each is decoded once in colour and
its grey made from that, rather than decoded twice.
"""

from __future__ import annotations

import base64
import http.client
import logging
import re
import socket
import ssl
import time
from urllib.parse import unquote, urljoin, urlsplit

from motionwatch.errors import SourceError
from motionwatch.media.jpeg import EOI, JpegFrames
from motionwatch.media.probe import sane_fps
from motionwatch.sources.base import LIVE_BATCH_S, READ_TIMEOUT_MS, LiveSource, SourceOptions, redact

log = logging.getLogger("motionwatch")

# A part longer than this is no camera frame (a broken stream): give up on the connection.
MAX_PART = 32 * 2**20
MAX_LINE = 65536
MAX_PART_HEADERS = 32
MAX_REDIRECTS = 3
# At connect, frames read to learn the camera's rate (MJPEG over HTTP does not say it),
# for at most this long; the clip writer and the event timing use that rate.
RATE_FRAMES = 8
RATE_WINDOW_S = 1.0


class HttpStream:
    """One open HTTP response: its status, headers and the socket under it."""

    def __init__(self, conn: http.client.HTTPConnection, sock: socket.socket, resp: http.client.HTTPResponse):
        self.conn, self.sock, self.resp = conn, sock, resp

    @property
    def content_type(self) -> str:
        return self.resp.getheader("Content-Type", "") or ""

    def is_mjpeg(self) -> bool:
        return self.content_type.split(";")[0].strip().lower() == "multipart/x-mixed-replace"

    def boundary(self) -> bytes:
        """The boundary parameter, without quotes or the leading dashes some cameras include."""
        for param in self.content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "boundary":
                return value.strip().strip('"').lstrip("-").encode("latin-1")
        return b""

    def shutdown(self) -> None:
        """Unblock a reader waiting in recv (called from another thread)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.resp.close()
        self.conn.close()
        try:
            self.sock.close()
        except OSError:
            pass


def open_http(spec: str, timeout: float) -> HttpStream:
    """GET the URL (Basic auth from user:pass@, redirects followed); SourceError on failure.

    A 401 asking for Digest auth is returned, not raised, so the caller can hand the
    URL to FFmpeg, which speaks Digest."""
    url = spec
    for _ in range(MAX_REDIRECTS + 1):
        stream = _get(spec, url, timeout)
        status = stream.resp.status
        location = stream.resp.getheader("Location")
        if status in (301, 302, 303, 307, 308) and location:
            stream.close()
            url = _follow(url, location)
            continue
        if status == 200 or (status == 401 and _wants_digest(stream)):
            return stream
        stream.close()
        raise SourceError(f"{redact(spec)}: cannot open stream: HTTP {status} {stream.resp.reason}"
                          + _hint(spec, status))
    raise SourceError(f"{redact(spec)}: cannot open stream: more than {MAX_REDIRECTS} redirects")


def _get(spec: str, url: str, timeout: float) -> HttpStream:
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:
        raise SourceError(f"{redact(spec)}: cannot open stream: bad port in the URL") from None
    if not u.hostname:
        raise SourceError(f"{redact(spec)}: cannot open stream: no host in the URL")
    if u.scheme == "https":
        # Cameras ship self-signed certificates; FFmpeg, which read these URLs
        # before, does not verify them either.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(u.hostname, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, port, timeout=timeout)
    headers = {"User-Agent": "motionwatch", "Accept": "*/*"}
    if u.username is not None:
        cred = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    try:
        conn.request("GET", path, headers=headers)
        sock = conn.sock   # getresponse() lets go of it when the server will close
        resp = conn.getresponse()
    except (socket.timeout, TimeoutError):
        conn.close()
        raise SourceError(f"{redact(spec)}: cannot open stream: no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        raise SourceError(f"{redact(spec)}: cannot open stream: {_why(e)}") from None
    return HttpStream(conn, sock, resp)


def _why(e: Exception) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.gaierror):
        return "unknown host"
    if isinstance(e, ssl.SSLError):
        return f"TLS failed ({e.reason or e})"
    if isinstance(e, http.client.HTTPException):
        return f"not an HTTP answer ({type(e).__name__})"
    return (e.strerror or str(e) or type(e).__name__).lower()


def _hint(spec: str, status: int) -> str:
    if status in (401, 403):
        has_user = urlsplit(spec).username is not None
        return " (wrong user or password?)" if has_user else " (the camera wants a login: http://user:password@host/...)"
    return ""


def _wants_digest(stream: HttpStream) -> bool:
    return any(v.strip().lower().startswith("digest") for v in stream.resp.headers.get_all("WWW-Authenticate") or [])


def _follow(url: str, location: str) -> str:
    """The redirect target, keeping user:pass@ when it stays on the same host."""
    new = urljoin(url, location)
    old, to = urlsplit(url), urlsplit(new)
    if old.username is not None and to.username is None and to.hostname == old.hostname:
        netloc = old.netloc.rsplit("@", 1)[0] + "@" + to.netloc
        new = to._replace(netloc=netloc).geturl()
    return new


class PartReader:
    """Splits a multipart body into the bytes of each part (a JPEG)."""

    def __init__(self, stream: HttpStream, timeout: float):
        self.stream = stream
        self.fp = stream.resp
        self.mark = stream.boundary() or b"--"
        self.timeout = timeout
        self._in_headers = False   # True when the boundary line has already been read
        self._found = False        # a boundary line has been seen on this connection
        self._ahead = b""          # bytes read past a part's end (a Content-Length too long), read next

    def next(self) -> bytes | None:
        """The next part's body; None at the end of the stream."""
        try:
            if not self._in_headers and not self._skip_to_boundary():
                return None
            self._in_headers = False
            length = self._headers()
            if length is None:
                return None
            if length > 0:
                data = self._read(length)
                return self._fit(data) if len(data) == length else None
            return self._until_boundary()
        except (socket.timeout, TimeoutError):
            raise OSError(f"no data for {self.timeout:g} s") from None

    def _line(self) -> bytes:
        if self._ahead:
            at = self._ahead.find(b"\n", 0, MAX_LINE) + 1 or min(len(self._ahead), MAX_LINE)
            line, self._ahead = self._ahead[:at], self._ahead[at:]
            if line.endswith(b"\n") or len(line) == MAX_LINE:
                return line
            return line + self.fp.readline(MAX_LINE - len(line))
        return self.fp.readline(MAX_LINE)

    def _read(self, n: int) -> bytes:
        head, self._ahead = self._ahead[:n], self._ahead[n:]
        return head + self.fp.read(n - len(head)) if len(head) < n else head

    def _is_boundary(self, line: bytes) -> bool:
        return line.startswith(b"--") and self.mark in line[:len(self.mark) + 8]

    def _skip_to_boundary(self) -> bool:
        for _ in range(64):   # a few blank lines or a preamble, never a whole stream
            line = self._line()
            if not line:
                return False
            if self._is_boundary(line):
                self._found = True
                return True
            if not self._found and _looks_like_boundary(line):
                # The parts use another boundary than the one Content-Type names (a
                # camera's bug; FFmpeg takes any, too): the first is taken as theirs.
                self.mark, self._found = line.strip()[2:], True
                return True
        raise OSError("no multipart boundary in the stream")

    def _headers(self) -> int | None:
        """Read a part's headers; its Content-Length, 0 when it has none, None at the end."""
        length = 0
        for _ in range(MAX_PART_HEADERS):
            line = self._line()
            if not line:
                return None
            if not line.strip():
                return length
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = 0
                if length > MAX_PART:
                    raise OSError(f"a part of {length} bytes is no camera frame")
        raise OSError("a part's headers never end")

    def _fit(self, data: bytes) -> bytes | None:
        """A part read by its Content-Length, which some cameras get wrong: one that ran
        past the JPEG's end into the next boundary is cut at the end (the boundary line
        is finished and counted as read, and what was read after it, the next part's
        headers and bytes, is read next); one that stopped short of it is read on up to
        the boundary. A JPEG that ends where its length says (line ends or zero padding
        after it) is the usual case."""
        end = data.rfind(EOI)
        tail = data[end + 2:].lstrip(b"\r\n") if end >= 0 else None
        if tail is not None and not tail.strip(b"\r\n\x00"):
            return data
        mark = b"--" + self.mark
        # The first JPEG end followed by the boundary (a table of the next JPEG, read
        # too, may hold the bytes of an end marker; its data cannot).
        found = re.search(re.escape(EOI) + rb"(?:\r?\n)*" + re.escape(mark), data) if mark in data else None
        if found or (tail is not None and mark.startswith(tail)):
            after = data[found.end():] if found else b""
            if b"\n" not in after:
                self._line()   # the rest of the boundary line
            else:   # what came after the boundary line is the next part's: read it next
                self._ahead = after[after.index(b"\n") + 1:] + self._ahead
            self._in_headers = True
            return data[:found.start() + 2] if found else data[:end + 2]
        rest = self._to_boundary()
        return None if rest is None else _to_end(data + rest)

    def _until_boundary(self) -> bytes | None:
        """A part without Content-Length: everything up to the next boundary line,
        trimmed to the JPEG's end-of-image marker."""
        data = self._to_boundary()
        return None if data is None else _to_end(data)

    def _to_boundary(self) -> bytes | None:
        """The bytes up to the next boundary (which is then behind us); None at the end.
        A boundary glued to the JPEG's end, without the line break before it, counts."""
        chunks, size = [], 0
        glued = EOI + b"--" + self.mark
        while True:
            line = self._line()
            if not line:
                return None
            if self._is_boundary(line):
                break
            at = line.find(glued)
            if at >= 0:
                chunks.append(line[:at + 2])
                break
            chunks.append(line)
            size += len(line)
            if size > MAX_PART:
                raise OSError(f"a part over {MAX_PART} bytes is no camera frame")
        self._in_headers = True
        return b"".join(chunks)


def _looks_like_boundary(line: bytes) -> bool:
    """A line that can only be a multipart boundary: `--` and a short token."""
    token = line.strip()
    return token.startswith(b"--") and 2 < len(token) <= 72 and token.isascii() and b" " not in token


def _to_end(data: bytes) -> bytes:
    """A part's bytes up to its JPEG's end-of-image marker (or without trailing line ends)."""
    end = data.rfind(EOI)
    return data[:end + 2] if end >= 0 else data.rstrip(b"\r\n")


class MjpegSource(JpegFrames, LiveSource):
    """An MJPEG-over-HTTP camera: the reader thread splits the stream, `read()` decodes.

    `first` is the response `probe()` already opened, used by the first `open()`
    so a camera that serves one client at a time (ESP32-CAM) is not asked twice."""

    kind = "stream"

    def __init__(self, spec: str, timeout: float | None = None, first: HttpStream | None = None,
                 options: SourceOptions | None = None):
        super().__init__(spec, options)
        self.detect_width = self.options.detect_width
        self.batch_s = LIVE_BATCH_S    # its frames are JPEG bytes until analysed
        self._timeout_s = timeout or READ_TIMEOUT_MS / 1000
        self._first = first
        self._stream: HttpStream | None = None
        self._pending: bytes | None = None   # the newest frame read while learning the rate

    def _connect(self) -> PartReader:
        stream, self._first = self._first, None
        if stream is None:
            stream = open_http(self.spec, self._timeout_s)
        if stream.resp.status != 200 or not stream.is_mjpeg():
            what = f"HTTP {stream.resp.status}" if stream.resp.status != 200 else \
                f"Content-Type {stream.content_type or 'none'}"
            stream.close()
            raise SourceError(f"{redact(self.spec)}: cannot open stream: no longer MJPEG ({what})")
        self._stream = stream
        parts = PartReader(stream, self._timeout_s)
        self._learn_rate(parts)
        return parts

    def _learn_rate(self, parts: PartReader) -> None:
        """Time the first few frames: MJPEG over HTTP does not say its frame rate."""
        arrivals = []
        t0 = time.monotonic()
        self._pending = None
        try:
            while len(arrivals) < RATE_FRAMES and time.monotonic() - t0 < RATE_WINDOW_S:
                data = parts.next()
                if data is None:
                    break
                arrivals.append(time.monotonic())
                self._pending = data
        except OSError:
            pass   # the reader will meet the same trouble and report it
        # The first frame may have waited in a buffer: time the ones after it.
        if len(arrivals) >= 3 and arrivals[-1] > arrivals[1]:
            self.fps = sane_fps((len(arrivals) - 2) / (arrivals[-1] - arrivals[1]), unknown=0.0)

    def _grab_from(self, parts: PartReader) -> bytes | None:
        if self._pending is not None:
            data, self._pending = self._pending, None
            return data
        return parts.next()

    def _release(self, parts: PartReader) -> None:
        parts.stream.close()

    def _disconnect(self) -> None:
        if self._stream is not None:
            self._stream.shutdown()

    def close(self) -> None:
        super().close()
        if self._first is not None:   # probed but never opened
            self._first.close()
            self._first = None

    def describe(self) -> str:
        return f"{self.kind} {redact(self.spec)}"


# Answers that are certainly no video stream: said at once, not after FFmpeg has tried.
# (text/plain is left to FFmpeg: some servers send HLS playlists as text.)
NOT_VIDEO = ("text/html", "application/json", "application/xhtml", "image/")


def probe(spec: str, timeout: float | None, options: SourceOptions | None = None
          ) -> tuple[MjpegSource | None, str]:
    """(an MjpegSource not yet opened on the connection this GET opened, when the URL
    serves multipart/x-mixed-replace; else None, and what the server answered, e.g.
    "HTTP 200, Content-Type text/html", for FFmpeg's failure message). A web page or
    a single picture is refused here with what came back."""
    t = timeout or READ_TIMEOUT_MS / 1000
    stream = open_http(spec, t)
    status, ctype = stream.resp.status, stream.content_type
    if status == 200 and stream.is_mjpeg():
        return MjpegSource(spec, timeout=t, first=stream, options=options), ""
    stream.close()
    answer = f"HTTP {status} {stream.resp.reason}".rstrip() + f", Content-Type {ctype or 'none'}"
    if status == 200 and ctype.lower().startswith(NOT_VIDEO):
        raise SourceError(f"{redact(spec)}: cannot open stream: the server answered {answer}, which is no "
                          "video stream (allowed: MJPEG multipart/x-mixed-replace, MPEG-TS, HLS, MP4 "
                          "and other video FFmpeg reads)")
    return None, answer
