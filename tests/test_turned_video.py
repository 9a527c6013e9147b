"""Recordings a player shows turned: a phone held upright, a camera mounted on its
side or upside down. Their pictures are stored landscape with a display matrix
(ffprobe's "rotation"); `scan` and `run` watch, save and review them upright, as
ffmpeg (the referee here) and players show them, on one core and on worker
processes, with the clip copied (H.264) or encoded (MPEG-4 Part 2)."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from motionwatch.sources.scene import Scene, SceneRenderer, Walker

from conftest import events_json, mw

# Larger than the detection picture, so it is shrunk (by the worker processes too).
VISIT = Scene(width=480, height=272, fps=10, duration_s=12, seed=7, noise=3.0, walkers=(Walker(2.0, 4.0),))


def write_turned(path: Path, codec: str, rotation: int, mirror: bool = False) -> None:
    """The scene encoded as it was filmed, tagged to be shown turned `rotation` degrees
    counter-clockwise (the display matrix a phone writes), and mirrored after that."""
    rate = Fraction(VISIT.fps)
    renderer = SceneRenderer(VISIT)
    with av.open(str(path), "w", format="mp4") as out:
        st = out.add_stream("libx264" if codec == "h264" else "mpeg4", rate=rate)
        st.width, st.height, st.pix_fmt = VISIT.width, VISIT.height, "yuv420p"
        st.codec_context.gop_size = 20
        st.set_display_rotation(rotation, hflip=mirror)
        for i in range(VISIT.frames):
            frame = av.VideoFrame.from_ndarray(renderer.render(i), format="bgr24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, 1 / rate
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


def shown(path: Path, tmp: Path) -> np.ndarray:
    """The first picture as ffmpeg shows it (it turns pictures by the display matrix)."""
    png = tmp / f"{path.stem}-shown.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-frames:v", "1", str(png)],
                   check=True, timeout=60)
    return cv2.imread(str(png))


def display_matrix(path: Path) -> str:
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream_side_data=displaymatrix", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    sides = json.loads(probe.stdout)["streams"][0].get("side_data_list", [])
    return next((s["displaymatrix"] for s in sides if "displaymatrix" in s), "")


@pytest.mark.parametrize("rotation,mirror", [(0, True), (90, True), (180, True)])
def test_a_mirrored_recording_is_shown_as_ffmpeg_shows_it(tmp_path, rotation, mirror):
    """A display matrix that mirrors as well (180 + mirror is a vertical flip): the
    snapshot is the picture ffmpeg shows, and the encoded clip carries the same
    matrix (decoded on worker processes: the default --jobs with no floor)."""
    write_turned(tmp_path / "front.mp4", "mpeg4", rotation, mirror)
    reference = shown(tmp_path / "front.mp4", tmp_path)
    proc = mw("scan", "front.mp4", "--no-progress", cwd=tmp_path, timeout=120, env={"MOTIONWATCH_PARALLEL_MIN_WORK": "0"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "recordings")
    snap = cv2.imread(str(tmp_path / "recordings" / ev["snapshot"]))
    assert snap.shape == reference.shape
    assert difference(snap, reference) < 0.5 * difference(snap, cv2.flip(reference, 1))
    clip = tmp_path / "recordings" / ev["clip"]
    assert display_matrix(clip) == display_matrix(tmp_path / "front.mp4") != ""
    first = shown(clip, tmp_path)
    assert difference(first, reference) < 0.5 * difference(first, cv2.flip(reference, 1))


def rotation_tag(path: Path) -> int:
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream_side_data=rotation", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    sides = json.loads(probe.stdout)["streams"][0].get("side_data_list", [])
    return next((int(s["rotation"]) % 360 for s in sides if "rotation" in s), 0)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(cv2.absdiff(a, b)))


@pytest.mark.parametrize("codec,rotation,jobs", [("h264", 90, "1"), ("h264", 90, "2"), ("h264", 180, "1"),
                                                  ("mpeg4", 270, "1"), ("mpeg4", 270, "2"), ("mpeg4", 90, "run")])
def test_a_turned_recording_is_watched_and_saved_upright(tmp_path, codec, rotation, jobs):
    """jobs "run": `run --source` the file, played at its own rate like a camera."""
    write_turned(tmp_path / "phone.mp4", codec, rotation)
    assert rotation_tag(tmp_path / "phone.mp4") == rotation
    reference = shown(tmp_path / "phone.mp4", tmp_path)
    h, w = reference.shape[:2]
    assert (w, h) == ((VISIT.height, VISIT.width) if rotation in (90, 270) else (VISIT.width, VISIT.height))

    command = ["run", "--source", "phone.mp4"] if jobs == "run" else ["scan", "phone.mp4", "--no-progress",
                                                                       "--jobs", jobs]
    proc = mw(*command, cwd=tmp_path, timeout=120, env={"MOTIONWATCH_PARALLEL_MIN_WORK": "0"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "warning" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "recordings")
    assert ev["frame_size"] == [w, h]
    assert ev["boxes"] and all(x >= 0 and y >= 0 and x + bw <= w and y + bh <= h for x, y, bw, bh in ev["boxes"])

    # The snapshot is upright: the room as ffmpeg shows it, not turned another way
    # (one walker covers a small part of it).
    snap = cv2.imread(str(tmp_path / "recordings" / ev["snapshot"]))
    assert snap.shape == reference.shape
    assert difference(snap, reference) < 0.5 * difference(snap, cv2.rotate(reference, cv2.ROTATE_180))

    # The clip carries the turn (copied with the packets, or written by the encoder):
    # a player shows it upright too.
    clip = tmp_path / "recordings" / ev["clip"]
    assert ev.get("clip_copied", False) is (codec == "h264")
    assert rotation_tag(clip) == rotation
    first = shown(clip, tmp_path)
    assert first.shape == reference.shape
    assert difference(first, reference) < 0.5 * difference(first, cv2.rotate(reference, cv2.ROTATE_180))


def turn_box(box: list[int], size: tuple[int, int], rotation: int) -> list[int]:
    """A box in a (width, height) picture, in that picture turned counter-clockwise."""
    x, y, w, h = box
    width, height = size
    if rotation == 90:
        return [y, width - x - w, h, w]
    if rotation == 270:
        return [height - y - h, x, h, w]
    return [width - x - w, height - y - h, w, h]


@pytest.mark.parametrize("rotation,jobs", [(90, "1"), (90, "2"), (270, "1")])
def test_a_turned_recording_has_the_events_of_the_same_recording_unturned(tmp_path, rotation, jobs):
    """Only how the pictures are shown differs: the detector sees the same picture
    turned, at the turn of the same detection size (not a portrait picture
    `detection.width` wide, three times the pixels), so it finds the same events
    with the same figures, and their boxes are the same boxes turned."""
    write_turned(tmp_path / "phone.mp4", "h264", rotation)
    write_turned(tmp_path / "plain.mp4", "h264", 0)
    found = {}
    for name in ("phone", "plain"):
        proc = mw("scan", f"{name}.mp4", "--no-progress", "--jobs", jobs, "--recordings", name, cwd=tmp_path,
                  timeout=120, env={"MOTIONWATCH_PARALLEL_MIN_WORK": "0"})
        assert proc.returncode == 0, proc.stderr
        found[name] = events_json(tmp_path / name)
    # Blur, thresholds and regions turn with the picture; the detector's sampled
    # statistics (a grid of pixels for the noise floor) do not, exactly.
    assert len(found["phone"]) == len(found["plain"]) >= 1
    for turned, plain in zip(found["phone"], found["plain"]):
        for key in ("start_offset_s", "end_offset_s"):
            assert abs(turned[key] - plain[key]) <= 1 / VISIT.fps + 1e-6, key
        assert abs(turned["frames_with_motion"] - plain["frames_with_motion"]) <= 2
        assert turned["peak_fraction"] == pytest.approx(plain["peak_fraction"], rel=0.03)
        assert turned["frame_size"] == plain["frame_size"][::-1]
        want = turn_box(plain["boxes"][0], tuple(plain["frame_size"]), rotation)
        assert max(abs(a - b) for a, b in zip(turned["boxes"][0], want)) <= 4, (turned["boxes"][0], want)


def test_a_quarter_turned_picture_is_detected_on_at_the_turned_detection_size():
    """A 1280x720 picture shown as 720x1280 is detected on at 180x320 (the turn of
    its stored picture's 320x180), not 320x569 as a portrait picture 320 wide; a
    picture stored portrait keeps the configured width."""
    from motionwatch.config import Config
    from motionwatch.pipeline.camera import camera_stages
    cfg = Config()
    cam = cfg.cameras[0]
    assert camera_stages(cfg, cam, (720, 1280), 25.0, rotation=90)[0].det_size == (180, 320)
    assert camera_stages(cfg, cam, (720, 1280), 25.0, rotation=270)[0].det_size == (180, 320)
    assert camera_stages(cfg, cam, (1280, 720), 25.0, rotation=180)[0].det_size == (320, 180)
    assert camera_stages(cfg, cam, (720, 1280), 25.0)[0].det_size == (320, 569)


@pytest.mark.parametrize("rotation", [0, 90])
def test_decoded_pictures_are_freed_as_soon_as_nothing_holds_them(tmp_path, rotation):
    """Reading a display matrix from every picture (PyAV's `frame.side_data`) made a
    reference cycle per picture: a scan then held hundreds of decoded pictures until
    the garbage collector ran (traffic_camera.mp4 peaked at 378 MB against 127). The
    turn is read once per stream: pictures read and dropped leave no cycles."""
    import gc

    from motionwatch.sources import SourceOptions, open_source
    write_turned(tmp_path / "clip.mp4", "h264", rotation)
    src = open_source(str(tmp_path / "clip.mp4"), SourceOptions(scan=True))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)   # what a collection finds stays in gc.garbage, to be counted
    try:
        for _ in range(60):
            frame = src.read()
            assert frame.size == ((VISIT.height, VISIT.width) if rotation else (VISIT.width, VISIT.height))
            frame.gray   # noqa: B018 (the detector's look at it)
        del frame
        gc.collect()
        # Only pictures: other garbage (another test's threads ending) is not ours to count.
        kept = sum(isinstance(o, av.VideoFrame) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        src.close()
    assert kept <= 1, kept   # the first picture, whose display matrix was read
