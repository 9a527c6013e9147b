"""Everything FFmpeg opens, through PyAV: video files, stream URLs (rtsp://, HTTP
MPEG-TS, HLS, ...) and V4L2 cameras (/dev/videoN, N).

Frames are `AvFrame`s: detection reads the decoder's Y plane as a view, colour
is made only for the frames that are saved. When clips are on, the demuxed
packets also go into the packet ring (`self.packets`), on the thread that
demuxes, before they are decoded: clips are muxed from them (H.264/HEVC) or
decoded again and encoded from them (other codecs), so no decoded picture is
kept for the pre-roll. A file's packets whose frames the capture loop will not
analyse and that no other picture refers to are not decoded at all
(sources.undecoded); their frames are still counted. With detection.fast_decode,
H.264/HEVC is analysed without the deblocking filter and a saved frame is decoded
again in full: a file's by seeking it, a live stream's from its GOP's kept packets
(media.gop). A live MJPEG stream (a V4L2 camera's MJPEG mode, RTSP JPEG) is not
decoded by FFmpeg at all: its packets are the camera's JPEGs, handed out as an
MJPEG camera's are (media.jpeg: grey decoded reduced, only for analysed frames).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import av

from motionwatch.errors import SourceError
from motionwatch.media.clock import FileClock, StreamPacer
from motionwatch.media.damage import DamageRun
from motionwatch.media.frames import TV_TO_FULL, AvFrame, StreamAspect, StreamTurn, UndecodedFrame
from motionwatch.media.gop import GopRuns
from motionwatch.media.jpeg import JpegFrames
from motionwatch.media.nal import length_size, skippable_towards
from motionwatch.media.packet_times import packets_to_decode
from motionwatch.media.probe import facts, file_start, video_stream
from motionwatch.media.remux import CodecTemplate
from motionwatch.media.ring import PacketRing
from motionwatch.sources.base import (LIVE_BATCH_S, MAX_CAMERA_INDEX, READ_TIMEOUT_MS, FrameSource, LiveSource,
                                      SourceOptions, SourceStats, _exists, is_index, redact)
from motionwatch.sources.undecoded import SkipPlan

log = logging.getLogger("motionwatch")

# Consecutive undecodable packets after which a file counts as ended.
MAX_BAD_IN_ROW = 250
# Decoder threads. Paced and live decoding has a frame interval to spare: one thread
# costs less CPU than FFmpeg's threads waking for each frame. In `scan` FFmpeg's
# frame threads decode the next frames while Python detects on this one.
PACED_DECODER_THREADS = 1
# Live formats that deliver whole segments (seconds of frames at once): their frames
# are handed on at the pace of their timestamps (media.clock.StreamPacer), holding
# one at most this long; HLS segments are 2-10 s and players start 3 back.
SEGMENTED_FORMATS = frozenset({"hls", "dash"})
PACE_MAX_LEAD_S = 40.0
SCAN_DECODER_THREADS = min(2, os.cpu_count() or 1)
# ... but only above 1280x720. Up to there frame threads cost 8-20% more CPU for at
# most 8% less wall time (a small picture's scan is bound by the detector, and on a
# busy machine the second core is not free), so smaller pictures decode on one
# thread (docs/performance.md, 2026-12-05), as clips encode (media.encode).
FRAME_THREADS_ABOVE_PIXELS = 1280 * 720
# ... and only for files with this much decoding (frames x pixels; 2e9 is about 5 s of
# one core's): above 1280x720 frame threads cost 12-25% more CPU for 1.2-1.25x less
# wall time (1080p and 4K camera files, docs/performance.md 2026-12-05 12:20), a second
# or two on a smaller file. The same floor as sources.parallel's worker processes,
# which take over above it where the file can be cut.
SPREAD_WORK = float(os.environ.get("MOTIONWATCH_PARALLEL_MIN_WORK", 2e9))
# How far before a frame a seek for it may have to aim (_decode_at).
MAX_SEEK_BACK_S = 64
# Frames a live decoder holds back to reorder B-frames (x264's B-pyramid: 2):
# a left-out frame would have been handed out that much later.
LIVE_REORDER_FRAMES = 2
# A paced file's frames that will not be analysed are handed out with the next one
# that will (`_handout_index`), at most this many frames late.
MAX_HELD_FRAMES = 8
# ... and its frames come out in batches of LIVE_BATCH_S, as a live camera's do.
# Codecs whose decode detection.fast_decode makes cheaper (skip_loop_filter).
FAST_DECODE_CODECS = frozenset({"h264", "hevc"})
# Live codecs whose packets are JPEGs, handed out undecoded (AvLiveSource._connect_jpegs).
JPEG_CODECS = frozenset({"mjpeg"})
# ... for live streams only up to this size: a saved picture's second decoder holds
# its GOP's reference pictures while it decodes, which at 1080p took the peak of a
# camera with the defaults from 150 to 168 MB (the memory target is 150); at 640x480
# they weigh 3 MB, and fast_decode saves 7% of the CPU (docs/performance.md).
LIVE_FAST_DECODE_MAX_PIXELS = 1280 * 720
# Decoded live pictures up to this size wait for a batch (LiveSource.batch_s); a
# 1080p camera's would hold 15 MB more at the peak, against the 150 MB target.
BATCH_MAX_PIXELS = 1280 * 720
# The ring keeps this much more than the pre-roll: the motion streak before the
# trigger (min_frames) and the frames decoded but not yet analysed.
RING_SLACK_S = 2.0


def decoder(stream, threads: int, fast: bool) -> None:
    """Set the stream's decoder up before its first packet."""
    cc = stream.codec_context
    cc.thread_count = threads
    cc.thread_type = "FRAME" if threads > 1 else "SLICE"
    if fast:
        # The deblocking filter is a quarter of H.264's decode time; detection at
        # 320 px cannot tell. Saved frames are decoded again without it.
        cc.options = {**cc.options, "skip_loop_filter": "all"}


def scan_threads(requested: int, size: tuple[int, int] | None, frames: int) -> int:
    """Decoder threads for a scan of `frames` frames (0: unknown) that may use
    `requested` (0: the default)."""
    if size and (size[0] * size[1] <= FRAME_THREADS_ABOVE_PIXELS or frames * size[0] * size[1] < SPREAD_WORK):
        return 1
    return requested or SCAN_DECODER_THREADS


def copies(f, options: SourceOptions) -> bool:
    """Whether clips of this stream are stream copies (else encoded: from its packets
    with `encode_packets`, from decoded frames without). A raw elementary stream's
    packets have no timestamps to place them in a clip by."""
    return f.timed and f.coding in options.copy_codecs and \
        not (options.copy_max_width and f.width > options.copy_max_width)


def keeps_packets(f, options: SourceOptions) -> bool:
    """Whether the source fills a packet ring: for copied clips, or for clips encoded
    from packets (never a raw stream's: see `copies`)."""
    return f.timed and (copies(f, options) or options.encode_packets)


def packet_ring(stream, f, options: SourceOptions, spec: str) -> tuple[CodecTemplate | None, PacketRing | None]:
    """The stream's facts and the packet ring clips are cut or encoded from; (None, None),
    with a word in the log, for a codec nothing here can hold a copy of (ProRes in a
    build without Matroska): its clips are then encoded from decoded frames, as a raw
    stream's are."""
    try:
        template = CodecTemplate(stream)
    except ValueError as e:
        log.info("%s: %s; clips are encoded from decoded frames", redact(spec), e)
        return None, None
    return template, PacketRing(f.time_base, options.packet_seconds + RING_SLACK_S, template)


def _why(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.rstrip(".").lower() if text[:1].isupper() and not text[:2].isupper() else text.rstrip(".")


class NoVideoStream(SourceError):
    """The input opened, and holds no video (an audio recording, a data file)."""


class TransportRefused(SourceError):
    """The server refused the transport asked for (an RTSP camera answering 461
    Unsupported Transport to RTP over TCP)."""


def open_input(spec: str, target: str, fmt: str | None, options: dict, timeout: float | None):
    """(container, video stream) or SourceError naming what failed."""
    try:
        container = av.open(target, format=fmt, options=options,
                            timeout=(timeout, timeout) if timeout else None)
    except av.FFmpegError as e:
        kind = TransportRefused if getattr(e, "errno", None) == errno.EPROTONOSUPPORT else SourceError
        raise kind(f"{redact(spec)}: cannot open it: {_why(e)}") from None
    stream = video_stream(container)
    if stream is None:
        container.close()
        raise NoVideoStream(f"{redact(spec)}: has no video stream")
    return container, stream


class AvFileSource(FrameSource):
    """A video file; paced (`run`) plays it at its own frame rate like a camera,
    otherwise (`scan`) every frame is returned in order as fast as it decodes."""

    kind = "video file"

    def __init__(self, spec: str, options: SourceOptions | None = None):
        super().__init__(spec, options)
        self.live = False
        self.paced = not self.options.scan
        self.start_wall = self.options.start_wall
        self.decode_failures = 0
        self.container = None
        self.stream = None
        self._frames = None
        self._t0 = 0.0
        self._again = None    # a second decoder for full-quality saved frames (fast_decode)
        self._aspect: StreamAspect | None = None   # set at open, with the stream
        self._again_lock = threading.Lock()   # saved frames are converted on the sink thread
        self._fast = False
        self._verify = False   # saved pictures found again by time are checked (StreamFacts.joinable)
        self._turn = StreamTurn()
        self._closed = False
        self._plan: SkipPlan | None = None   # packets left undecoded (options.wanted)
        self._catch_up = None   # a decoder like the analysis one, for undecoded frames wanted after all
        self._last_size = None
        self._prefix: int | None = None   # media.nal.length_size (None: no packet can be told disposable)
        self.stream_index = 0
        self._counted, self._duration_s = False, 0.0
        self._clock = FileClock(None, 25.0)

    def open(self) -> None:
        path = Path(self.spec)
        if not _exists(self.spec):
            raise SourceError(f"{redact(self.spec)}: no such file (tried it as a video file; "
                              "sources are a camera index, /dev/videoN, a URL, a file, pipe:COMMAND or demo)")
        if path.is_dir():
            raise SourceError(f"{redact(self.spec)}: is a folder, not a video file")
        if not os.access(path, os.R_OK):
            raise SourceError(f"{redact(self.spec)}: permission denied")
        if not path.is_file():
            raise SourceError(f"{redact(self.spec)}: is not a regular file (a FIFO or device); "
                              "scan reads video files")
        try:
            self.container, self.stream = open_input(self.spec, str(path), None, {}, None)
            self._aspect = StreamAspect(self.stream.codec_context)
        except NoVideoStream:
            raise   # it opened: saying it may be damaged would send the user the wrong way
        except SourceError:
            raise SourceError(f"{redact(self.spec)}: cannot read any video from it: not a video, or "
                              "damaged (an MP4 cut off while recording has no index)") from None
        f = facts(self.stream)
        # Kept: a file opened again (snapshots, late frames) must decode the same stream,
        # also after this one is closed and its stream object freed.
        self.stream_index = self.stream.index
        self.fps = f.fps or 25.0
        self.total_frames = f.frames or (round(f.duration_s * self.fps) if f.duration_s else 0)
        # A container's own frame count is exact; one from the duration is not (a
        # variable-rate file), so whether the end is missing is then told by time.
        self._counted = bool(f.frames)
        self._duration_s = f.duration_s
        self._clock = FileClock(f.time_base if f.timed else None, self.fps, f.start_pts)
        self.size = (f.width, f.height) if f.width and f.height else None
        if self.start_wall is None:
            self.start_wall = file_start(path, f.recorded_at, self.total_frames / self.fps)
        # A raw elementary stream (a camera's .264/.h265 export) has no timestamps on its
        # packets or pictures: a saved picture could not be found again to decode in
        # full, so all of them are (and its clips are encoded from them: keeps_packets).
        self._fast = f.timed and self.options.fast_decode and f.codec in FAST_DECODE_CODECS
        self._verify = f.joinable
        threads = (self.options.decoder_threads or PACED_DECODER_THREADS) if self.paced else \
            scan_threads(self.options.decoder_threads, self.size, self.total_frames)
        decoder(self.stream, threads, self._fast)
        self.luma_levels = None if f.full_range else TV_TO_FULL
        self.codec, self.coding = f.codec, f.coding
        self.copying = copies(f, self.options)
        if keeps_packets(f, self.options):
            self.template, self.packets = packet_ring(self.stream, f, self.options, self.spec)
            self.copying = self.copying and self.packets is not None
        self._prefix = length_size(f.codec, self.stream.codec_context.extradata)
        if self._prefix is not None and (self.options.wanted is not None or self.options.passing is not None):
            # Without `wanted` every frame is decoded; the plan still marks the frames
            # that pass their turn on, so the same frames are analysed either way.
            self._plan = SkipPlan(f.codec, self._prefix, self.options.wanted, self.options.passing)
        self._last_size = self.size
        self._damage = DamageRun(self.fps, self.container.format.name)
        self._frames = self._decode()

    def _decode(self):
        """Decoded frames in order, and the pts (ints) of frames left undecoded at their
        places among them; damaged packets are counted and skipped."""
        bad = 0
        plan = self._plan
        try:
            for pkt in packets_to_decode(self.container.demux(self.stream), self.stream):
                if self.packets is not None:
                    self.packets.push(pkt)
                self._damage.arrived(pkt)
                if plan is not None and plan.leave_out(pkt, self._position()):
                    continue
                try:
                    frames = self.stream.decode(pkt)
                except av.InvalidDataError:
                    bad += 1
                    self.decode_failures += 1
                    self._damage.lost()
                    if plan is not None:   # a damaged stream may drop frames: guess no more places
                        plan.stopped = True
                    if bad >= MAX_BAD_IN_ROW:
                        return
                    continue
                bad = 0
                if frames and self.packets is not None:
                    self.packets.follow_size((frames[-1].width, frames[-1].height), self._turn.of(frames[-1]))
                for f in frames:
                    if plan is not None:
                        yield from plan.before(f.pts)
                    yield f
        except av.FFmpegError as e:   # a truncated or damaged container: what was decoded stands
            log.debug("%s: demuxing stopped: %s", self.spec, e)
        if plan is not None:
            yield from plan.rest()

    def _position(self) -> int:
        """The index the next frame handed out will have."""
        return self.frames_read + self.decode_failures

    def read(self, timeout: float = 10.0) -> AvFrame | None:
        if self._frames is None:
            return None
        if self.frames_read == 0:
            self._t0 = time.monotonic()
        av_frame = next(self._frames, None)
        if av_frame is None:
            return None
        # Position in the file, damaged frames included.
        i = self._position()
        self.frames_read += 1
        if isinstance(av_frame, int):   # a frame left undecoded: its packet's pts
            ts = self._clock.time(av_frame, i)
        else:
            ts = self._clock.time(av_frame.pts, i, av_frame.dts)
        if self.paced:
            delay = self._t0 + self._handout_index(i) / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # When it was due to be shown, also if it is handed out later.
            wall = time.time() - max(0.0, time.monotonic() - (self._t0 + ts))
        else:
            wall = self.start_wall + ts
        return self._frame_for(av_frame, i, ts, wall)

    def _frame_for(self, item, i: int, ts: float, wall: float):
        """The Frame for what `_decode` gave: a decoded frame, or the pts of one left undecoded."""
        plan = self._plan
        if isinstance(item, int):   # a pts the plan left undecoded
            return self._undecoded(item, i, ts, wall, plan is not None and plan.passes_on(item))
        frame = AvFrame(item, i, ts, wall, self._redecode if self._fast else None, self._verify, self._turn.of(item),
                        plan is not None and plan.passes_on(item.pts), self._aspect.of(item),
                        self._damage.damaged(item))
        self._last_size, self.rotation = frame.size, frame.rotation
        return frame

    def _undecoded(self, pts: int, i: int, ts: float, wall: float, passes_turn: bool) -> UndecodedFrame:
        """A frame without its picture, decoded here should the loop want it after all."""
        return UndecodedFrame(pts, self._last_size, i, ts, wall, self._decode_late, passes_turn)

    def _handout_index(self, index: int) -> int:
        """The frame whose time frame `index` of a paced file is handed out at: the last
        of its batch (LIVE_BATCH_S), or, when the capture loop will not analyse that one,
        the next one it will. Frames nobody looks at then go with that one, a wake-up for
        them all: each wake-up of a paced loop cost about what decoding a frame does
        (docs/performance.md)."""
        batch = max(1, round(LIVE_BATCH_S * self.fps))
        index = (index // batch + 1) * batch - 1
        analysed, last = self.options.analysed, index + MAX_HELD_FRAMES
        while analysed is not None and index < last and not analysed(index):
            index += 1
        return index

    def _decode_late(self, frame: UndecodedFrame) -> AvFrame | None:
        """An undecoded frame the capture loop wants after all (the plan's guess of its
        index was wrong): decoded from its keyframe by a decoder set up like the
        analysis one, so detection sees the picture a decode of every frame gives."""
        try:
            if self._catch_up is None:
                self._catch_up = av.open(self.spec)
                decoder(self._catch_up.streams[self.stream_index], 1, self._fast)
            av_frame = _decode_at(self._catch_up, self.stream_index, frame.pts)
        except av.FFmpegError as e:
            av_frame = None
            log.debug("%s: %s", self.spec, e)
        if av_frame is None:
            log.warning("%s: could not decode frame %d after all; it is not analysed", self.spec, frame.index)
            return None
        return AvFrame(av_frame, frame.index, frame.ts, frame.wall, self._redecode if self._fast else None,
                       self._verify, self._turn.of(av_frame), frame.passes_turn, self._aspect.of(av_frame),
                       av_frame.is_corrupt or self._damage.holding)

    def _redecode(self, pts: int) -> av.VideoFrame | None:
        """Frame `pts` decoded again at full quality (from its keyframe, by a second decoder).

        Runs on the sink thread, possibly after the scan has closed the source:
        then on a decoder of its own that it closes again."""
        with self._again_lock:
            container = self._again
            try:
                if container is None:
                    container = av.open(self.spec)
                    # One thread: a snapshot decodes a GOP's worth of frames at most, and
                    # FFmpeg's frame threads cost more CPU than they save in that.
                    decoder(container.streams[self.stream_index], 1, False)
                    if not self._closed:
                        self._again = container
                return _decode_at(container, self.stream_index, pts)
            except av.FFmpegError as e:
                log.warning("%s: could not decode frame at pts %d again (%s); saving the analysis decode",
                            self.spec, pts, e)
                return None
            finally:
                if container is not None and container is not self._again:
                    container.close()

    @property
    def missing_at_end(self) -> int:
        """Frames the container promised but that never came (a truncated file).

        Frame counts are estimates in some containers, so a couple are forgiven."""
        if self._counted or not self._duration_s or self._clock.last is None:
            missing = self.total_frames - self.frames_read - self.decode_failures
            if self._counted and self._clock.last is not None:
                # An AVI counts the chunks of frames not sent (a capture's dropped frames,
                # ffmpeg -r): reaching the count's time is reaching the end. A truncated
                # AVI's pictures stop short of that time too.
                missing = min(missing, round(self.total_frames - self.stopped_at * self.fps))
        else:   # the time after the last frame's interval that the container says it lasts
            # From the first picture: those before the first keyframe (a DVR's .ts segment
            # starts mid-GOP) cannot be decoded; they are not a missing end.
            shown_s = self._duration_s - self._clock.lead()
            missing = round((shown_s - self._clock.last) * self.fps) - 1
        return missing if missing > max(2, self.total_frames // 100) else 0

    @property
    def stopped_at(self) -> float:
        """Seconds into the file of the end of the last frame read."""
        last = self._clock.last
        return last + 1 / self.fps if last is not None else (self.frames_read + self.decode_failures) / self.fps

    def stats(self) -> SourceStats:
        return SourceStats(frames_read=self.frames_read, decode_failures=self.decode_failures,
                           missing_at_end=self.missing_at_end, total_frames=self.total_frames,
                           undecoded=self._plan.left_out if self._plan is not None else 0)

    def close(self) -> None:
        self._frames = None
        with self._again_lock:
            self._closed = True
            for c in (self.container, self._again, self._catch_up):
                if c is not None:
                    try:
                        c.close()
                    except av.FFmpegError:
                        pass
            self.container = self._again = self._catch_up = None


def _decode_at(container, index: int, pts: int) -> av.VideoFrame | None:
    """The frame of stream `index` shown at `pts`, decoded from the keyframe before it (None if the seek missed it).

    An MPEG-TS seek can land on the keyframe after the one asked for, or near its
    end past every frame (seen on a remuxed H.264 clip): then it seeks again,
    further back each time."""
    stream = container.streams[index]
    second = max(1, round(1 / stream.time_base))
    back = 0
    while True:
        container.seek(pts - back, stream=stream, backward=True)
        frames = _decoded_towards(container, stream, pts)
        f = next(frames, None)
        if (f is not None and f.pts <= pts) or back >= MAX_SEEK_BACK_S * second:
            break
        back = 2 * back or second
    while f is not None and f.pts < pts:
        f = next(frames, None)
    return f if f is not None and f.pts == pts else None


def _decoded_towards(container, stream, pts: int):
    """Frames decoded from where the container stands, for the one shown at `pts`:
    other disposable pictures (media.nal) are not decoded, no picture refers to them."""
    codec = stream.codec_context.name
    prefix = length_size(codec, stream.codec_context.extradata)
    for pkt in packets_to_decode(container.demux(stream), stream):
        if pkt.pts is not None and skippable_towards(pkt, pts, codec, prefix):
            continue
        for f in stream.decode(pkt):
            if f.pts is not None:
                yield f


class AvLiveSource(JpegFrames, LiveSource):
    """A stream URL or a V4L2 camera: the reader thread demuxes and decodes, `read()`
    hands out the newest frame. Each connection's container belongs to its reader.
    MJPEG is not decoded on the reader thread: its JPEGs go to `JpegFrames`.

    `answer` is what an HTTP server said to a plain GET (status, content type), told
    when FFmpeg cannot open the URL either."""

    def __init__(self, spec: str, options: SourceOptions | None = None, answer: str = ""):
        super().__init__(spec, options)
        self.answer = answer
        ms = int(1000 * self.options.timeout) if self.options.timeout else READ_TIMEOUT_MS
        self._timeout_s = ms / 1000
        if is_index(spec) or spec.startswith("/dev/"):
            self.kind = "camera"
            self._target, self._fmt = (f"/dev/video{int(spec)}" if is_index(spec) else spec), "v4l2"
        else:
            self.kind = "stream"
            self._target, self._fmt = spec, None
        self._last_size: tuple[int, int] | None = None
        self._plan: SkipPlan | None = None   # this connection's packets left out
        self._left_out_before = 0            # ... and earlier connections' count
        self._let_go_size: tuple[int, int] | None = None   # coded size of the last picture _let_go was asked about
        self._rtsp_transport = "tcp"   # RTP over the RTSP connection, until the camera refuses it (_open_rtsp)
        self.detect_width = self.options.detect_width

    def _connect(self):
        if is_index(self.spec) and int(self.spec) > MAX_CAMERA_INDEX:
            raise SourceError(f"{redact(self.spec)}: camera index out of range; allowed: 0..{MAX_CAMERA_INDEX}")
        if self.kind == "camera" and not _exists(self._target):
            raise SourceError(f"{redact(self.spec)}: no such camera device")
        t0 = time.monotonic()
        try:
            container, stream = self._open()
        except SourceError as e:
            silent = self.kind == "stream" and time.monotonic() - t0 >= 0.9 * self._timeout_s
            why = f"no answer within {self._timeout_s:g} s" if silent else str(e).split(": ", 1)[-1]
            told = f" (the server answered {self.answer})" if self.answer else ""
            raise SourceError(f"{redact(self.spec)}: cannot open {self.kind}: {why}{told}") from None
        f = facts(stream)
        self.fps = f.fps
        self.size = (f.width, f.height) if f.width and f.height else None
        self.codec, self.coding = f.codec, f.coding
        # A stream that states no size (MPEG-TS) batches until its first picture says.
        self.batch_s = LIVE_BATCH_S if f.codec in JPEG_CODECS or not self.size else self._batch_for(self.size)
        if f.codec in JPEG_CODECS:
            return self._connect_jpegs(container, stream)
        # A live frame cannot be sought again: with fast_decode its GOP's packets are
        # kept (media.gop), and a saved frame is decoded again from them.
        fast = (f.timed and self.options.fast_decode and f.codec in FAST_DECODE_CODECS and bool(f.width and f.height)
                and f.width * f.height <= LIVE_FAST_DECODE_MAX_PIXELS)
        decoder(stream, PACED_DECODER_THREADS, fast)
        prefix = length_size(f.codec, stream.codec_context.extradata)
        gops = GopRuns(f.codec, stream.codec_context.extradata, f.time_base, prefix) if fast else None
        self.luma_levels = None if f.full_range else TV_TO_FULL
        self.lets_go = True
        self.copying = copies(f, self.options)
        if keeps_packets(f, self.options):
            self.template, self.packets = packet_ring(stream, f, self.options, self.spec)
            self.copying = self.copying and self.packets is not None
        else:
            self.packets = self.template = None
        return _Connection(container, stream, self.packets, self._skip_plan(f, stream, prefix), self._next_index,
                           gops, stop=self._stop)

    def _connect_jpegs(self, container, stream) -> _Connection:
        """An MJPEG stream: its packets are whole JPEGs, handed out undecoded. The grey
        the detector needs is decoded reduced by libjpeg, only for analysed frames
        (FFmpeg would decode every frame in full); clips are encoded from the JPEGs,
        which are also the pre-roll."""
        self.luma_levels = None          # a JPEG's grey is full range already
        self.lets_go = False             # JPEG bytes are small to keep
        self.copying = False
        self.packets = self.template = None
        return _Connection(container, stream, None, None, self._next_index, jpegs=True)

    @staticmethod
    def _batch_for(size: tuple[int, int] | None) -> float:
        """How long decoded pictures of `size` may wait for a batch (LiveSource.batch_s):
        kept pictures pin decoder buffers (3 MB each at 1080p), so only small ones do."""
        return LIVE_BATCH_S if size and size[0] * size[1] <= BATCH_MAX_PIXELS else 0.0

    def _skip_plan(self, f, stream, prefix: int | None) -> SkipPlan | None:
        """Disposable packets left out (sources.undecoded) when the loop would not analyse
        a frame handed out when theirs would be: now, plus the decoder's reorder delay."""
        if self.options.wanted is None or prefix is None or not f.fps:
            return None
        delay = (LIVE_REORDER_FRAMES if stream.codec_context.has_b_frames else 0) / f.fps

        def wanted(index: int) -> bool:
            t0 = self._t0
            return t0 is None or self.options.wanted(index, time.monotonic() - t0 + delay, self._arrived)
        if self._plan is not None:
            self._left_out_before += self._plan.left_out
        self._plan = SkipPlan(f.codec, prefix, wanted)
        return self._plan

    def _let_go(self, item):
        """A decoded frame nobody will look at as its pts alone, as if left undecoded: a
        picture waiting for the loop (LiveSource._held) keeps a buffer of the decoder's
        pool busy, and the pool never shrinks (3 MB a picture at 1080p). The first
        picture of a new size is kept: the loop learns of a size change from it."""
        if not isinstance(item, tuple) or item[0].pts is None:
            return item
        size = item[0].width, item[0].height
        if size != self._let_go_size:
            self._let_go_size = size
            return item
        return item[0].pts

    def _bare(self, item) -> bool:
        return isinstance(item, int)   # the pts of a picture left undecoded or let go

    def stats(self) -> SourceStats:
        now = self._plan.left_out if self._plan is not None else 0
        return replace(super().stats(), undecoded=self._left_out_before + now)

    def _open(self):
        if self._fmt == "v4l2":
            # A camera's MJPEG mode: more frames per second over USB, and the
            # decoder is cheap. Cameras without one are opened in their default.
            try:
                return open_input(self.spec, self._target, "v4l2", {"input_format": "mjpeg"}, self._timeout_s)
            except SourceError:
                return open_input(self.spec, self._target, "v4l2", {}, self._timeout_s)
        if self.spec.lower().startswith(("rtsp://", "rtsps://")):
            return self._open_rtsp()
        return open_input(self.spec, self._target, None, {}, self._timeout_s)

    def _open_rtsp(self):
        """RTP over the RTSP connection (TCP) first, as Motion and Frigate read cameras: no
        packet is lost on a busy network (a lost one smears pictures up to the next
        keyframe, media.damage). A camera that refuses it is read over UDP, from then on."""
        try:
            return open_input(self.spec, self._target, None, {"rtsp_transport": self._rtsp_transport},
                              self._timeout_s)
        except TransportRefused:
            if self._rtsp_transport != "tcp":
                raise
        log.info("%s: the camera refuses RTP over TCP; reading it over UDP", redact(self.spec))
        self._rtsp_transport = "udp"
        return self._open_rtsp()

    def _grab_from(self, conn: _Connection) -> tuple | int | None:
        return next(conn.frames, None)

    def _release(self, conn: _Connection) -> None:
        conn.frames = iter(())
        try:
            conn.container.close()
        except av.FFmpegError:
            pass   # a dead connection may fail to close cleanly; there is nothing left to do with it

    def _frame(self, item: tuple | int | bytes, index: int, ts: float, wall: float):
        if isinstance(item, bytes):   # a JPEG of an MJPEG stream
            return JpegFrames._frame(self, item, index, ts, wall)
        if isinstance(item, int):   # the pts of a packet left undecoded: a live picture cannot be had later
            return UndecodedFrame(item, self._last_size or self.size, index, ts, wall, lambda _frame: None)
        av_frame, redecode, turn, sar, damaged = item
        frame = AvFrame(av_frame, index, ts, wall, redecode, rotation=turn, sar=sar, damaged=damaged)
        size = frame.size
        if size != self._last_size:   # a camera reconfigured mid-stream
            self.batch_s = self._batch_for(size)
        self._last_size, self.rotation = size, frame.rotation
        return frame

    def describe(self) -> str:
        return f"{self.kind} {redact(self.spec)}"


def _paced(items, pacer: StreamPacer, stop: threading.Event):
    """A connection's frames (or the pts of those left undecoded) held until their
    timestamps say they are due; the connection's close (`stop`) ends a hold."""
    for item in items:
        hold = pacer.delay(item if isinstance(item, int) else item[0].pts, time.monotonic())
        if hold:
            stop.wait(hold)
        yield item


class _Connection:
    """One open stream: its decoded frames (and the pts of those its plan left
    undecoded, at their places), pushing packets into the ring on the way.
    `position()` is the index the next frame handed out will have."""

    def __init__(self, container, stream, ring: PacketRing | None, plan: SkipPlan | None, position,
                 gops: GopRuns | None = None, jpegs: bool = False, stop: threading.Event | None = None):
        self.container = container
        self.stream = stream
        self.frames = self._jpegs() if jpegs else self._decode(ring, plan, position, gops)
        if not jpegs and stop is not None and container.format.name in SEGMENTED_FORMATS and stream.time_base:
            # A segment comes at once: its frames are handed on at their own pace.
            self.frames = _paced(self.frames, StreamPacer(stream.time_base, PACE_MAX_LEAD_S), stop)

    def _jpegs(self):
        """The packets' bytes, undecoded: an MJPEG stream's JPEGs."""
        for pkt in self.container.demux(self.stream):
            if pkt.size:
                yield bytes(pkt)

    def _decode(self, ring: PacketRing | None, plan: SkipPlan | None, position, gops: GopRuns | None):
        """(frame, its Redecode or None, the display turn, the pixels' shape, whether it
        shows damage) for decoded frames, the pts for those left out."""
        turn, aspect = StreamTurn(), StreamAspect(self.stream.codec_context)
        damage = DamageRun(self.stream.guessed_rate, self.container.format.name)
        for pkt in packets_to_decode(self.container.demux(self.stream), self.stream):
            if ring is not None:
                ring.push(pkt)
            if gops is not None:
                gops.push(pkt)
            damage.arrived(pkt)
            if plan is not None and plan.leave_out(pkt, position()):
                continue
            try:
                frames = self.stream.decode(pkt)
            except av.InvalidDataError:   # a damaged packet on the wire: the next keyframe repairs the picture
                damage.lost()
                continue
            if frames and ring is not None:
                ring.follow_size((frames[-1].width, frames[-1].height), turn.of(frames[-1]))
            for f in frames:
                if plan is not None:
                    yield from plan.before(f.pts)
                yield f, (gops.redecode_for(f.pts) if gops is not None else None), turn.of(f), aspect.of(f), \
                    damage.damaged(f)
