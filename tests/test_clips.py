"""Event clips: decoded back (OpenCV and ffprobe) and checked frame by frame
against the rendered scene, so pre-roll, post-roll, parts and frame rate are
known to be right, not just present.

Every rendered frame carries its index as a barcode in the top-left corner
(masked from detection, like a camera's timestamp overlay), so each decoded
clip frame says exactly which source frame it is.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from motionwatch.config import EventsConfig
from motionwatch.events import ClipPart, EventFrame, EventStarted, EventTracker
from motionwatch.model import Detection, Frame
from motionwatch.sinks.clip import EventClip
from motionwatch.sources.scene import Scene, SceneRenderer, Walker

from conftest import events_json, mw

BITS = 12
CELL = 20          # barcode cell size in source pixels (survives halving and lossy codecs)
FPS = 15
# One person crossing from 4 s to 8 s of a 13 s clip.
VISIT = Scene(width=480, height=360, fps=FPS, duration_s=13, seed=11, noise=4.0,
              walkers=(Walker(4.0, 4.0, height=0.6),))


def stamp(img: np.ndarray, index: int) -> np.ndarray:
    for b in range(BITS):
        img[0:CELL, b * CELL:(b + 1) * CELL] = 255 if index >> b & 1 else 0
    return img


def read_stamp(img: np.ndarray, scale: float = 1.0) -> int:
    cell = CELL * scale
    value = 0
    for b in range(BITS):
        y0, x0 = int(cell * 0.3), int(b * cell + cell * 0.3)
        patch = img[y0:int(cell * 0.7), x0:int(b * cell + cell * 0.7)]
        value |= int(patch.mean() > 128) << b
    return value


def write_stamped(scene: Scene, path: Path) -> Path:
    r = SceneRenderer(scene)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), scene.fps, (scene.width, scene.height))
    assert vw.isOpened()
    for i in range(scene.frames):
        assert vw.write(stamp(r.render(i), i)) is not False
    vw.release()
    return path


def config(tmp_path: Path, **events) -> Path:
    mask = f"[[[0, 0], [{BITS * CELL + 4}, 0], [{BITS * CELL + 4}, {CELL + 4}], [0, {CELL + 4}]]]"
    lines = ["cameras:", "  - name: porch", f"    mask: {mask}", "events:"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in events.items()]
    p = tmp_path / "clips.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def decode(path: Path, scale: float = 1.0) -> tuple[list[int], tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    ids, size = [], None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        size = (img.shape[1], img.shape[0])
        ids.append(read_stamp(img, scale))
    cap.release()
    return ids, size


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=codec_name,width,height,nb_read_frames,r_frame_rate",
                          "-show_entries", "format=duration,format_name", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout)
    return {**data["streams"][0], **data["format"]}


@pytest.fixture(scope="module")
def visit_video(tmp_path_factory) -> Path:
    return write_stamped(VISIT, tmp_path_factory.mktemp("clipvideo") / "visit.mp4")


@pytest.mark.parametrize("command", ["scan", "run"])
def test_clip_starts_before_the_visit_and_ends_after_it(visit_video, recordings, tmp_path, command):
    """`scan` encodes the frames it decoded; `run` (the file watched like a camera)
    keeps the pre-roll as packets and decodes them again for the clip: both exact."""
    cfg = config(tmp_path, pre_roll_seconds=2.0, post_roll_seconds=2.0)
    if command == "scan":
        mw("scan", str(visit_video), "--config", str(cfg), "--recordings", str(recordings), check=True)
    else:
        mw("run", "--source", str(visit_video), "--config", str(cfg), "--recordings", str(recordings),
           check=True, timeout=120)
    (ev,) = events_json(recordings)
    assert ev["clip"] == ev["clip_parts"][0] and len(ev["clip_parts"]) == 1
    assert ev["clip"].endswith("clip-001.mp4") and ev["clip_format"] == "h264"
    clip = recordings / ev["clip"]
    ids, size = decode(clip)
    assert size == (VISIT.width, VISIT.height)
    # Exactly 2 s (30 frames) before the first motion frame, every frame in order, to
    # exactly 2 s after the last one.
    assert ids == list(range(ev["start_frame"] - 2 * FPS, ev["end_frame"] + 2 * FPS + 1))
    assert ids[0] < VISIT.walkers[0].start_s * FPS       # the room is still empty there
    assert ev["clip_start_offset_s"] == pytest.approx(ids[0] / FPS, abs=1e-3)
    visit = VISIT.walkers[0].duration_s
    assert len(ids) / FPS == pytest.approx(2.0 + visit + 2.0, abs=1.5)
    info = probe(clip)
    assert info["codec_name"] == "h264" and "mp4" in info["format_name"]
    assert int(info["nb_read_frames"]) == len(ids)
    assert float(info["duration"]) == pytest.approx(len(ids) / FPS, abs=0.1)
    assert ev["clip_seconds"] == pytest.approx(len(ids) / FPS, abs=0.1)
    with open(clip, "rb") as f:   # faststart: the index comes first, so browsers play at once
        head = f.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    assert not list(recordings.rglob(".tmp-*"))


def test_parts_fallback_codec_snapshots_and_small_clip(visit_video, recordings, tmp_path):
    """OpenCV's own mp4v, split every 3 s, at half width; snapshot both, annotated."""
    cfg = config(tmp_path, clip_codec="mp4v", max_seconds=3.0, clip_width=240, snapshot="both",
                 annotate=True, thumbnail_width=100)
    mw("scan", str(visit_video), "--config", str(cfg), "--recordings", str(recordings), check=True)
    (ev,) = events_json(recordings)
    parts = [recordings / p for p in ev["clip_parts"]]
    assert [p.name for p in parts] == [f"clip-{i:03d}.mp4" for i in range(1, len(parts) + 1)]
    assert len(parts) == 3 and ev["clip"] == ev["clip_parts"][0]
    ids = []
    for p in parts:
        part_ids, size = decode(p, scale=0.5)
        assert size == (240, 180)
        assert len(part_ids) <= 3 * FPS
        ids += part_ids
        info = probe(p)
        assert info["codec_name"] == "mpeg4" and int(info["nb_read_frames"]) == len(part_ids)
    # The parts join without a missing or repeated frame: still one event.
    assert ids == list(range(ev["start_frame"] - 2 * FPS, ev["end_frame"] + 2 * FPS + 1))
    folder = parts[0].parent
    first, best, thumb, ann = (cv2.imread(str(folder / n)) for n in
                               ("first.jpg", "snapshot.jpg", "thumb.jpg", "annotated.jpg"))
    assert ev["snapshot"].endswith("snapshot.jpg") and ev["snapshot_first"].endswith("first.jpg")
    assert read_stamp(first) == ev["start_frame"]      # the trigger frame, full size
    assert first.shape[:2] == (VISIT.height, VISIT.width) and thumb.shape[1] == 100
    assert read_stamp(best) != ev["start_frame"]       # best = most change, later in the visit
    red = (ann[:, :, 2] > 200) & (ann[:, :, 1] < 60) & (ann[:, :, 0] < 60)
    assert red.sum() > 100 and ev["annotated"].endswith("annotated.jpg")   # boxes drawn
    assert ev["thumbnail"].endswith("thumb.jpg") and ev["frame_size"] == [VISIT.width, VISIT.height]


def test_detection_fps_does_not_thin_the_clip(visit_video, recordings, tmp_path):
    cfg = config(tmp_path, clip_codec="mp4v")
    cfg.write_text(cfg.read_text() + "detection:\n  fps: 5\n")
    mw("scan", str(visit_video), "--config", str(cfg), "--recordings", str(recordings), check=True)
    (ev,) = events_json(recordings)
    ids, _ = decode(recordings / ev["clip"])
    assert ids == list(range(ids[0], ids[-1] + 1)) and ev["clip_fps"] == FPS
    assert ids[0] <= ev["start_frame"] - 2 * FPS + 3 and ids[-1] >= ev["end_frame"] + 2 * FPS - 3


# --- tracker and writer, in process -------------------------------------------------

IMG = np.zeros((8, 8, 3), np.uint8)


def feed(pattern: str, **cfg) -> list:
    """'.' quiet, 'x' motion, 'c' read but not analysed (detection.fps), at 10 fps."""
    tr = EventTracker("cam", EventsConfig(**{"gap_seconds": 3.0, "pre_roll_seconds": 0.5,
                                             "post_roll_seconds": 0.5, **cfg}), 0.01, 1, 10)
    out = []
    for i, c in enumerate(pattern):
        f = Frame(IMG, i, i / 10, i / 10)
        out += tr.carry(f) if c == "c" else tr.feed(f, Detection(0.05 if c == "x" else 0.0, [], None))
    return out + tr.flush("source ended")


def clip_indices(signals) -> list[int]:
    out = []
    for s in signals:
        if isinstance(s, EventStarted):
            out += [f.index for f in s.preroll]
        elif isinstance(s, EventFrame):
            out.append(s.frame.index)
    return out


def test_unanalysed_frames_fill_the_clip():
    signals = clip_indices(feed("..........xcxcxcxc.c.c.c.c.c.c...."))
    assert signals == list(range(5, 22))   # 0.5 s before frame 10 to 0.5 s after frame 16


def test_quiet_stretch_inside_an_event_is_cut_with_preroll_again():
    signals = feed("..........xxx" + "." * 20 + "xxx" + "." * 40)
    frames = [s for s in signals if isinstance(s, EventFrame)]
    idx = clip_indices(signals)
    # 13..17 post-roll, then 28..32 pre-roll of the renewed motion: one event, one cut.
    assert idx == list(range(5, 18)) + list(range(28, 41))
    assert [s.frame.index for s in frames if s.cut] == [28]


def test_parts_split_at_max_seconds():
    signals = feed("....." + "x" * 40 + "." * 20, max_seconds=1.0)
    parts = [s.part for s in signals if isinstance(s, ClipPart)]
    assert parts == list(range(2, 2 + len(parts))) and len(parts) == 4


def test_ring_holds_frames_at_clip_width():
    big = np.zeros((720, 1280, 3), np.uint8)
    tr = EventTracker("cam", EventsConfig(clip_width=640, pre_roll_seconds=1.0), 0.01, 1, 10)
    for i in range(30):
        tr.feed(Frame(big, i, i / 10, i / 10), Detection(0.0, [], None))
    assert len(tr.ring) == 11 and {f.image.shape for f in tr.ring} == {(360, 640, 3)}


def test_writer_keeps_real_time_when_frames_are_missing(tmp_path):
    """Frames the sink queue dropped (gaps in ts) are filled by repeating the one before."""
    clip = EventClip(tmp_path, "mp4v", 10.0)
    r = SceneRenderer(Scene(width=320, height=240, duration_s=2))
    for i in [0, 1, 2, 5, 6, 9]:     # 3, 4, 7, 8 lost
        clip.add(Frame(stamp(r.render(i), i), i, i / 10, i / 10))
    clip.finish()
    assert not clip.errors and len(clip.parts) == 1
    ids, _ = decode(clip.parts[0])
    assert ids == [0, 1, 2, 2, 2, 5, 6, 6, 6, 9]


def test_pre_roll_of_a_codec_that_is_not_copied_stays_compressed(tmp_path):
    """A 1080p MPEG-4 Part 2 file (what OpenCV writes; an MP4 clip cannot carry it as it
    is, so the clip is encoded) watched like a camera (`run --source FILE`, paced): while
    the capture loop runs, the pre-roll holds the source's packets, about the bitrate
    times the seconds kept, and no decoded picture (one is 3 MB at 1080p). The event's
    clip is still there, H.264 at 1080p, from the pre-roll before the first motion."""
    import threading

    from motionwatch.config import CameraConfig, Config, RecordingsConfig
    from motionwatch.pipeline.camera import CameraLoop
    from motionwatch.sinks.recorder import Recorder
    from motionwatch.sinks.runner import SinkRunner
    from motionwatch.sources.pyav import RING_SLACK_S
    from motionwatch.sources.scene import write_video

    scene = Scene(width=1920, height=1080, fps=10, duration_s=9, seed=5, noise=3.0,
                  walkers=(Walker(5.0, 2.5, height=0.6),))
    path = Path(write_video(scene, str(tmp_path / "big.mp4")))
    rec = tmp_path / "rec"
    cfg = Config(events=EventsConfig(pre_roll_seconds=2.0, post_roll_seconds=1.0, gap_seconds=1.0),
                 recordings=RecordingsConfig(path=str(rec), min_free_gb=0.0))
    sinks = SinkRunner([Recorder(cfg.recordings, cfg.events)])
    held: list[tuple[int, int]] = []   # (decoded frames, packet bytes) while no event is open
    loop = None

    def sample(frame, det):
        if loop.tracker.open is None:
            held.append((len(loop.tracker.ring), loop.source.packets.nbytes))

    loop = CameraLoop(CameraConfig(name="cam", source=str(path)), cfg, sinks, threading.Event(),
                      on_frame=sample)
    loop.run()
    sinks.close()
    bitrate = path.stat().st_size / scene.duration_s            # bytes a second
    kept_s = cfg.events.pre_roll_seconds + RING_SLACK_S + 1.0     # + up to a GOP before the horizon
    assert held and max(frames for frames, _ in held) == 0, "decoded pictures kept for the pre-roll"
    most = max(nbytes for _, nbytes in held)
    assert 0.3 * bitrate * kept_s < most <= 1.5 * bitrate * kept_s
    assert most < 1920 * 1080 * 3 * scene.fps, "the pre-roll costs less than a second of decoded pictures"
    (ev,) = events_json(rec)
    info = probe(rec / ev["clip"])
    assert (info["codec_name"], info["width"], info["height"]) == ("h264", 1920, 1080)
    assert ev["clip_start_offset_s"] == pytest.approx(ev["start_offset_s"] - 2.0, abs=0.11)
    assert ev["clip_seconds"] >= ev["end_offset_s"] - ev["start_offset_s"] + 2.0
