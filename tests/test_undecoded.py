"""Frames nobody needs are not decoded (media.nal, sources.undecoded).

The disposable check is refereed by FFmpeg's own `skip_frame=nonref` decode,
which outputs exactly the pictures that others refer to, on length-prefixed
(MP4) and Annex-B (MPEG-TS) H.264, on HEVC and on a real camera file. A scan
that leaves frames undecoded must analyse the very same pictures and find the
very same events as one that decodes every frame; an undecoded frame keeps its
index and pts, and decodes to the same picture should it be wanted after all.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from motionwatch.bench import make_clip
from motionwatch.config import CameraConfig, Config, EventsConfig, RecordingsConfig
from motionwatch.events import EventEnded, EventStarted
from motionwatch.media.frames import UndecodedFrame
from motionwatch.media.nal import disposable, length_size
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sources import open_source

from conftest import footage

TRAFFIC = "dvrscan_traffic_camera/traffic_camera.mp4"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to remux into MPEG-TS")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("undecoded")


def h264(clips: Path, fps: int = 25) -> Path:
    """The bench scene (two visits) in H.264 with B-frames, as bench clips are made."""
    path = clips / f"b{fps}.mp4"
    return path if path.exists() else make_clip(path, 640, 480, 16.0, fps=fps)


def alternating(clips: Path) -> Path:
    """The bench scene with one B-frame after each P-frame and a keyframe every 25
    frames: every other GOP has its B-frames on even indices, the frames detection.fps
    15 analyses on 25 fps (x264's adaptive B-frames put them anywhere, as in
    traffic_camera.mp4)."""
    path = clips / "alternating.mp4"
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(h264(clips)), "-c:v", "libx264", "-preset", "veryfast",
                        "-x264-params", "bframes=1:b-adapt=0:keyint=25:min-keyint=25:scenecut=0", str(path)],
                       check=True)
    return path


def annex_b(clips: Path) -> Path:
    path = clips / "b25.ts"
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(h264(clips)), "-c", "copy", str(path)], check=True)
    return path


def edit_list(clips: Path) -> Path:
    """Cut mid-GOP by stream copy: the MP4 keeps the GOP's first packets and hides their
    frames with an edit list (the packets are flagged discard; the decoder drops them)."""
    path = clips / "cut.mp4"
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "1.3", "-i", str(h264(clips)), "-c", "copy", str(path)],
                       check=True)
    return path


def hevc(clips: Path) -> Path:
    """A moving bar in HEVC with B-frames (x265: one temporal sub-layer)."""
    path = clips / "bar.mp4"
    if path.exists():
        return path
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format="mp4") as out:
        st = out.add_stream("libx265", rate=25)
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        st.codec_context.options = {"preset": "ultrafast", "x265-params": "bframes=3:b-pyramid=1:log-level=error"}
        for i in range(75):
            img = rng.integers(0, 20, (240, 320, 3), dtype=np.uint8)
            img[:, (4 * i) % 290:(4 * i) % 290 + 30] += 180
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    return path


CLIPS = {"h264-mp4": h264, "h264-annexb": annex_b, "hevc": hevc,
         "traffic_camera": lambda _clips: footage(TRAFFIC)}
MARKS = {"h264-annexb": [needs_ffmpeg]}


def clip_params():
    return [pytest.param(name, marks=MARKS.get(name, [])) for name in CLIPS]


@pytest.mark.parametrize("name", clip_params())
def test_disposable_is_what_ffmpeg_skips_as_non_reference(clips, name):
    path = CLIPS[name](clips)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONREF"
        referenced = {f.pts for f in c.decode(s)}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        codec = s.codec_context.name
        prefix = length_size(codec, s.codec_context.extradata)
        assert prefix == (0 if name == "h264-annexb" else 4)
        packets = [p for p in c.demux(s) if p.size]
        kept = {p.pts for p in packets if not disposable(p, codec, prefix)}
    assert len(kept) < len(packets)    # there are disposable pictures to find
    assert kept == referenced


def test_streams_whose_pictures_cannot_be_told_are_never_left_out():
    assert length_size("mpeg4", b"") is None
    hvcc = bytearray(23)
    hvcc[0], hvcc[21] = 1, 0b00010011    # two temporal sub-layers
    assert length_size("hevc", bytes(hvcc)) is None
    assert length_size("hevc", b"\x00\x00\x00\x01\x40\x01") is None   # Annex-B: sub-layers unknown


def read_all(src) -> list:
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    return frames


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("name", clip_params() + [pytest.param("edit-list", marks=[needs_ffmpeg])])
def test_undecoded_frames_keep_their_places_and_decode_when_wanted(clips, name, fast):
    """A source told no frame is wanted leaves every disposable picture out; each still
    comes at its display position, and decodes to the picture a full decode gives."""
    path = str((edit_list if name == "edit-list" else CLIPS[name])(clips))
    full = read_all(open_source(path, scan=True, fast_decode=fast))
    src = open_source(path, scan=True, fast_decode=fast, wanted=lambda i: False)
    skipping = read_all(src)
    assert src.stats().undecoded == sum(isinstance(f, UndecodedFrame) for f in skipping) > 0
    assert [(f.index, f.ts, f.pts) for f in skipping] == [(f.index, f.ts, f.pts) for f in full]
    for f in skipping[::7]:
        if isinstance(f, UndecodedFrame):
            assert np.array_equal(f.with_picture().gray, full[f.index].gray)


class Signals:
    """The capture loop's sink queue, keeping the event signals."""

    def __init__(self):
        self.events = []

    def put(self, signal, *args, **kwargs):
        if isinstance(signal, (EventStarted, EventEnded)):
            ev = signal.event
            self.events.append((type(signal).__name__, ev.first.index, ev.last_motion.index,
                                ev.best.index if ev.best is not None else None, ev.frames_with_motion,
                                round(ev.peak, 6), self.record(signal)))
        return True

    @staticmethod
    def record(signal) -> dict | None:
        """The ended event's record but its id, which is random."""
        if not isinstance(signal, EventEnded):
            return None
        return {k: v for k, v in asdict(signal.record).items() if k != "id"}


def scan(path: str, skip: bool, clip: bool, tmp: Path, every: int = 1, passing: bool = True):
    cfg = Config(recordings=RecordingsConfig(path=str(tmp / "rec"), min_free_gb=0.0), events=EventsConfig(clip=clip))
    analysed = []
    loop = CameraLoop(CameraConfig(name="cam", source=path), cfg, Signals(), threading.Event(), scan=True,
                      on_frame=lambda f, d: analysed.append(
                          (f.index, f.ts, hashlib.md5(np.ascontiguousarray(f.gray)).hexdigest(), d.fraction)))
    loop.skip_undecoded = skip
    loop.detect_every = every
    loop.pass_turns = passing
    src = loop.open()
    status = loop.run()
    return analysed, loop.sinks.events, status.frames, src.stats().undecoded


@needs_ffmpeg
def test_a_due_disposable_frame_passes_its_turn_on_and_is_left_undecoded(clips, tmp_path, monkeypatch):
    """A due B-frame whose next frame is a P-frame (decoded anyway) passes its turn: the
    P-frame is analysed instead and the B-frame is not decoded. As many frames are
    analysed, each the schedule's own or the one after it; a scan decoding every frame
    and one decoding in worker processes analyse the very same frames; the visits are
    found at the same frames within one analysed frame."""
    import motionwatch.sources.parallel as parallel
    import motionwatch.sources.pyav as pyav
    path = str(alternating(clips))
    kept, kept_events, frames, kept_out = scan(path, True, False, tmp_path / "kept", passing=False)
    passed, events, _, left_out = scan(path, True, False, tmp_path / "passed")
    assert scan(path, False, False, tmp_path / "all")[:2] == (passed, events)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0.0)
    monkeypatch.setattr(parallel, "CHUNK_S", 2.0)
    late = []   # frames the workers left without the picture the loop then wanted (decoded again here)
    decode_late = pyav.AvFileSource._decode_late
    monkeypatch.setattr(pyav.AvFileSource, "_decode_late", lambda self, f: late.append(f.index) or decode_late(self, f))
    cfg = Config(recordings=RecordingsConfig(path=str(tmp_path / "jobs"), min_free_gb=0.0), events=EventsConfig(clip=False))
    in_workers = []
    loop = CameraLoop(CameraConfig(name="cam", source=path), cfg, Signals(), threading.Event(), scan=True,
                      on_frame=lambda f, d: in_workers.append((f.index, d.fraction)))
    loop.decode_jobs = 2
    loop.open()
    loop.run()
    assert in_workers == [(a[0], a[3]) for a in passed] and late == []
    assert len(passed) == len(kept)
    schedule = {a[0] for a in kept}
    moved = [a[0] for a in passed if a[0] not in schedule]
    assert moved and all(i - 1 in schedule for i in moved)
    assert len(moved) > frames // 10 and left_out >= kept_out + len(moved)
    assert [e[0] for e in events] == [e[0] for e in kept_events]
    assert all(abs(a[2] - b[2]) <= 2 for a, b in zip(events, kept_events))


@needs_ffmpeg
@pytest.mark.parametrize("leave_out", [True, False])
def test_a_decoding_worker_sends_the_picture_after_a_due_frame_that_may_pass_its_turn(clips, leave_out):
    """The loop decides whether a due frame passes its turn; the worker cannot know, so
    the frame after it comes with its picture, also when the due frame was decoded (a
    chunk planned before the loop knew its rate, a damaged stream) and came out of the
    decoder a packet earlier than the next one."""
    from motionwatch.sources.chunk_decode import ChunkJob, ChunkResult, chunk_entries
    path = str(alternating(clips))
    with av.open(path) as c:
        prefix = length_size("h264", c.streams.video[0].codec_context.extradata)
        count = c.streams.video[0].frames
    due = frozenset(range(0, count, 2))
    job = ChunkJob(path, None, 0, None, due, 320, True, "h264", prefix, passing=leave_out)
    entries = list(chunk_entries(job, ChunkResult()))
    passing = [i for i, e in enumerate(entries) if e.passes and i in due]
    assert len(passing) > count // 10
    assert all(entries[i + 1].picture is not None for i in passing)
    assert all((entries[i].picture is None) == leave_out for i in passing)


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("name", ["h264-mp4", "h264-30fps", "traffic_camera", pytest.param("hevc")])
def test_a_scan_leaving_frames_undecoded_finds_the_same_events(clips, tmp_path, name, clip):
    """detection.fps 15 (the default) on 25 and 30 fps files: the frames it skips are
    partly disposable; the analysed pictures, motion fractions and events are identical."""
    path = str(h264(clips, 30) if name == "h264-30fps" else CLIPS[name](clips))
    analysed, events, frames, undecoded = scan(path, False, clip, tmp_path / "all")
    assert undecoded == 0
    skipped = scan(path, True, clip, tmp_path / "skip")
    assert skipped[3] > 0
    assert (skipped[0], skipped[1], skipped[2]) == (analysed, events, frames)
    if name != "hevc":
        assert any(e[0] == "EventEnded" for e in events)


needs_ffmpeg_live = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to serve the stream")


def live_visit(tmp_path: Path, encode: list[str]):
    """A 30 fps visit served as an HTTP MPEG-TS camera, its H.264 made by ffmpeg's
    `encode` arguments from one with B-frames."""
    from motionwatch.sources.scene import Scene, Walker, write_h264
    from ts_server import TsServer
    scene = Scene(width=320, height=240, fps=30, duration_s=8, seed=21, noise=4.0,
                  walkers=(Walker(2.5, 3.0, height=0.6),))
    mp4 = tmp_path / "visit.mp4"
    write_h264(scene, mp4, 400_000, 30)
    ts = tmp_path / "visit.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), *encode, "-f", "mpegts", str(ts)], check=True)
    return TsServer(ts, scene.duration_s)


def watch_until_an_event_ends(tmp_path: Path, server, events: EventsConfig):
    """`run`'s capture loop on the camera until an event ends: (signals, the source,
    the frames it handed out, the indices of those analysed)."""
    cfg = Config(recordings=RecordingsConfig(path=str(tmp_path / "rec"), min_free_gb=0.0), events=events)
    stop = threading.Event()
    analysed, handed = [], []
    sink = Signals()
    loop = CameraLoop(CameraConfig(name="cam", source=server.url, timeout_seconds=5.0), cfg, sink, stop,
                      on_frame=lambda f, d: analysed.append(f.index))
    src = loop.open()
    read = src.read
    src.read = lambda *a, **k: handed.append(read(*a, **k)) or handed[-1]
    runner = threading.Thread(target=loop.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(e[0] == "EventEnded" for e in sink.events):
            time.sleep(0.2)
    finally:
        stop.set()
        runner.join(30)
        server.close()
    return sink, src, {f.index: f for f in handed if f is not None}, analysed


@needs_ffmpeg_live
def test_a_live_h264_stream_leaves_frames_undecoded_and_still_finds_the_visit(tmp_path):
    """An HTTP MPEG-TS camera (Annex-B, B-frames) at 30 fps, detection.fps 15: disposable
    frames the schedule will not want stay undecoded, every analysed frame is a decoded
    picture, and the visit is found. A live frame's time is its arrival, so which ones
    are analysed is not compared with a decode of every frame."""
    from motionwatch.media.frames import AvFrame
    server = live_visit(tmp_path, ["-c", "copy"])
    sink, src, frames, analysed = watch_until_an_event_ends(tmp_path, server, EventsConfig(clip=False))
    assert any(e[0] == "EventEnded" for e in sink.events)
    assert src.stats().undecoded > 0
    assert analysed and all(isinstance(frames[i], AvFrame) for i in analysed)


@needs_ffmpeg_live
def test_a_live_stream_without_b_frames_lets_go_of_pictures_nobody_looks_at(tmp_path):
    """An HTTP MPEG-TS camera as IP cameras send it (no B-frames: every picture is a
    reference, so every one is decoded) at 30 fps, detection.fps 15, clips copied:
    the pictures the loop will not analyse reach it as their pts alone, so none of
    them is held (each one held keeps a buffer of the decoder's pool busy, 3 MB at
    1080p), every analysed frame is a decoded picture, and the visit is found."""
    from motionwatch.media.frames import AvFrame
    server = live_visit(tmp_path, ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "30"])
    sink, src, frames, analysed = watch_until_an_event_ends(tmp_path, server, EventsConfig())
    assert any(e[0] == "EventEnded" for e in sink.events)
    assert src.stats().undecoded == 0            # nothing is left out of the decoder ...
    bare = {i for i, f in frames.items() if isinstance(f, UndecodedFrame)}
    assert len(bare) > len(frames) / 4           # ... but about half the pictures are let go at once
    assert analysed and not bare & set(analysed)
    assert all(isinstance(frames[i], AvFrame) for i in analysed)
    # No due frame lost its picture: the frames analysed are the schedule's over the
    # times the frames came, though the server sends them in bursts (a lost one would
    # have the next frame analysed in its place).
    assert analysed == scheduled(frames, fps=30.0, limit=15.0)


def scheduled(frames: dict, fps: float, limit: float) -> list[int]:
    """The indices `_due` analyses at detection.fps `limit` over frames handed out with
    their own (arrival) times, as in camera.py, written out again."""
    from motionwatch.events import EPS
    from motionwatch.pipeline.camera import analysis_step
    step, out, next_ts, detected = analysis_step(fps, limit), [], 0.0, 0
    for i in sorted(frames):
        if frames[i].ts >= next_ts - EPS or step <= i - detected:
            out.append(i)
            next_ts, detected = frames[i].ts + 1 / limit, i
    return out


def test_scan_detect_every_leaves_out_only_frames_it_skips(clips, tmp_path):
    """`scan --detect-every 3` at detection.fps 15 on 25 fps: every third frame is analysed."""
    path = str(h264(clips))
    full = scan(path, False, False, tmp_path / "all", every=3)
    skipped = scan(path, True, False, tmp_path / "skip", every=3)
    assert skipped[3] > 0
    assert [a[0] for a in full[0]] == list(range(0, full[2], 3))
    assert skipped[:3] == full[:3]


class FakeClock:
    """`time` for a paced source: sleeping moves the clock on at once, and the hand-out
    time of each frame is kept."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + 5e8

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_paced_file_hands_frames_nobody_analyses_out_with_the_next_analysed_one(clips, tmp_path, monkeypatch):
    """`run` on a file (paced like a camera) at detection.fps 15 on 30 fps: frames are
    handed out in batches (the last frame's time of each LIVE_BATCH_S), and a frame
    that will not be analysed at the next analysed frame's time, one wake-up for them
    all, each stamped with its own time; the analysed pictures and events are a scan's
    (a due B-frame passes its turn on in both)."""
    import motionwatch.sources.pyav as pyav
    path = str(h264(clips, 30))
    scanned, scan_events, frames, _ = scan(path, True, False, tmp_path / "scan")
    clock = FakeClock()
    monkeypatch.setattr(pyav, "time", clock)
    cfg = Config(recordings=RecordingsConfig(path=str(tmp_path / "rec"), min_free_gb=0.0), events=EventsConfig(clip=False))
    analysed, handed = [], []
    loop = CameraLoop(CameraConfig(name="cam", source=path), cfg, Signals(), threading.Event(),
                      on_frame=lambda f, d: analysed.append(
                          (f.index, f.ts, hashlib.md5(np.ascontiguousarray(f.gray)).hexdigest(), d.fraction)))
    src = loop.open()
    read = src.read

    def timed_read(timeout=10.0):
        f = read(timeout)
        if f is not None:
            handed.append((f.index, clock.now - src._t0, f.wall - 5e8 - src._t0))
        return f
    src.read = timed_read
    loop.run()
    assert analysed == scanned
    assert [e[:6] for e in loop.sinks.events] == [e[:6] for e in scan_events]
    assert len(handed) == frames and src.stats().undecoded > 0
    due = {a[0] for a in analysed}
    # The source batches by the schedule's frames; a turn passed on is the frame after one of them.
    scheduled = {a[0] for a in scan(path, True, False, tmp_path / "kept", passing=False)[0]}
    assert due != scheduled and all(i in scheduled or i - 1 in scheduled for i in due)
    batch = round(pyav.LIVE_BATCH_S * 30)
    for index, at, shown in handed:
        end = (index // batch + 1) * batch - 1
        nxt = min((i for i in scheduled if i >= end), default=end)
        # The first batch goes out before the loop is set up to say which frames it analyses.
        assert at == pytest.approx(min(nxt, end + pyav.MAX_HELD_FRAMES) / 30) or end > max(scheduled) or \
            (index < batch and index / 30 <= at <= nxt / 30)
        assert shown == pytest.approx(index / 30)
    wakeups = len({round(at, 6) for _, at, _ in handed})
    assert wakeups <= frames // batch + 1 < len(due)


def test_saved_frames_are_the_full_decode_though_other_disposable_pictures_are_not_decoded(clips):
    """A snapshot (fast_decode: decoded again in full, from its keyframe) leaves the
    other disposable pictures on its way undecoded: it is still the full decode, whether
    it is itself disposable or not."""
    path = str(h264(clips, 30))
    full = read_all(open_source(path, scan=True))
    src = open_source(path, scan=True, fast_decode=True)
    fast = read_all(src)
    with av.open(path) as c:
        stream = c.streams.video[0]
        prefix = length_size("h264", stream.codec_context.extradata)
        kinds = {p.pts: disposable(p, "h264", prefix) for p in c.demux(stream) if p.pts is not None}
    picks = [f for f in fast[40:100] if kinds[f.pts]][:3] + [f for f in fast[40:100] if not kinds[f.pts]][-3:]
    assert len(picks) == 6
    for f in reversed(picks):
        assert np.array_equal(f.image, full[f.index].image), f.index
