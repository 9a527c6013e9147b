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
ignore edit lists show them, browsers differ; Matroska sources can even start a
GOP earlier, as their index may list only some keyframes), and `-t` ends on a
decode-order boundary, so with B-frames the last frames can have holes. So the packets
around the event are listed once with ffprobe (demuxing only), the clip starts
exactly on a keyframe (S = that keyframe's time: nothing hidden) and ends after
the shortest run of packets that is whole in display order. Parts
(`events.max_seconds`) are split on keyframes, so they join without a gap or
an overlap. The written file is probed again and its real start and length
are what event.json reports.

MP4/MOV sources with a plain index (most files) need neither program: the
packets come from the file's own sample table (sinks.mp4_index, the timestamps
ffprobe would report) and each part is written in process (sinks.mp4_write,
the same packets, timestamps and flags ffmpeg's copy would give), which saves
~50 ms of CPU per file and per part and works without ffmpeg installed.
Fragmented MP4s, unusual edit lists, Matroska/WebM and anything the reader
does not take go through ffprobe/ffmpeg as described above.

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
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from motionwatch.config import EventsConfig
from motionwatch.sinks.clip import tmp_name
from motionwatch.sinks.mp4_index import Mp4Track, Unsupported, read_track, sample_count
from motionwatch.sinks.mp4_write import write_part
from motionwatch.store import fsync_file

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
AHEAD_S = 300.0         # one packet listing covers this much of the file (for the events after)
MARGINS_S = (0.0, 2.0, 10.0, 60.0, math.inf)   # how far before the start to look for a keyframe
EPS = 1e-4


@dataclass(eq=False)
class CopySource:
    """What cutting from one source file needs; probed once per source."""

    path: str
    codec: str
    time_base: Fraction         # of the video stream's timestamps
    start: Fraction             # the video stream's first timestamp, seconds
    format_start_us: int        # ffmpeg's -ss counts from the file's start time (µs)
    duration: float             # seconds of video (0: unknown)
    fps: float
    packets: "PacketList" = field(init=False, repr=False)
    mp4: Mp4Track | None = field(default=None, repr=False)   # set: packets and cuts come from it, in process

    def __post_init__(self):
        self.packets = PacketList(self)

    def describe(self) -> str:
        return f"{self.codec} from {Path(self.path).name}"


def tools() -> tuple[str, str] | None:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    return (ffmpeg, ffprobe) if ffmpeg and ffprobe else None


def plan_copy(events: EventsConfig, source, camera: str) -> CopySource | None:
    """The source to cut this camera's clips from, or None to encode them.

    `auto` copies silently when it can; an explicit `copy` that cannot says why
    in one line and falls back to encoding, so no event loses its clip."""
    requested = events.clip_codec
    if not events.clip or requested not in ("auto", "copy"):
        return None
    width = source.size[0] if getattr(source, "size", None) else 0
    if requested == "auto" and events.clip_width and events.clip_width < width:
        # The user asked for smaller clips; a copy would be the source's size.
        log.debug("%s: clips are encoded at events.clip_width %d, not cut from the source",
                  camera, events.clip_width)
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
    indexed = _index_plan(source, explicit)
    if indexed is not None:
        return indexed
    if tools() is None:
        return None, "the ffmpeg and ffprobe programs are not on PATH"
    try:
        # The first AHEAD_S of packets come with the facts: one ffprobe run serves
        # both the decision and (in a scan) the first events' cuts.
        info = _compact(_run([shutil.which("ffprobe") or "ffprobe", "-v", "error", "-select_streams", "v:0",
                              "-read_intervals", f"%+{AHEAD_S:g}", "-show_entries",
                              "stream=codec_name,pix_fmt,time_base,start_time,avg_frame_rate,r_frame_rate,duration"
                              ":format=format_name,start_time,duration:packet=pts,duration,flags",
                              "-of", "compact", source.spec], PROBE_TIMEOUT_S))
    except OSError as e:
        return None, f"ffprobe could not read it: {e.strerror or e}"
    streams, fmt = info.get("stream") or [], (info.get("format") or [{}])[0]
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
    plan = CopySource(source.spec, codec, tb, start, format_start_us, duration, fps)
    plan.packets.seed(_packets(info.get("packet") or []), float(start) + AHEAD_S)
    return plan, ""


def _index_plan(source, explicit: bool) -> tuple[CopySource | None, str] | None:
    """The plan from an MP4/MOV's own index, or None when ffprobe must decide (not an MP4,
    a layout the reader does not take, or a pixel format it cannot name)."""
    try:
        track = read_track(source.spec)
    except (Unsupported, OSError) as e:
        log.debug("%s: packets are listed with ffprobe: %s", Path(source.spec).name,
                  e.strerror if isinstance(e, OSError) and e.strerror else e)
        return None
    allowed = MP4_CODECS if explicit else BROWSER_CODECS
    if track.codec not in allowed:
        return None, (f"its video is {track.codec}; MP4 clips can take H.264 and HEVC" if explicit else
                      f"its video is {track.codec}; auto cuts only H.264, which every browser plays")
    if not explicit and track.yuv420_8bit is not True:
        return None    # not 8-bit 4:2:0, or unknown: ffprobe names the pixel format
    # ffprobe prints the start time with 6 decimals, and the ffprobe path computes from that.
    start = Fraction(f"{float(int(track.pts.min()) * track.time_base):.6f}")
    fps = _rate(Fraction(len(track.durations) * track.timescale, int(track.durations.sum()))) or float(source.fps or 0)
    plan = CopySource(source.spec, track.codec, track.time_base, start, round(start * 10**6), track.duration,
                      fps, mp4=track)
    return plan, ""


def _compact(out: str) -> dict[str, list[dict]]:
    """ffprobe's `-of compact` output as {section: [{key: value}, ...]}."""
    sections: dict[str, list[dict]] = {}
    for line in out.splitlines():
        name, _, rest = line.strip().partition("|")
        if rest:
            sections.setdefault(name, []).append(dict(kv.split("=", 1) for kv in rest.split("|") if "=" in kv))
    return sections


def _packets(rows: list[dict]) -> list["Packet"]:
    """Packets with a timestamp (others cannot be cut on)."""
    out = []
    for r in rows:
        pts, dur = r.get("pts", "N/A"), r.get("duration", "N/A")
        if pts.lstrip("-").isdigit():
            out.append(Packet(int(pts), int(dur) if dur.isdigit() else 0, r.get("flags", "").startswith("K")))
    return out


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
    dur: int      # 0 when the container does not say
    key: bool


@dataclass(frozen=True)
class Cut:
    """One part: `count` packets in file (decode) order from the keyframe at `pts`,
    shown until `end` (all in the source's time base)."""

    pts: int
    count: int
    end: int


class PacketList:
    """The source's video packets (decode order), listed by ffprobe a window at a time.

    Each ffprobe run costs ~60 ms of CPU however little it reads (starting the
    program), while demuxing is cheap, so one listing covers AHEAD_S of the file
    and the events of a scan that fall inside it need no further run."""

    def __init__(self, src: CopySource):
        self.src = src
        self.items: list[Packet] = []
        self.end = -math.inf      # listed up to here (absolute seconds)
        self.eof = False

    def around(self, t0: float, t1: float) -> list[Packet]:
        """Packets from a keyframe at or before t0 to at least TAIL_S past t1 (or the end)."""
        if self.src.mp4 is not None:
            self._window(t0, t1)
            return self.items
        if not (self._key_before(t0) is not None and (self.eof or self.end >= t1 + TAIL_S)):
            self._list(t0, max(t1 + TAIL_S, t0 + AHEAD_S))
        return self.items

    def _window(self, t0: float, t1: float) -> None:
        """The MP4 index's packets around [t0, t1], as the ffprobe listing would give them:
        only these few become Packet objects, however long the file."""
        track, tb = self.src.mp4, self.src.time_base
        limit = math.floor((Fraction(t0) + Fraction(EPS)) / tb)
        keys = np.flatnonzero(track.keys & (track.pts <= limit))
        first = int(keys[-1]) if len(keys) else 0
        # Decode times trail presentation times by the reordering delay, which TAIL_S covers.
        shift = int(track.pts[0] - track.dts[0])
        stop = int(np.searchsorted(track.dts, math.ceil((t1 + TAIL_S) / tb) - shift, side="right"))
        self.items = [Packet(p, d, k) for p, d, k in zip(track.pts[first:stop].tolist(),
                                                         track.durations[first:stop].tolist(),
                                                         track.keys[first:stop].tolist())]
        self.eof = stop >= len(track.pts)
        self.end = t1 + TAIL_S

    def _key_before(self, t: float) -> int | None:
        """Index of the last keyframe shown at or before `t` (absolute seconds)."""
        limit = math.floor((Fraction(t) + Fraction(EPS)) / self.src.time_base)
        found = None
        for i, p in enumerate(self.items):
            if p.key:
                if p.pts > limit:
                    break      # keyframes come in display order: the rest are later still
                found = i
        return found

    def _list(self, t0: float, end: float) -> None:
        start = float(self.src.start)
        for margin in MARGINS_S:
            items = list_packets(self.src, t0 - margin, end)
            self.seed(items, end)
            if self._key_before(t0) is not None or t0 - margin <= start:
                break

    def seed(self, items: list[Packet], end: float) -> None:
        """Take a listing that was asked to run up to `end` (absolute seconds)."""
        self.items = items
        last = max((p.pts for p in items), default=None)
        # ffprobe stops at the first packet past `end`; stopping well short of it means the file ended.
        self.eof = last is None or float(last * self.src.time_base) < end - 1.0
        self.end = end


def list_packets(src: CopySource, start: float, end: float) -> list[Packet]:
    """Video packets (decode order) from the keyframe ffprobe seeks to for `start` up to
    `end` (absolute stream seconds); packets without a timestamp are left out."""
    interval = f"{start:.6f}%{end:.6f}" if start > float(src.start) else f"%{end:.6f}"
    exe = shutil.which("ffprobe") or "ffprobe"
    out = _run([exe, "-v", "error", "-select_streams", "v:0", "-read_intervals", interval,
                "-show_entries", "packet=pts,duration,flags", "-of", "compact", src.path], PROBE_TIMEOUT_S)
    return _packets(_compact(out).get("packet") or [])


def plan_cuts(src: CopySource, first_s: float, last_s: float, max_seconds: float) -> list[Cut]:
    """The parts covering [first_s, last_s] (seconds from the first frame): start on the
    keyframe at or before first_s, end once display order is whole past last_s, split on
    keyframes at most `max_seconds` apart (a longer GOP makes a longer part)."""
    tb = src.time_base
    t0 = float(src.start) + first_s
    t1 = float(src.start) + last_s
    index = src.packets
    packets = index.around(t0, t1)
    head = index._key_before(t0)
    if head is None:   # nothing at or before t0 (a file starting mid-GOP): the first keyframe
        head = next((i for i, p in enumerate(packets) if p.key), None)
    if head is None:
        raise OSError(errno.ENODATA, "no keyframe in the event's time range to start the clip on")
    packets = packets[head:]
    end = _closing_end(packets, math.ceil((Fraction(t1) - Fraction(EPS)) / tb), index.eof)
    # A part holds frames shown before its start + max_seconds, like an encoded part;
    # it can only end where a keyframe starts the next one.
    step = math.floor((Fraction(max_seconds) + Fraction(EPS)) / tb)
    cuts, s = [], 0
    while s < end:
        limit = packets[s].pts + step
        keys_after = [i for i in range(s + 1, end) if packets[i].key]
        if not keys_after or max(p.pts for p in packets[s:end]) < limit:
            nxt = end
        else:
            within = [i for i in keys_after if packets[i].pts <= limit]
            nxt = within[-1] if within else keys_after[0]
        last = max(packets[s:nxt], key=lambda p: p.pts)
        frame = last.dur or (round(1 / (src.fps * tb)) if src.fps else 0)
        cuts.append(Cut(packets[s].pts, nxt - s, last.pts + frame))
        s = nxt
    return cuts


def _closing_end(packets: list[Packet], last_pts: int, at_eof: bool) -> int:
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
    """Copy one part into `out` (an .mp4 path); what it holds, checked."""
    if src.mp4 is not None:
        return _write_indexed(src, cut, out)
    key_us = math.ceil(cut.pts * src.time_base * 10**6)      # at or just past the keyframe: seek lands on it
    ss_us = key_us - src.format_start_us
    cmd = [shutil.which("ffmpeg") or "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
           "-ss", f"{ss_us / 1e6:.6f}", "-i", src.path, "-map", "0:v:0", "-c", "copy", "-an", "-sn", "-dn",
           # Matroska's index may list only some keyframes, so the seek can land on an
           # earlier one: drop what precedes ours rather than let an edit list hide it.
           "-copypriorss", "0", "-frames:v", str(cut.count), "-movflags", "+faststart"]
    if src.codec == "hevc":
        cmd += ["-tag:v", "hvc1"]   # the tag Apple's players want
    _run([*cmd, "-f", "mp4", "-y", str(out)], CUT_TIMEOUT_S)
    zero_at = Fraction(key_us, 10**6) - src.start
    if _holds(out, cut.count):
        tb = src.time_base
        return Written(float(cut.pts * tb - src.start), float((cut.end - cut.pts) * tb), cut.count)
    # Not what was asked for (a container that seeks inexactly): report what it is.
    log.debug("%s: not the %d packets planned; reading its own timestamps", out.name, cut.count)
    return _probe_written(out, zero_at)


def _write_indexed(src: CopySource, cut: Cut, out: Path) -> Written:
    """The part written in process from the source's MP4 index: exactly the planned packets."""
    track = src.mp4
    at = np.flatnonzero((track.pts == cut.pts) & track.keys)
    if not len(at) or at[0] + cut.count > len(track.pts):
        raise OSError(errno.ENODATA, "the planned packets are not in the source's index")
    write_part(track, src.path, int(at[0]), cut.count, str(out))
    tb = src.time_base
    return Written(float(cut.pts * tb - src.start), float((cut.end - cut.pts) * tb), cut.count)


def _holds(path: Path, count: int) -> bool:
    """The clip's index lists exactly `count` frames. Read from the MP4 boxes in
    process: starting ffprobe would cost as much CPU as the cut itself, and
    opening the clip with OpenCV 30 ms at 720p."""
    return sample_count(str(path)) == count


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
        tmp = tmp_name(final)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            written = cut_part(self.src, cut, tmp)
            fsync_file(tmp)   # on disk before it gets its real name: power cuts happen
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
