"""Event clips cut straight out of a video file source: stream copy, no decode, no encode.

When the source is a video file whose video an MP4 can hold (H.264; HEVC only
when asked for), an event's clip is the source's own packets from the keyframe
at or before (first motion - pre-roll) to just past (last motion + post-roll),
copied into MP4 by `ffmpeg -ss S -i SOURCE -map 0:v:0 -c copy -frames:v N`.
That costs a few tens of milliseconds per clip instead of decoding every event
frame to BGR and encoding it again, and the clip is the source, bit for bit.

Why the range is worked out here and not left to ffmpeg: with `-ss T` before
`-i` and `-c copy`, ffmpeg 5.1 starts at the keyframe before T and writes an
MP4 edit list that hides the frames between that keyframe and T (players that
ignore edit lists show them, browsers differ), and `-t` ends on a decode-order
boundary, so with B-frames the last frames can have holes. So the packets
around the event are listed once with ffprobe (demuxing only), the clip starts
exactly on a keyframe (S = that keyframe's time: nothing hidden) and ends after
the shortest run of packets that is whole in display order. Parts
(`events.max_seconds`) are split on keyframes, so they join without a gap or
an overlap. The written file is probed again and its real start and length
are what event.json reports.

Only files in containers that carry presentation timestamps and an index
(MP4/MOV, Matroska/WebM) are cut: AVI has no timestamps for B-frames and
MPEG-TS seeks inexactly, so those are encoded as before.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from motionwatch.config import EventsConfig

log = logging.getLogger("motionwatch.clip")

# Codecs a browser plays from MP4 (auto copies only these) and the ones an MP4
# holds at all (`clip_codec: copy` copies these too: HEVC plays in Safari and
# desktop players, in Chrome/Firefox only on some machines).
BROWSER_CODECS = {"h264"}
MP4_CODECS = {"h264", "hevc"}
BROWSER_PIX_FMTS = {"yuv420p", "yuvj420p"}
CONTAINERS = {"mov", "mp4", "matroska", "webm"}
PROBE_TIMEOUT_S = 60.0
CUT_TIMEOUT_S = 300.0
TAIL_S = 3.0            # packets listed past the clip's end, to find where display order closes
MARGINS_S = (0.0, 2.0, 10.0, 60.0, math.inf)   # how far before the start to look for a keyframe
EPS = 1e-4


@dataclass(frozen=True)
class CopySource:
    """What cutting from one source file needs; probed once per source."""

    path: str
    codec: str
    time_base: Fraction         # of the video stream's timestamps
    start: Fraction             # the video stream's first timestamp, seconds
    format_start_us: int        # ffmpeg's -ss counts from the file's start time (µs)
    duration: float             # seconds of video (0: unknown)
    fps: float

    def describe(self) -> str:
        return f"{self.codec} from {Path(self.path).name}"


def tools() -> tuple[str, str] | None:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    return (ffmpeg, ffprobe) if ffmpeg and ffprobe else None


def plan_copy(requested: str, source, camera: str) -> CopySource | None:
    """The source to cut this camera's clips from, or None to encode them.

    `auto` copies silently when it can; an explicit `copy` that cannot says why
    in one line and falls back to encoding, so no event loses its clip."""
    if requested not in ("auto", "copy"):
        return None
    plan, why = _probe_plan(source, explicit=requested == "copy")
    if plan is None:
        if requested == "copy":
            log.warning("%s: events.clip_codec copy: cannot cut clips from %s (%s); encoding them instead",
                        camera, source.describe(), why)
        else:
            log.debug("%s: clips are encoded, not cut from the source: %s", camera, why)
    else:
        log.debug("%s: clips are cut from the source without re-encoding (%s)", camera, plan.describe())
    return plan


def _probe_plan(source, explicit: bool) -> tuple[CopySource | None, str]:
    from motionwatch.sources import FileSource   # sinks do not otherwise depend on sources
    if not isinstance(source, FileSource):
        return None, f"only video files can be cut, this is a {source.kind}"
    if tools() is None:
        return None, "the ffmpeg and ffprobe programs are not on PATH"
    try:
        info = _ffprobe_json(["-select_streams", "v:0", "-show_entries",
                              "stream=codec_name,pix_fmt,time_base,start_time,avg_frame_rate,r_frame_rate,duration"
                              ":format=format_name,start_time,duration", source.spec])
    except OSError as e:
        return None, f"ffprobe could not read it: {e.strerror or e}"
    streams, fmt = info.get("streams") or [], info.get("format") or {}
    if not streams:
        return None, "ffprobe finds no video stream in it"
    st = streams[0]
    codec, pix = st.get("codec_name", "?"), st.get("pix_fmt", "?")
    allowed = MP4_CODECS if explicit else BROWSER_CODECS
    if codec not in allowed:
        return None, (f"its video is {codec}; MP4 clips can take H.264 and HEVC" if explicit else
                      f"its video is {codec}; auto cuts only H.264, which every browser plays")
    containers = set(str(fmt.get("format_name", "")).split(","))
    if not containers & CONTAINERS:
        return None, (f"its container ({fmt.get('format_name', '?')}) has no reliable timestamps or index "
                      "to cut on; MP4, MOV, MKV and WebM can be cut")
    if not explicit and pix not in BROWSER_PIX_FMTS:
        return None, f"its pixel format {pix} does not play in browsers"
    try:
        tb = Fraction(st["time_base"])
        start = Fraction(st["start_time"])
        format_start_us = round(Fraction(fmt.get("start_time") or st["start_time"]) * 10**6)
    except (KeyError, ValueError, ZeroDivisionError):
        return None, "its video stream has no start time"
    fps = _rate(st.get("avg_frame_rate")) or _rate(st.get("r_frame_rate")) or float(source.fps or 0)
    duration = _float(st.get("duration")) or _float(fmt.get("duration"))
    return CopySource(source.spec, codec, tb, start, format_start_us, duration, fps), ""


def _rate(text) -> float:
    try:
        r = float(Fraction(text))
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
    return r if 0.5 <= r <= 240 else 0.0


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def _run(cmd: list[str], timeout: float) -> str:
    """stdout of a tool; OSError with its last error line when it fails."""
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                  timeout=timeout, start_new_session=True)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"{Path(cmd[0]).name} is not installed any more") from None
        except subprocess.TimeoutExpired:
            raise OSError(errno.ETIMEDOUT, f"{Path(cmd[0]).name} took over {timeout:.0f} s") from None
        if proc.returncode != 0:
            err.seek(0)
            lines = [ln.strip() for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
            what = f"{Path(cmd[0]).name} exited with status {proc.returncode}"
            raise OSError(errno.EIO, f"{what}: {lines[-1]}" if lines else what)
    return proc.stdout.decode(errors="replace")


def _ffprobe_json(args: list[str]) -> dict:
    exe = shutil.which("ffprobe") or "ffprobe"
    out = _run([exe, "-v", "error", "-of", "json", *args], PROBE_TIMEOUT_S)
    try:
        return json.loads(out)
    except ValueError:
        raise OSError(errno.EIO, "ffprobe gave unreadable output") from None


# --- choosing the packets ------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    pts: int
    key: bool


@dataclass(frozen=True)
class Cut:
    """One part: `count` packets in file (decode) order from the keyframe at `pts`."""

    pts: int
    count: int


def list_packets(src: CopySource, start: float, end: float) -> list[Packet]:
    """Video packets (decode order) from the keyframe ffprobe seeks to for `start` up to past `end`
    (seconds, absolute stream time); packets without a timestamp are left out."""
    interval = f"{start:.6f}%{end:.6f}" if start > float(src.start) else f"%{end:.6f}"
    exe = shutil.which("ffprobe") or "ffprobe"
    out = _run([exe, "-v", "error", "-select_streams", "v:0", "-read_intervals", interval,
                "-show_entries", "packet=pts,flags", "-of", "compact=p=0", src.path], PROBE_TIMEOUT_S)
    packets = []
    for line in out.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.strip().split("|") if "=" in kv)
        pts = fields.get("pts", "N/A")
        if pts.lstrip("-").isdigit():
            packets.append(Packet(int(pts), fields.get("flags", "").startswith("K")))
    return packets


def plan_cuts(src: CopySource, first_s: float, last_s: float, max_seconds: float) -> list[Cut]:
    """The parts covering [first_s, last_s] (seconds from the first frame): start on the
    keyframe at or before first_s, end once display order is whole past last_s, split on
    keyframes at most `max_seconds` apart (a longer GOP makes a longer part)."""
    tb = src.time_base
    t0 = float(src.start) + first_s
    t1 = float(src.start) + last_s
    to_pts = lambda s: s / tb   # noqa: E731 (Fraction: exact for comparisons)
    for margin in MARGINS_S:
        packets = list_packets(src, t0 - margin, t1 + TAIL_S)
        keys = [i for i, p in enumerate(packets) if p.key and p.pts * tb <= Fraction(t0) + Fraction(EPS)]
        if keys or t0 - margin <= float(src.start):
            break
    if not packets:
        raise OSError(errno.ENODATA, "the source has no video packets in the event's time range")
    head = keys[-1] if keys else next((i for i, p in enumerate(packets) if p.key), None)
    if head is None:
        raise OSError(errno.ENODATA, "no keyframe to start the clip on")
    packets = packets[head:]
    end = _closing_end(packets, to_pts(Fraction(t1) - Fraction(EPS)),
                       at_eof=src.duration > 0 and t1 + TAIL_S >= float(src.start) + src.duration)
    # A part holds frames shown before its start + max_seconds, like an encoded part;
    # it can only end where a keyframe starts the next one.
    step = to_pts(Fraction(max_seconds))
    cuts, s = [], 0
    while s < end:
        limit = packets[s].pts + step
        keys_after = [i for i in range(s + 1, end) if packets[i].key]
        if not keys_after or max(p.pts for p in packets[s:end]) < limit:
            nxt = end
        else:
            within = [i for i in keys_after if packets[i].pts <= limit]
            nxt = within[-1] if within else keys_after[0]
        cuts.append(Cut(packets[s].pts, nxt - s))
        s = nxt
    return cuts


def _closing_end(packets: list[Packet], last_pts: Fraction, at_eof: bool) -> int:
    """Number of leading packets to copy: the fewest that reach `last_pts` and whose display
    times form one run with nothing later in the file shown before them (B-frames)."""
    n = len(packets)
    tail_min = [math.inf] * (n + 1)
    for i in range(n - 1, -1, -1):
        tail_min[i] = min(tail_min[i + 1], packets[i].pts)
    best_closed = 0
    top = -math.inf
    for i, p in enumerate(packets[:-1] if not at_eof else packets):
        top = max(top, p.pts)
        if top < tail_min[i + 1]:
            best_closed = i + 1
            if top >= last_pts:
                return i + 1
    return n if at_eof else max(best_closed, 1)


# --- cutting -------------------------------------------------------------------------

@dataclass(frozen=True)
class Written:
    start: float       # source seconds (from its first frame) of the clip's first shown frame
    seconds: float
    frames: int


def cut_part(src: CopySource, cut: Cut, out: Path) -> Written:
    """Copy one part into `out` (an .mp4 path) and probe what was written."""
    key_us = math.ceil(cut.pts * src.time_base * 10**6)      # at or just past the keyframe: seek lands on it
    ss_us = key_us - src.format_start_us
    cmd = [shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
           "-ss", f"{ss_us / 1e6:.6f}", "-i", src.path, "-map", "0:v:0", "-c", "copy", "-an", "-sn", "-dn",
           "-frames:v", str(cut.count), "-movflags", "+faststart"]
    if src.codec == "hevc":
        cmd += ["-tag:v", "hvc1"]   # the tag Apple's players want
    _run([*cmd, "-f", "mp4", "-y", str(out)], CUT_TIMEOUT_S)
    return _probe_written(out, Fraction(key_us, 10**6) - src.start)


def _probe_written(path: Path, zero_at: Fraction) -> Written:
    """The clip's real start (source seconds) and length, from its own packets; frames
    an edit list hides (negative times) are not counted."""
    info = _ffprobe_json(["-select_streams", "v:0", "-show_entries", "stream=time_base:packet=pts,duration",
                          str(path)])
    streams = info.get("streams") or []
    pkts = [p for p in info.get("packets") or [] if str(p.get("pts", "")).lstrip("-").isdigit()]
    shown = [p for p in pkts if int(p["pts"]) >= 0]
    if not streams or not shown:
        raise OSError(errno.ENODATA, f"{path.name} has no video frames after cutting")
    tb = Fraction(streams[0]["time_base"])
    first = min(int(p["pts"]) for p in shown)
    last = max(shown, key=lambda p: int(p["pts"]))
    dur = int(last["duration"]) if str(last.get("duration", "")).isdigit() else 0
    return Written(float(zero_at + first * tb), float((int(last["pts"]) + dur - first) * tb), len(shown))


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CutClip:
    """An event's clip cut from the source file once the event has ended.

    Same bookkeeping as `EventClip` (done, unrenamed, errors) so the recorder
    treats both alike; `finish` does the work, on the sink thread."""

    def __init__(self, folder: Path, event, src: CopySource, cfg: EventsConfig):
        self.folder = folder
        self.event = event            # the OpenEvent: its first/last motion frames set the range
        self.src = src
        self.cfg = cfg
        self.fmt = src.codec
        self.fps = src.fps
        self.done: list[Path] = []
        self.unrenamed: list[tuple[Path, Path]] = []
        self.errors: list[str] = []
        self.reported = 0
        self.written: dict[Path, Written] = {}
        self._finished = False

    def add(self, frame, cut: bool = False) -> None:   # frames are not needed: the source has them
        pass

    def split(self) -> None:
        pass

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        ev = self.event
        first = max(0.0, ev.first.ts - self.cfg.pre_roll_seconds)
        last = ev.last_motion.ts + self.cfg.post_roll_seconds
        if self.src.duration:
            last = min(last, self.src.duration)
        try:
            cuts = plan_cuts(self.src, first, max(first, last), self.cfg.max_seconds)
        except OSError as e:
            self.errors.append(f"cannot cut the clip from {Path(self.src.path).name}: {e.strerror or e}")
            return
        for number, cut in enumerate(cuts, 1):
            self._write(self.folder / f"clip-{number:03d}.mp4", cut)

    def _write(self, final: Path, cut: Cut) -> None:
        from motionwatch.sinks.clip import tmp_name
        tmp = tmp_name(final)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            written = cut_part(self.src, cut, tmp)
            fsync(tmp)   # on disk before it gets its real name: power cuts happen
        except OSError as e:
            self.errors.append(f"{final.name} not cut: {e.strerror or e}")
            try:
                tmp.unlink()
            except OSError:
                pass
            return
        self.written[final] = written
        try:
            os.replace(tmp, final)
            self.done.append(final)
        except OSError:   # whole, but e.g. the folder went read-only: the recorder renames it later
            self.unrenamed.append((tmp, final))

    @property
    def parts(self) -> list[Path]:
        return sorted(self.done + [final for _, final in self.unrenamed])

    def summary(self, parts: list[Path]) -> dict:
        """event.json's clip_* fields for the parts that exist, from what was written."""
        got = [self.written[p] for p in sorted(parts) if p in self.written]
        if not got:
            return {"clip_format": self.fmt, "clip_fps": round(self.fps, 3), "clip_seconds": 0.0}
        return {"clip_format": self.fmt, "clip_fps": round(self.fps, 3),
                "clip_seconds": round(sum(w.seconds for w in got), 2),
                "clip_start_offset_s": round(got[0].start, 3), "clip_copied": True}
