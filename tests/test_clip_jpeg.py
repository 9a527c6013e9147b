"""H.264 clips of MJPEG cameras and `pipe:` MJPEG sources are encoded in process from
the camera's own JPEG bytes (FFmpeg's MJPEG decoder to YUV): no frame is decoded to BGR, and the clips
are the same ordinary limited-range yuv420p H.264 MP4 as clips encoded from BGR.

End to end: a real MJPEG-over-HTTP camera on loopback (tests/mjpeg_server.py) and
a real ffmpeg writing MJPEG to a `pipe:` source, recorded by `motionwatch run`;
the clips are checked with ffprobe and decoded back. In process: EventClip fed
JpegFrames made from barcoded pictures, decoded back frame by frame.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import events_json, mw
from mjpeg_server import ServerProcess
from motionwatch.config import EventsConfig
from motionwatch.events import EventFrame, EventStarted, EventTracker
from motionwatch.media.jpeg import JpegFrame, jpeg_frame, reduced_gray
from motionwatch.model import Detection, Frame
from motionwatch.sinks.clip import EventClip, PartWriter
from motionwatch.sinks.runner import Sink, SinkRunner
from motionwatch.sources.scene import Scene, SceneRenderer, Walker
from test_clips import read_stamp, stamp
from web_support import plays_in_chromium

# ffprobe and ffmpeg are the independent referee here; motionwatch itself needs neither.
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="needs ffmpeg and ffprobe as referees")

FPS = 10.0
SCENE = Scene(width=320, height=240, fps=FPS, duration_s=3, seed=5, noise=3.0, walkers=(Walker(0.0, 3.0),))


def probe(clip: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,profile,pix_fmt,width,height,color_range,color_space,"
                          "nb_read_frames:format=duration", "-of", "json", str(clip)],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    return {**info["streams"][0], "duration": float(info["format"]["duration"])}


def damage(jpeg: bytes) -> bytes:
    """The JPEG up to its size header (SOF0), then zeros: its size reads, it does not decode."""
    sof = jpeg.index(b"\xff\xc0")
    end = sof + 2 + int.from_bytes(jpeg[sof + 2:sof + 4], "big")
    return jpeg[:end] + bytes(len(jpeg) - end - 2) + b"\xff\xd9"


def decode_errors(clip: Path) -> str:
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-f", "null", "-"],
                          capture_output=True, text=True).stderr.strip()


def clip_frames(clip: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            cap.release()
            return frames
        frames.append(img)


def assert_same_picture(got: np.ndarray, want: np.ndarray) -> None:
    """Close after lossy coding, with colours in the right channels and the right
    range: a JPEG's full range left unconverted (or converted twice) changes the
    contrast by 14 %, swapped channels move the channel means."""
    assert got.shape == want.shape
    g, w = got.astype(np.float32), want.astype(np.float32)
    assert np.abs(g - w).mean() < 6.0
    assert np.abs(g.mean(axis=(0, 1)) - w.mean(axis=(0, 1))).max() < 3.0
    assert 0.95 < g.std() / w.std() < 1.05


def jpegs_of(pictures: list[np.ndarray]) -> list[bytes]:
    return [cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for p in pictures]


def stamped_pictures(n: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    scene = Scene(width=size[0], height=size[1], fps=FPS, duration_s=n / FPS + 1, seed=5, noise=3.0,
                  walkers=(Walker(0.0, 3.0),))
    r = SceneRenderer(scene)
    return [stamp(r.render(i), i) for i in range(n)]


def test_a_part_of_camera_jpegs_is_encoded_without_decoding_a_frame(tmp_path):
    pictures = stamped_pictures(20)
    frames = [jpeg_frame(j, i, i / FPS, 1000 + i / FPS, 160) for i, j in enumerate(jpegs_of(pictures))]
    clip = EventClip(tmp_path / "jpeg", "h264", FPS)
    for f in frames[:8] + frames[11:]:   # 8..10 never came (a dropped frame): the clip holds frame 7
        clip.add(f)
        assert isinstance(clip.part, PartWriter)
    clip.finish()
    assert clip.errors == [] and len(clip.done) == 1
    assert not any(f.decoded or f.wanted for f in frames), "a frame was decoded to BGR in Python"
    got = clip_frames(clip.done[0])
    assert [read_stamp(g) for g in got] == list(range(8)) + [7, 7, 7] + list(range(11, 20))
    for i in (0, 12, 19):
        assert_same_picture(got[i], pictures[i])

    # Same pictures as BGR frames through today's raw-video writer: the same kind of clip.
    bgr = EventClip(tmp_path / "bgr", "h264", FPS)
    for i, p in enumerate(pictures):
        bgr.add(Frame(p, i, i / FPS, 1000 + i / FPS))
        assert isinstance(bgr.part, PartWriter)
    bgr.finish()
    a, b = probe(clip.done[0]), probe(bgr.done[0])
    for key in ("codec_name", "profile", "pix_fmt", "width", "height", "color_range", "color_space",
                "nb_read_frames", "duration"):
        assert a[key] == b[key], key
    assert (a["pix_fmt"], a["color_range"], a["nb_read_frames"]) == ("yuv420p", "tv", "20")
    assert decode_errors(clip.done[0]) == ""


@pytest.mark.parametrize("sampling", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422],
                         ids=["420", "422"])
def test_a_camera_clip_shows_the_cameras_colours_in_chromium(tmp_path, sampling):
    """What a person sees: a still camera picture's clip, drawn from Chromium's
    <video> onto a canvas, has the JPEG's contrast and colours. (A full-range clip,
    the JPEG's own YUV tagged so, showed 10 % too much contrast here: Chromium
    reads it as limited range; so 4:2:0 JPEGs are mapped to limited range too.)"""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("chromium is not installed (.ci/run installs it with apt)")
    picture = stamped_pictures(1)[0]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    jpeg = cv2.imencode(".jpg", picture, params)[1].tobytes()
    clip = EventClip(tmp_path, "h264", FPS)
    for i in range(20):
        clip.add(jpeg_frame(jpeg, i, i / FPS, i / FPS, 160))
    clip.finish()
    assert probe(clip.done[0])["color_range"] == "tv"
    want = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    (tmp_path / "page.html").write_text(
        f'<video src="{clip.done[0].name}" muted></video><canvas width="320" height="240"></canvas>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/page.html")
                page.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=15000)
                page.evaluate("() => { document.querySelector('video').currentTime = 1.0; }")
                page.wait_for_function("() => !document.querySelector('video').seeking", timeout=15000)
                rgba = page.evaluate("""() => {
                    const c = document.querySelector('canvas').getContext('2d');
                    c.drawImage(document.querySelector('video'), 0, 0, 320, 240);
                    return Array.from(c.getImageData(0, 0, 320, 240).data); }""")
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    got = np.array(rgba, np.uint8).reshape(240, 320, 4)[:, :, 2::-1]   # RGBA to BGR
    assert_same_picture(got, want)


def test_a_frame_that_is_no_camera_jpeg_mid_part_is_encoded_as_one(tmp_path):
    pictures = stamped_pictures(6)
    jpegs = jpegs_of(pictures)
    clip = EventClip(tmp_path, "h264", FPS)
    for i, p in enumerate(pictures):
        frame = Frame(p, i, i / FPS, i / FPS) if i == 3 else jpeg_frame(jpegs[i], i, i / FPS, i / FPS, 160)
        clip.add(frame)
    clip.finish()
    assert clip.errors == [] and len(clip.done) == 1
    got = clip_frames(clip.done[0])
    assert [read_stamp(g) for g in got] == list(range(6))
    assert_same_picture(got[3], pictures[3])


def test_a_damaged_jpeg_mid_part_is_filled_like_a_dropped_frame(tmp_path):
    """The capture loop decodes only the JPEGs it analyses, so a damaged one (whole
    header, broken data) can reach the clip: its slot holds the picture before it,
    and the part is not abandoned."""
    pictures = stamped_pictures(6)
    jpegs = jpegs_of(pictures)
    damaged = damage(jpegs[3])
    clip = EventClip(tmp_path, "h264", FPS)
    for i in range(6):
        frame = jpeg_frame(damaged if i == 3 else jpegs[i], i, i / FPS, i / FPS, 160, lazy=True)
        clip.add(frame)
    clip.finish()
    assert clip.errors == [] and len(clip.done) == 1
    got = clip_frames(clip.done[0])
    assert [read_stamp(g) for g in got] == [0, 1, 2, 2, 4, 5]


def test_an_analysed_frame_of_a_recorded_event_is_decoded_once(tmp_path):
    """During an event the capture loop decodes an analysed JPEG in full for the clip
    and takes its grey from that; the clip writer encodes that decode, not a second."""
    pictures = stamped_pictures(4)
    clip = EventClip(tmp_path, "h264", FPS)
    for i, j in enumerate(jpegs_of(pictures)):
        frame = jpeg_frame(j, i, i / FPS, i / FPS, 160, lazy=True)
        grey = frame.decode_for_clip()
        assert grey.shape == (120, 160) and frame.gray is grey
        assert float(cv2.absdiff(grey, reduced_gray(j, (320, 240), 160)).mean()) < 1.5
        held = frame.nbytes
        clip.add(frame)
        assert held > 320 * 240 and frame.take_yuv() is None, "the clip writer took the decode"
    clip.finish()
    assert clip.errors == [] and len(clip.done) == 1
    got = clip_frames(clip.done[0])
    assert [read_stamp(g) for g in got] == list(range(4))
    assert_same_picture(got[2], pictures[2])


def test_a_camera_sending_422_jpegs_gets_ordinary_420_clips(tmp_path):
    """Many IP cameras send 4:2:2 JPEGs; the clip is yuv420p all the same."""
    pictures = stamped_pictures(4)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
    jpegs = [cv2.imencode(".jpg", p, params)[1].tobytes() for p in pictures]
    clip = EventClip(tmp_path, "h264", FPS)
    for i, j in enumerate(jpegs):
        clip.add(jpeg_frame(j, i, i / FPS, i / FPS, 160))
    clip.finish()
    assert clip.errors == [] and len(clip.done) == 1
    info = probe(clip.done[0])
    assert (info["pix_fmt"], info["color_range"], info["nb_read_frames"]) == ("yuv420p", "tv", "4")
    got = clip_frames(clip.done[0])
    assert [read_stamp(g) for g in got] == list(range(4))
    assert_same_picture(got[1], pictures[1])


@pytest.mark.parametrize("coded, shown", [((321, 241), (320, 240)),    # odd camera size: cropped
                                          ((320, 240), (160, 120))])   # events.clip_width: scaled
def test_the_encoder_fits_the_jpegs_to_the_clip_size(tmp_path, coded, shown):
    pictures = [cv2.resize(p, coded, interpolation=cv2.INTER_AREA) for p in stamped_pictures(5)]
    full = [jpeg_frame(j, i, i / FPS, i / FPS, 80) for i, j in enumerate(jpegs_of(pictures))]
    cropped = shown[0] == coded[0] - 1
    frames = full if cropped else [f.scaled(shown) for f in full]
    clip = EventClip(tmp_path, "h264", FPS)
    for f in frames:
        clip.add(f)
    clip.finish()
    assert clip.errors == [] and len(clip.done) == 1
    assert not any(f.decoded for f in full + frames)
    info = probe(clip.done[0])
    assert (info["width"], info["height"], info["pix_fmt"]) == (*shown, "yuv420p")
    got = clip_frames(clip.done[0])
    assert [read_stamp(g, scale=shown[0] / coded[0]) for g in got] == list(range(5))
    want = pictures[2][:shown[1], :shown[0]] if cropped else cv2.resize(pictures[2], shown, interpolation=cv2.INTER_AREA)
    assert_same_picture(got[2], want)


def test_the_tracker_keeps_camera_jpegs_undecoded_at_clip_width():
    cfg = EventsConfig(clip_width=160, pre_roll_seconds=0.5, post_roll_seconds=0.5, gap_seconds=1.0)
    tr = EventTracker("cam", cfg, trigger_fraction=0.01, min_frames=2, fps=FPS)
    r = SceneRenderer(SCENE)
    jpegs = jpegs_of([r.render(i) for i in range(12)])
    frames = [jpeg_frame(j, i, i / FPS, i / FPS, 160) for i, j in enumerate(jpegs)]
    clip_frames_seen = []
    for i, f in enumerate(frames):
        moving = i >= 5
        for s in tr.feed(f, Detection(0.2 if moving else 0.0, [(10, 10, 20, 20)] if moving else [], None)):
            if isinstance(s, EventStarted):
                clip_frames_seen += s.preroll
            elif isinstance(s, EventFrame):
                clip_frames_seen.append(s.frame)
    assert len(clip_frames_seen) == 12
    assert all(isinstance(f, JpegFrame) and f.size == (160, 120) and f.coded_size == (320, 240)
               for f in clip_frames_seen)
    assert not any(f.decoded or f.wanted for f in frames + clip_frames_seen)
    # Asked for colour anyway (an OpenCV-written mp4v clip), a scaled frame is shrunk once decoded.
    assert clip_frames_seen[0].image.shape == (120, 160, 3)


def test_a_1080p_cameras_pre_roll_fits_the_sink_queue_as_jpegs():
    """Two seconds of pre-roll at 30 fps from a 1920x1080 MJPEG camera reach the sink
    queue at once when an event starts. Budgeted as BGR (6 MB a frame) 60 frames
    overran the 256 MiB budget and lost clip frames; as what they hold (JPEG and
    grey) they all fit, and the budget returns to zero even when the live view
    decoded some of them while they waited."""
    rng = np.random.default_rng(3)
    picture = cv2.resize(rng.integers(0, 255, (135, 240, 3), np.uint8), (1920, 1080))
    jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    frames = [jpeg_frame(jpeg, i, i / 30, 1e9 + i / 30, 320) for i in range(60)]
    assert all(f.gray is not None and not f.decoded for f in frames)
    release = threading.Event()

    class Slow(Sink):
        def handle(self, signal):
            release.wait(10)

    runner = SinkRunner([Slow()])
    try:
        event = object()
        accepted = [runner.put(EventFrame(event, f)) for f in frames]
        frames[10].image, frames[50].image   # the live view decodes two while they wait
    finally:
        release.set()
        assert runner.close(10)
    assert all(accepted) and runner.dropped == 0
    assert runner._bytes == 0 and runner._frames == 0


def check_recorded_clip(recordings: Path, size: tuple[int, int]) -> None:
    """The run's one event has an H.264 clip of `size`, as long as event.json says,
    decoding cleanly, whose frame at the event's first moment is first.jpg's picture."""
    events = events_json(recordings)
    assert len(events) >= 1
    ev = events[0]
    rec = json.loads((recordings / ev["clip"]).parent.joinpath("event.json").read_text())
    clip = recordings / rec["clip"]
    info = probe(clip)
    assert (info["codec_name"], info["pix_fmt"], info["color_range"]) == ("h264", "yuv420p", "tv")
    assert (info["width"], info["height"]) == size
    assert rec["clip_format"] == "h264" and rec["clip_seconds"] > 2.0
    assert abs(int(info["nb_read_frames"]) - rec["clip_seconds"] * rec["clip_fps"]) <= 1.5
    assert abs(info["duration"] - rec["clip_seconds"]) < 2.5 / rec["clip_fps"]
    assert decode_errors(clip) == ""
    first = cv2.imread(str(recordings / rec["snapshot_first"]))
    if first.shape[1::-1] != size:
        first = cv2.resize(first, size, interpolation=cv2.INTER_AREA)
    # Frames sit on the clip's timeline by arrival time: the event's first frame is
    # slot k, or one slot off when the camera's delivery jittered.
    k = round((rec["start_offset_s"] - rec["clip_start_offset_s"]) * rec["clip_fps"])
    near = clip_frames(clip)[max(0, k - 1):k + 2]
    got = min(near, key=lambda g: np.abs(g.astype(np.float32) - first).mean())
    assert_same_picture(got, first)


@pytest.mark.parametrize("sampling", ["420", "422", "grey"])
def test_run_on_an_mjpeg_camera_records_h264_clips_from_its_jpegs(tmp_path, recordings, sampling):
    """As USB webcams (4:2:2) and cameras in night mode (grey JPEGs) send them too."""
    cfg = tmp_path / "mw.yaml"
    cfg.write_text("events: {snapshot: both}\n")
    with ServerProcess(fps=15, size="320x240", mode="motion", sampling=sampling) as cam:
        proc = mw("run", "--source", cam.url, "--config", str(cfg), "--recordings", str(recordings),
                  "--duration", "7", env={"PATH": no_ffmpeg_path(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    check_recorded_clip(recordings, (320, 240))
    plays_in_chromium(recordings / events_json(recordings)[0]["clip"], (320, 240))


def no_ffmpeg_path(tmp_path: Path) -> str:
    """A PATH with neither ffmpeg nor ffprobe: motionwatch encodes clips in process."""
    import sys
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").symlink_to(sys.executable)
    return str(bin_dir)


def test_run_on_a_pipe_writing_mjpeg_records_clips_at_clip_width(tmp_path, recordings):
    cfg = tmp_path / "mw.yaml"
    cfg.write_text("events: {snapshot: both, clip_width: 200}\n")
    spec = ("pipe:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=400x300:rate=10 "
            "-f mjpeg -q:v 4 -")
    proc = mw("run", "--source", spec, "--config", str(cfg), "--recordings", str(recordings), "--duration", "7")
    assert proc.returncode == 0, proc.stderr
    check_recorded_clip(recordings, (200, 150))
