"""Damaged video files through the real `motionwatch scan`: a truncated MP4 and AVI
are scanned up to where they break and say how much was lost (exit 0), damage in
the middle costs only the damaged frames, and a file with nothing readable is one
clear error (exit 1). Every run has a timeout: a bad file must never hang scan."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from conftest import events_json as events, mw
from motionwatch.sources.scene import Scene, Walker, write_video

# Two visits: 1.5-3.5 s and 8-9.8 s of a 10 s clip, more than the 4 s event gap apart.
SCENE = Scene(width=320, height=240, fps=15, duration_s=10, seed=4, noise=3.0,
              walkers=(Walker(1.5, 2.0, height=0.6), Walker(8.0, 1.8, height=0.6)))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    mp4 = Path(write_video(SCENE, str(d / "raw.mp4")))
    # A camera or NVR writing with the index up front (faststart) leaves a playable
    # head when cut; a plain MP4 cut off has lost its index (at the end) entirely.
    fast = d / "fast.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(mp4), "-c", "copy",
                    "-movflags", "+faststart", str(fast)], check=True, timeout=60)
    avi = Path(write_video(SCENE, str(d / "mjpeg.avi"), fourcc="MJPG"))
    out = {"whole": fast}
    for name, src in (("trunc.mp4", fast), ("trunc.avi", avi), ("trunc_noindex.mp4", mp4)):
        data = src.read_bytes()
        (d / name).write_bytes(data[:int(len(data) * 0.55)])   # cut at 5.5 s: after visit 1
        out[name] = d / name
    data = bytearray(fast.read_bytes())
    at = int(len(data) * 0.4)
    # A damaged patch between the two visits (fixed bytes: the same frames break every run).
    data[at:at + 20000] = random.Random(6).randbytes(20000)
    (d / "middle.mp4").write_bytes(bytes(data))
    out["middle.mp4"] = d / "middle.mp4"
    (d / "garbage.mp4").write_bytes(os.urandom(100_000))
    out["garbage.mp4"] = d / "garbage.mp4"
    (d / "empty.avi").write_bytes(b"")
    out["empty.avi"] = d / "empty.avi"
    # A cut by stream copy from between keyframes: the MP4's edit list hides the
    # frames from the keyframe before the cut up to it, and players skip them.
    cut = d / "cut.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", "1.3", "-i", str(fast), "-c", "copy",
                    str(cut)], check=True, timeout=60)
    out["cut.mp4"] = cut
    # The same with the edit list's length halved: it hides the end as well.
    data = bytearray(cut.read_bytes())
    at = data.index(b"elst") + 12   # version 0: entry 1's segment duration (4 bytes)
    data[at:at + 4] = (int.from_bytes(data[at:at + 4], "big") // 2).to_bytes(4, "big")
    (d / "halved.mp4").write_bytes(bytes(data))
    out["halved.mp4"] = d / "halved.mp4"
    return out


def shown_frames(path: Path) -> tuple[int, int]:
    """(frames stored, frames a player shows) by ffprobe, the independent referee."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_frames,nb_read_frames", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    stored, shown = out.strip().split(",")[:2]
    return int(stored), int(shown)


def scan(path: Path, rec: Path) -> subprocess.CompletedProcess:
    return mw("scan", str(path), "--recordings", str(rec), "--no-progress", timeout=120)


def starts(rec: Path) -> list[float]:
    return sorted(e["start_offset_s"] for e in events(rec))


@pytest.mark.parametrize("name", ["trunc.mp4", "trunc.avi"])
def test_truncated_file_is_scanned_up_to_the_cut(clips, tmp_path, name):
    proc = scan(clips[name], tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "could not be decoded" in proc.stderr and "truncated" in proc.stderr
    scanned = int(proc.stdout.split("scanned ")[1].split()[0])
    assert 60 <= scanned < SCENE.frames
    assert f"of {SCENE.frames} frames" in proc.stderr
    # The visit before the cut is found; the one after it cannot be.
    found = starts(tmp_path / "rec")
    assert len(found) == 1 and 1.0 <= found[0] <= 3.0


def test_damage_in_the_middle_costs_only_the_damaged_frames(clips, tmp_path):
    proc = scan(clips["middle.mp4"], tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    assert "damaged frame(s) skipped" in proc.stderr
    assert "truncated" not in proc.stderr
    scanned = int(proc.stdout.split("scanned ")[1].split()[0])
    skipped = int(proc.stderr.split("warning: ")[1].split(": ")[1].split()[0])
    assert skipped > 0 and scanned + skipped == SCENE.frames   # it went on to the end
    # The pictures after the patch, up to the next keyframe, may be predicted from
    # what it destroyed: they are not analysed (media.damage), so the two visits are
    # two events (before, the smear joined them into one from 1.7 to 9.7 s), and the
    # visit after the damage is seen. Positions count the skipped frames.
    evs = sorted(events(tmp_path / "rec"), key=lambda e: e["start_offset_s"])
    assert [(round(e["start_offset_s"]), round(e["end_offset_s"])) for e in evs] == [(2, 3), (8, 10)], evs
    assert evs[1]["end_frame"] >= int(8.5 * SCENE.fps)
    assert "damaged video at frame" in proc.stderr
    # The first event's clip reaches into the patch: its undecodable packets are the
    # source's damage, a warning, not a failure to write.
    assert "cannot write event" not in proc.stderr and "could not be decoded for the clip" in proc.stderr
    assert all(e["clip"] for e in evs)


def test_whole_file_reports_no_damage(clips, tmp_path):
    proc = scan(clips["whole"], tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    assert "could not be decoded" not in proc.stderr
    assert f"scanned {SCENE.frames} frames" in proc.stdout


def test_cut_by_stream_copy_is_whole(clips, tmp_path):
    """Frames an edit list hides are not the video's: no damage is reported for a
    cut made with `ffmpeg -ss ... -c copy` (it was, as a truncated file), and scan
    counts what a player shows."""
    stored, shown = shown_frames(clips["cut.mp4"])
    assert shown < stored   # the fixture does hide frames
    proc = scan(clips["cut.mp4"], tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    assert "could not be decoded" not in proc.stderr and "truncated" not in proc.stderr, proc.stderr
    assert f"scanned {shown} frames" in proc.stdout


def test_cut_with_its_end_hidden_is_whole(clips, tmp_path):
    """The edit list may hide the end too (here its length halved): a player stops
    there, and so does scan, without calling the file truncated."""
    stored, shown = shown_frames(clips["halved.mp4"])
    assert shown < stored * 0.6
    proc = scan(clips["halved.mp4"], tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    assert "could not be decoded" not in proc.stderr, proc.stderr
    assert f"scanned {shown} frames" in proc.stdout


@pytest.mark.parametrize("name", ["garbage.mp4", "empty.avi", "trunc_noindex.mp4"])
def test_unreadable_file_is_one_clear_error(clips, tmp_path, name):
    proc = scan(clips[name], tmp_path / "rec")
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("motionwatch: error:")]
    assert len(lines) == 1 and name in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "rec").exists() or not list((tmp_path / "rec").rglob("event.json"))
