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

VISIT = Scene(width=320, height=240, fps=10, duration_s=12, seed=7, noise=3.0, walkers=(Walker(2.0, 4.0),))


def write_turned(path: Path, codec: str, rotation: int) -> None:
    """The scene encoded as it was filmed, tagged to be shown turned `rotation` degrees
    counter-clockwise (the display matrix a phone writes)."""
    rate = Fraction(VISIT.fps)
    renderer = SceneRenderer(VISIT)
    with av.open(str(path), "w", format="mp4") as out:
        st = out.add_stream("libx264" if codec == "h264" else "mpeg4", rate=rate)
        st.width, st.height, st.pix_fmt = VISIT.width, VISIT.height, "yuv420p"
        st.codec_context.gop_size = 20
        st.set_display_rotation(rotation)
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
    assert (w, h) == ((240, 320) if rotation in (90, 270) else (320, 240))

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
