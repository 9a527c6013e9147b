"""MP4/MOV clips cut in process (sinks.mp4_index + sinks.mp4_write), checked against ffmpeg.

Real files written by ffmpeg in the layouts cameras and tools produce (x264 with
B-frames and its edit list, no B-frames, MOV, faststart, an audio track, HEVC,
an empty edit that delays the track, no edit list at all): the index must list
the packets ffprobe lists, a written part must hold the packets ffmpeg's
`-c copy` cut holds (same pts/dts/duration/flags and data MD5s), decode cleanly
to the same first picture, and a scan of an MP4 must start no ffmpeg or
ffprobe process. A fragmented MP4 and Matroska go the ffmpeg way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from motionwatch.config import EventsConfig
from motionwatch.sinks import clip_copy
from motionwatch.sinks.clip import ffmpeg_with_x264
from motionwatch.sinks.mp4_index import Unsupported, read_track
from motionwatch.sources import open_source
from motionwatch.synth import Scene, Walker, encode_with_ffmpeg

from conftest import events_json, mw
from test_clip_copy import record_cut_event

pytestmark = pytest.mark.skipif(ffmpeg_with_x264() is None or shutil.which("ffprobe") is None,
                                reason="needs ffmpeg with libx264 and ffprobe")

FPS = 25
SRC = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={FPS}:duration=6"]
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS), "-pix_fmt", "yuv420p"]
LAYOUTS = {   # name: ffmpeg arguments after the input(s)
    "bframes.mp4": X264,
    "no-bframes.mp4": [*X264, "-bf", "0"],
    "camera.mov": X264,
    "faststart.mp4": [*X264, "-movflags", "+faststart"],
    "audio.mp4": ["-f", "lavfi", "-i", "sine=d=6", *X264, "-c:a", "aac", "-shortest"],
    "no-editlist.mp4": [*X264, "-use_editlist", "0"],
    "negative-cts.mp4": [*X264, "-movflags", "+negative_cts_offsets"],   # ctts version 1
}


def has_x265() -> bool:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libx265" in out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mp4cut")
    made = {}
    for name, args in LAYOUTS.items():
        made[name] = d / name
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SRC, *args, str(made[name])], check=True)
    # An empty edit first: the video starts 0.5 s into the file (what -itsoffset writes).
    made["delayed.mp4"] = d / "delayed.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-itsoffset", "0.5", "-i", str(made["bframes.mp4"]),
                    "-c", "copy", str(made["delayed.mp4"])], check=True)
    if has_x265():
        made["hevc.mp4"] = d / "hevc.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SRC, "-c:v", "libx265", "-x265-params",
                        f"log-level=error:keyint={FPS}", "-pix_fmt", "yuv420p", str(made["hevc.mp4"])],
                       check=True)
    return made


def probe(path: Path, hashes: bool = False) -> tuple[dict, list[dict]]:
    """ffprobe's video stream facts and packets (file order)."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
           "stream=codec_name,codec_tag_string,time_base,start_time,duration,avg_frame_rate"
           ":packet=pts,dts,duration,flags" + (",data_hash" if hashes else ""), "-of", "json", str(path)]
    if hashes:
        cmd[1:1] = ["-show_data_hash", "MD5"]
    data = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return data["streams"][0], data["packets"]


def plan_for(path: Path, explicit: bool = True) -> clip_copy.CopySource:
    src = open_source(str(path), scan=True)
    try:
        plan = clip_copy.plan_copy(EventsConfig(clip_codec="copy" if explicit else "auto"), src, "cam")
    finally:
        src.close()
    assert plan is not None
    return plan


def via_ffmpeg(plan: clip_copy.CopySource) -> clip_copy.CopySource:
    """The same plan without the index: cuts run ffmpeg as before."""
    old = dataclasses.replace(plan, mp4=None)
    track = plan.mp4
    old.packets.seed([clip_copy.Packet(*row) for row in zip(track.pts.tolist(), track.durations.tolist(),
                                                             track.keys.tolist())], float("inf"))
    return old


@pytest.mark.parametrize("name", [*LAYOUTS, "delayed.mp4", "hevc.mp4"])
def test_index_lists_the_packets_ffprobe_lists(files, name, monkeypatch):
    if name not in files:
        pytest.skip("ffmpeg has no libx265")
    track = read_track(str(files[name]))
    st, pk = probe(files[name])
    assert list(zip(track.pts.tolist(), track.durations.tolist(), track.keys.tolist())) == \
        [(int(p["pts"]), int(p["duration"]), p["flags"].startswith("K")) for p in pk]
    assert track.codec == st["codec_name"] and track.time_base == Fraction(st["time_base"])
    assert track.duration == pytest.approx(float(st["duration"]), abs=1e-6)
    assert track.fps == pytest.approx(float(Fraction(st["avg_frame_rate"])), rel=1e-9)
    plan = plan_for(files[name])
    assert plan.mp4 is not None
    assert plan.start == Fraction(st["start_time"]) and plan.time_base == Fraction(st["time_base"])
    monkeypatch.setattr(clip_copy, "_index_plan", lambda source, explicit: None)
    probed = plan_for(files[name])          # what the ffprobe way plans: the same facts
    assert probed.mp4 is None
    facts = lambda p: (p.codec, p.time_base, p.start, round(p.duration, 6), round(p.fps, 9))   # noqa: E731
    assert facts(plan) == facts(probed)
    assert (track.offsets + track.sizes).max() <= files[name].stat().st_size


def test_pixel_format_comes_from_the_sps(tmp_path):
    """The reader says 8-bit 4:2:0 exactly when ffprobe says yuv420p/yuvj420p (what auto
    copies); High 4:4:4 then is not copied by auto, whoever decides, but is by `copy`."""
    for pix, profile in (("yuv420p", "baseline"), ("yuv420p", "high"), ("yuvj420p", "high"),
                         ("yuv420p10le", "high10"), ("yuv422p", "high422"), ("yuv444p", "high444"),
                         ("gray", "high")):
        path = tmp_path / f"{pix}-{profile}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SRC, "-t", "0.2", "-c:v", "libx264", "-pix_fmt", pix,
                        "-profile:v", profile, str(path)], check=True)
        shown_as = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                   "stream=pix_fmt", "-of", "csv=p=0", str(path)],
                                  capture_output=True, text=True, check=True).stdout.strip()
        assert read_track(str(path)).yuv420_8bit is (shown_as in clip_copy.BROWSER_PIX_FMTS), (pix, profile)
    hi444 = tmp_path / "yuv444p-high444.mp4"
    src = open_source(str(hi444), scan=True)
    try:
        assert clip_copy.plan_copy(EventsConfig(clip_codec="auto"), src, "cam") is None
    finally:
        src.close()
    assert plan_for(hi444, explicit=True).mp4 is not None


def test_unusual_files_go_the_ffmpeg_way(files, tmp_path):
    """Fragmented MP4 and Matroska: the reader refuses them, ffprobe/ffmpeg cut them."""
    frag, mkv = tmp_path / "frag.mp4", tmp_path / "clip.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *SRC, *X264, "-movflags", "frag_keyframe+empty_moov",
                    str(frag)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(files["bframes.mp4"]), "-c", "copy", str(mkv)],
                   check=True)
    for path, why in ((frag, "fragmented"), (mkv, "not an MP4")):
        with pytest.raises(Unsupported, match=why):
            read_track(str(path))
        plan = plan_for(path)
        assert plan.mp4 is None
        (cut,) = clip_copy.plan_cuts(plan, 1.5, 3.0, 60.0)
        written = clip_copy.cut_part(plan, cut, tmp_path / "part.mp4")
        assert written.frames == cut.count == len(probe(tmp_path / "part.mp4")[1])


RANGES = [(0.0, 1.0, 60.0), (1.3, 3.2, 60.0), (2.5, 5.0, 1.5), (4.2, 6.0, 60.0)]   # first, last, max_seconds


@pytest.mark.parametrize("name", ["bframes.mp4", "no-bframes.mp4", "camera.mov", "audio.mp4",
                                  "no-editlist.mp4", "negative-cts.mp4", "delayed.mp4", "hevc.mp4"])
def test_cut_holds_the_packets_ffmpeg_would_copy(files, tmp_path, name):
    if name not in files:
        pytest.skip("ffmpeg has no libx265")
    source = files[name]
    plan = plan_for(source)
    assert plan.mp4 is not None
    via = via_ffmpeg(plan)
    _, src_pk = probe(source, hashes=True)
    for first, last, max_s in RANGES:
        for n, cut in enumerate(clip_copy.plan_cuts(plan, first, last, max_s)):
            ours, theirs = tmp_path / f"ours-{n}.mp4", tmp_path / f"ffmpeg-{n}.mp4"
            written = clip_copy.cut_part(plan, cut, ours)
            assert written == clip_copy.cut_part(via, cut, theirs)
            st, pk = probe(ours, hashes=True)
            assert (st, pk) == probe(theirs, hashes=True), f"{name} {first}-{last} part {n} differs from ffmpeg's"
            # The source's packets from the keyframe on, shown from 0.
            at = next(i for i, p in enumerate(src_pk) if int(p["pts"]) == cut.pts and p["flags"][0] == "K")
            run = src_pk[at:at + cut.count]
            assert [(int(p["pts"]) - cut.pts, p["duration"], p["flags"][0], p["data_hash"]) for p in run] == \
                [(int(p["pts"]), p["duration"], p["flags"][0], p["data_hash"]) for p in pk]
            # The keyframe is shown first, at 0. Only x265's open-GOP leading frames (they need
            # the GOP before, which the clip does not have) come earlier, and the edit list hides
            # them exactly as in ffmpeg's cut.
            assert pk[0]["pts"] == 0 and pk[0]["flags"][0] == "K"
            hidden = [p for p in pk if int(p["pts"]) < 0]
            assert all(p["flags"].endswith("D") for p in hidden) and (plan.codec == "hevc" or not hidden)
            assert st["codec_tag_string"] == ("hvc1" if plan.codec == "hevc" else "avc1")
        assert decoded_frames(ours) == cut.count - len(hidden)
    assert first_picture(ours) is not None


def decoded_frames(path: Path) -> int:
    """Frames ffmpeg decodes from the clip; any decoder complaint fails the test."""
    proc = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                          capture_output=True, text=True, check=True)
    assert proc.stderr == ""
    return sum(1 for ln in proc.stdout.splitlines() if ln and not ln.startswith("#"))


def first_picture(path: Path) -> np.ndarray | None:
    cap = cv2.VideoCapture(str(path))
    ok, img = cap.read()
    cap.release()
    return img if ok else None


def test_first_frame_is_the_sources_keyframe_and_index_comes_first(files, tmp_path):
    source = files["audio.mp4"]
    plan = plan_for(source)
    (cut,) = clip_copy.plan_cuts(plan, 2.3, 3.4, 60.0)
    clip = tmp_path / "part.mp4"
    written = clip_copy.cut_part(plan, cut, clip)
    # The source's picture shown at the keyframe's time, decoded from the start.
    cap = cv2.VideoCapture(str(source))
    for _ in range(round(written.start * FPS)):
        assert cap.grab()
    ok, want = cap.read()
    cap.release()
    assert ok and np.array_equal(first_picture(clip), want)
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                              str(clip)], capture_output=True, text=True, check=True).stdout.split()
    assert streams == ["video"]                                  # the audio stays out
    head = clip.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")          # faststart: playable while downloading


def test_source_truncated_after_planning_loses_only_the_clip(files, tmp_path, caplog):
    """The file shrank (a recorder rewrote it) between planning and the cut: the event
    is kept with its snapshot and one error line, and no half-written clip remains."""
    source = tmp_path / "shrinks.mp4"
    shutil.copy(files["bframes.mp4"], source)
    plan = plan_for(source, explicit=False)
    assert plan.mp4 is not None
    with open(source, "r+b") as f:
        f.truncate(source.stat().st_size // 3)
    root = tmp_path / "rec"
    # The event ends (gap, post-roll) after the file has: the cut stops at its end.
    saved, errors = record_cut_event(plan, root, (320, 240), 3, caplog)
    assert saved["clip"] is None and (root / saved["snapshot"]).is_file()
    assert len(errors) == 1 and "ended early" in errors[0], errors
    assert not list(root.rglob(".tmp-*")) and not list(root.rglob("*.mp4"))


def spy_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose ffmpeg and ffprobe log each start, then run the real programs."""
    bin_dir, log_file = tmp_path / "spybin", tmp_path / "started.log"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        spy = bin_dir / tool
        spy.write_text(f"#!/bin/sh\necho {tool} >> '{log_file}'\nexec '{shutil.which(tool)}' \"$@\"\n")
        spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", log_file


def write_scene(path: Path, extra: list[str]) -> Path:
    """Someone walks through from 2.5 s to 5 s of an 8 s scene, as H.264 (B-frames on)."""
    scene = Scene(width=320, height=240, fps=FPS, duration_s=8, seed=5, noise=4.0,
                  walkers=(Walker(2.5, 2.5, height=0.6),))
    assert encode_with_ffmpeg(scene, path, [*X264, *extra]) == 0
    return path


def test_scan_of_an_mp4_starts_no_ffmpeg(tmp_path):
    """End to end: the clip of `motionwatch scan` is the source's packets from the keyframe
    event.json names, and neither ffmpeg nor ffprobe ran. The same spy sees the fragmented
    copy of the file cut the old way (so it would notice)."""
    cfg = tmp_path / "mw.yaml"
    cfg.write_text("cameras:\n  - name: porch\nevents:\n  max_seconds: 2.0\n")
    path, started = spy_path(tmp_path)
    plain = write_scene(tmp_path / "walk.mp4", [])
    frag = write_scene(tmp_path / "walk-frag.mp4", ["-movflags", "frag_keyframe+empty_moov"])
    for source, tools in ((plain, set()), (frag, {"ffmpeg", "ffprobe"})):
        st, src_pk = probe(source, hashes=True)
        rec = tmp_path / f"rec-{source.stem}"
        started.unlink(missing_ok=True)
        mw("scan", str(source), "--recordings", str(rec), "--config", str(cfg), env={"PATH": path}, check=True)
        assert set(started.read_text().split() if started.exists() else []) == tools
        (ev,) = events_json(rec)
        assert ev["clip_copied"] is True and len(ev["clip_parts"]) >= 2
        # The parts are consecutive runs of the source's packets, from the keyframe event.json names.
        hashes = [p["data_hash"] for p in src_pk]
        got = [p["data_hash"] for part in ev["clip_parts"] for p in probe(rec / part, hashes=True)[1]]
        at = hashes.index(got[0])
        assert hashes[at:at + len(got)] == got and src_pk[at]["flags"][0] == "K"
        assert ev["clip_start_offset_s"] == pytest.approx(float(int(src_pk[at]["pts"]) * Fraction(st["time_base"]) - Fraction(st["start_time"])), abs=1e-3)
        shown = sum(len(probe(rec / part)[1]) for part in ev["clip_parts"]) / FPS
        assert ev["clip_seconds"] == pytest.approx(shown, abs=0.02)


def test_cut_needs_no_ffmpeg_installed(files, tmp_path, monkeypatch):
    """With neither program on PATH, auto still plans and cuts an MP4's clips."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert clip_copy.tools() is None
    plan = plan_for(files["bframes.mp4"], explicit=False)
    (cut,) = clip_copy.plan_cuts(plan, 2.0, 3.0, 60.0)
    written = clip_copy.cut_part(plan, cut, tmp_path / "part.mp4")
    assert written.frames == cut.count and written.start == 2.0
    monkeypatch.undo()
    assert len(probe(tmp_path / "part.mp4")[1]) == cut.count


def test_damaged_index_is_refused_not_crashed_on(files, tmp_path):
    """Bytes of the moov box overwritten (a damaged card): the reader either reads it or says
    Unsupported (never another exception), so a damaged file at worst goes the ffmpeg way."""
    good = files["bframes.mp4"].read_bytes()
    moov = good.rindex(b"moov") - 4
    rng = np.random.default_rng(7)
    path = tmp_path / "damaged.mp4"
    outcomes = set()
    for _ in range(150):
        data = bytearray(good)
        for at in rng.integers(moov, len(good), size=int(rng.integers(1, 4))):
            data[at] = int(rng.integers(0, 256))
        path.write_bytes(data)
        try:
            read_track(str(path))
            outcomes.add("read")
        except Unsupported:
            outcomes.add("refused")
    assert outcomes == {"read", "refused"}
