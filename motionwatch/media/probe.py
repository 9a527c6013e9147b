"""A video stream's facts, and opening an input with FFmpeg's options."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction

import av

# Codecs an MP4 clip carries as the source's own packets (stream copy), by FFmpeg's
# canonical name (`StreamFacts.coding`). Chromium and Firefox play VP9 and AV1 in MP4
# as they play H.264 (where Safari does not, the review page offers the download), and
# encoding them with x264 instead made a scan cost 3-4x more (docs/performance.md).
COPY_CODECS = frozenset({"h264", "hevc", "vp9", "av1"})
# Raw elementary-stream demuxers (a camera's .264/.h265 export): FFmpeg gives their
# packets and pictures no timestamps, and their "average rate" is its own default
# (25); the rate the stream itself says (H.264/HEVC timing info) is the codec's.
UNTIMED_FORMATS = frozenset({"h264", "hevc", "vvc", "m4v", "mpegvideo", "cavsvideo", "avs2", "avs3", "vc1",
                             "dirac", "mjpeg", "mjpeg_2000", "h261", "h263"})
# Stream formats that time only some packets (MPEG-PS: .mpg, .vob, many NVRs' ".mp4"
# exports). Where pictures are reordered (B-frames) the others' times cannot be told
# (media.packet_times), so such a stream is read as an untimed one: frame times by
# count (the format is constant-rate), clips encoded from decoded frames.
SPARSELY_TIMED_FORMATS = frozenset({"mpeg"})
# Stream formats that files are joined end to end in (`cat a.ts b.ts`), whose times
# then start again, and which have no index: a seek by time searches the file and
# may land in either recording (media.frames.SAME_PICTURE_MAX_DIFF).
JOINABLE_FORMATS = frozenset({"mpegts", "mpeg", "dhav"})
# Formats whose timestamps are the recorder's wall clock: Dahua's DHAV stamps every
# frame with the NVR's local date and time, which FFmpeg gives as milliseconds
# since 1970 read as if UTC.
WALL_CLOCK_FORMATS = frozenset({"dhav"})
# Formats with edit lists (FFmpeg's demuxer name for MP4, MOV, 3GP): see shown_frames.
EDITED_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2"})
EPOCH_2000 = 946684800
# FFmpeg's own log lines would repeat our one-line messages for every retry of a
# dead camera; AV_LOG_QUIET unless the user asks for them.
if not os.environ.get("MOTIONWATCH_FFMPEG_LOG"):
    av.logging.set_level(None)


@dataclass(frozen=True)
class StreamFacts:
    codec: str
    width: int
    height: int
    fps: float              # 0.0 when the stream does not say
    time_base: Fraction
    frames: int             # frames a player shows (shown_frames); 0 when unknown
    duration_s: float       # 0.0 when unknown (live)
    start_pts: int
    full_range: bool        # pc (JPEG) range: the Y plane spans 0..255
    timed: bool = True      # packets carry timestamps (not a raw elementary stream)
    joinable: bool = False  # a stream format whose times may recur (JOINABLE_FORMATS)
    recorded_at: float | None = None   # epoch time of the first frame, where the file says it
    # The coding format by FFmpeg's canonical name; `codec` is the decoder's, which
    # differs where a library decodes it (libdav1d reads av1).
    coding: str = ""


def sane_fps(fps: float | None, unknown: float = 0.0) -> float:
    """The rate a container or driver reports, or `unknown` when it is missing or absurd."""
    return float(fps) if fps and 0.5 <= fps <= 240 else unknown


def video_stream(container):
    """The video stream to watch: the one FFmpeg's own tools pick (av_find_best_stream),
    a stream of several frames before a still (cover art, a thumbnail track an exporter
    put first), the default one before others. None when there is no video. A file
    opened again takes the same stream by its index."""
    if not container.streams.video:
        return None
    return container.streams.best("video") or container.streams.video[0]


def facts(stream: av.video.stream.VideoStream) -> StreamFacts:
    cc = stream.codec_context
    fmt = stream.container.format.name
    timed = fmt not in UNTIMED_FORMATS and not (fmt in SPARSELY_TIMED_FORMATS and cc.has_b_frames)
    if timed:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    else:
        rate = cc.framerate or stream.guessed_rate or stream.average_rate
    tb = stream.time_base or Fraction(1, 90000)
    duration = float(stream.duration * tb) if stream.duration else 0.0
    if not duration and stream.container.duration:
        duration = container_span(stream.container)
    fps = sane_fps(float(rate) if rate else 0.0)
    return StreamFacts(
        codec=cc.name, coding=cc.codec.canonical_name, width=cc.width, height=cc.height, fps=fps,
        time_base=Fraction(tb),
        frames=shown_frames(fmt, max(0, stream.frames or 0), duration, fps), duration_s=duration,
        start_pts=stream.start_time or 0,
        full_range=cc.color_range == 2 or (cc.format is not None and cc.format.name.startswith("yuvj")),
        timed=timed, joinable=fmt in JOINABLE_FORMATS,
        recorded_at=recorded_at(stream, tb))


def shown_frames(fmt: str, frames: int, duration_s: float, fps: float) -> int:
    """A stream's frame count (`frames`, the container's; 0 when unknown) as a
    player shows it, in a file of FFmpeg format `fmt`. An MP4's counts the frames its edit
    list hides too (a cut by stream copy keeps them from the keyframe before the cut),
    which FFmpeg drops as players do; its duration is the edit's, so the fewer of the
    two is shown. (An AVI's duration is what could be indexed, and a truncated one's
    header still counts what was recorded: there the count stands.)"""
    if fmt not in EDITED_FORMATS or not frames or not duration_s or not fps:
        return frames
    by_time = round(duration_s * fps)
    return by_time if frames - by_time > max(2, frames // 100) else frames


def container_span(container) -> float:
    """Seconds from the container's first picture to its end. A Matroska (MKV, WebM)
    Duration is its segment's, whose timeline starts at 0: a file whose times start
    at 10 h (kept by a remux with -copyts, or cut from a long recording) says 10 h plus
    its length, and was taken for a file with 10 h of pictures missing, dated 10 h early."""
    span = container.duration / av.time_base
    start = (container.start_time or 0) / av.time_base
    if container.format.name.startswith("matroska") and 0 < start <= span:
        span -= start
    return span


def recorded_at(stream: av.video.stream.VideoStream, tb: Fraction) -> float | None:
    """When the recording began, where the format's timestamps are a wall clock
    (WALL_CLOCK_FORMATS): the recorder's local date and time, taken as this
    machine's local time (the recorder and its owner are usually in one zone).
    None for other formats, or a clock that is not set (before 2000)."""
    if stream.container.format.name not in WALL_CLOCK_FORMATS or not stream.start_time:
        return None
    as_utc = float(stream.start_time * tb)
    if as_utc < EPOCH_2000:
        return None
    return time.mktime(time.gmtime(as_utc)[:8] + (-1,)) + as_utc % 1   # gmtime drops the milliseconds


def file_start(path: os.PathLike, recorded_at: float | None, length_s: float) -> float:
    """Epoch time of a file's first frame when the user did not say (`scan
    --start-time`): as the file says (`recorded_at`, an NVR's clock), or, the best
    guess, its modification time minus its length."""
    return recorded_at if recorded_at is not None else os.stat(path).st_mtime - length_s
