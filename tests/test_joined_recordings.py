"""Recordings joined end to end (`cat a.ts b.ts > day.ts`, as DVR exports are put
together): the second one's timestamps start again, so each time the file has
recurs. Every event's snapshot is the moment it reports (not the picture at the
same time in the other recording), and its clip holds the source's own frames
at the place `clip_start_offset_s` says, of one picture size (a camera
reconfigured between the two: the event before the change ends there, the one
after starts its pre-roll there)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from motionwatch.sources.scene import Scene, Walker, write_h264

from conftest import events_json, mw

FPS = 25
SMALL = (96, 54)


def joined(tmp: Path, first: Scene, second: Scene, codec: str = "copy") -> Path:
    """Two recordings as MPEG-TS, one after the other in one file; `codec` mpeg4: a
    codec whose clips are encoded (an old DVR's), else the H.264 as it is."""
    parts = []
    video = ["-c:v", "mpeg4", "-q:v", "4", "-g", str(2 * FPS)] if codec == "mpeg4" else ["-c", "copy"]
    for name, scene in (("a", first), ("b", second)):
        mp4 = tmp / f"{name}.mp4"
        write_h264(scene, mp4, 600_000, 2 * FPS)
        ts = tmp / f"{name}.ts"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), *video, "-f", "mpegts", str(ts)],
                       check=True, timeout=60)
        parts.append(ts.read_bytes())
    out = tmp / "day.ts"
    out.write_bytes(b"".join(parts))
    return out


def pictures(path: Path) -> list[np.ndarray]:
    """Every picture in file order, small (a plain decode: the referee)."""
    with av.open(str(path)) as c:
        return [cv2.resize(f.to_ndarray(format="bgr24"), SMALL, interpolation=cv2.INTER_AREA).astype(np.int16)
                for f in c.decode(video=0)]


def nearest(picture: np.ndarray, source: list[np.ndarray]) -> int:
    small = cv2.resize(picture, SMALL, interpolation=cv2.INTER_AREA).astype(np.int16)
    return int(np.argmin([np.abs(small - s).mean() for s in source]))


def check_events(tmp: Path, recordings: Path, source: list[np.ndarray], join: int) -> list[dict]:
    events = sorted(events_json(recordings), key=lambda ev: ev["start_frame"])
    for ev in events:
        snap = cv2.imread(str(recordings / ev["snapshot"]))
        assert [snap.shape[1], snap.shape[0]] == ev["frame_size"]
        at = nearest(snap, source)
        assert ev["start_frame"] <= at <= ev["end_frame"], (ev["start_frame"], at, ev["end_frame"])
        # The clip is the source's frames from clip_start_offset_s on (its file times
        # run on across the join), one part, one size.
        assert ev["clip_start_offset_s"] <= ev["start_offset_s"]
        [clip] = ev["clip_parts"]
        frames = pictures(recordings / clip)
        first = round(ev["clip_start_offset_s"] * FPS)
        assert first + len(frames) <= len(source)
        assert all(np.abs(f - source[first + i]).mean() < 3 for i, f in enumerate(frames))
        assert (first + len(frames) <= join) or (first >= join) or ev["frame_size"] == [640, 360]
    return events


def test_a_camera_reconfigured_between_two_joined_recordings(tmp_path):
    """640x360 then 480x272, each starting at the same time: a visit at the end of
    the first and one from the start of the second."""
    day = joined(tmp_path,
                 Scene(width=640, height=360, fps=FPS, duration_s=12, seed=3, noise=3.0, walkers=(Walker(9.0, 4.0),)),
                 Scene(width=480, height=272, fps=FPS, duration_s=12, seed=3, noise=3.0,
                       walkers=(Walker(0.0, 4.0, x_from=0.6), Walker(6.0, 3.0))))
    proc = mw("scan", day.name, "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    source = pictures(day)
    join = 12 * FPS
    events = check_events(tmp_path, tmp_path / "recordings", source, join)
    sizes = [ev["frame_size"] for ev in events]
    assert [640, 360] in sizes and [480, 272] in sizes
    before = [ev for ev in events if ev["frame_size"] == [640, 360]]
    after = [ev for ev in events if ev["frame_size"] == [480, 272]]
    # The clip before the change runs to it; the one after starts at it (its keyframe).
    assert round((before[-1]["clip_start_offset_s"] + before[-1]["clip_seconds"]) * FPS) == join
    assert round(after[0]["clip_start_offset_s"] * FPS) == join


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_visit_just_after_the_join_is_saved_from_its_own_recording(tmp_path, jobs):
    """The same camera, the same room: one visit early in the first recording, one
    that starts half a second into the second. Its snapshot is of that visit, not
    of the first recording's room at the same time."""
    day = joined(tmp_path,
                 Scene(width=640, height=360, fps=FPS, duration_s=10, seed=5, noise=3.0, walkers=(Walker(1.0, 3.0),)),
                 Scene(width=640, height=360, fps=FPS, duration_s=10, seed=5, noise=3.0,
                       walkers=(Walker(0.0, 3.5, x_from=0.55, x_to=-0.15, shade=200),)))
    proc = mw("scan", day.name, "--no-progress", "--jobs", jobs, cwd=tmp_path, timeout=120,
              env={"MOTIONWATCH_PARALLEL_MIN_WORK": "0"})
    assert proc.returncode == 0, proc.stderr
    events = check_events(tmp_path, tmp_path / "recordings", pictures(day), 10 * FPS)
    assert len(events) == 2 and events[1]["start_frame"] >= 10 * FPS


@pytest.mark.parametrize("codec", ["copy", "mpeg4"])
def test_a_visit_across_the_join_has_its_whole_clip(tmp_path, codec):
    """Someone walking when the first recording ends and still there as the second
    starts: one event, and its clip (copied, or encoded from the packets) runs on
    across the join to the post-roll after the last motion."""
    day = joined(tmp_path,
                 Scene(width=640, height=360, fps=FPS, duration_s=12, seed=3, noise=3.0, walkers=(Walker(9.5, 5.0),)),
                 Scene(width=640, height=360, fps=FPS, duration_s=12, seed=3, noise=3.0,
                       walkers=(Walker(0.0, 3.0, x_from=0.5),)), codec)
    proc = mw("scan", day.name, "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [ev] = check_events(tmp_path, tmp_path / "recordings", pictures(day), 12 * FPS)
    assert ev["start_frame"] < 12 * FPS < ev["end_frame"]
    assert round((ev["clip_start_offset_s"] + ev["clip_seconds"]) * FPS) >= ev["end_frame"] + 2 * FPS - 1
