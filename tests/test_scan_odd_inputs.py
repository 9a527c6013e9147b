"""`motionwatch scan` on the odd files a real archive has: empty files, audio only,
links that lead nowhere or in a loop, unreadable files and folders, variable frame
rate, a recording still being written. Each
gives a clear row or message and never a traceback, and the good files are scanned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from motionwatch.sources.scene import Scene, Walker, write_h264

from conftest import events_json, has_encoder, mw
from test_scan_archive import FAST_SETTLE, LONG

VISIT = Scene(width=320, height=240, fps=10, duration_s=12, seed=7, noise=3.0, walkers=(Walker(2.0, 4.0),))


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("odd") / "good.mp4"
    write_h264(VISIT, path, 300_000, 20)
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


def rows_of(out: str) -> dict[str, str]:
    """file path as printed -> its status, from scan's table."""
    rows = {}
    for line in out.splitlines()[1:]:
        parts = line.split(None, 3)
        if len(parts) == 4 and not line.startswith("scanned "):
            rows[parts[0]] = parts[3]
    return rows


def test_empty_audio_only_and_broken_links_are_rows_of_their_own(tmp_path, good_clip):
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy2(good_clip, folder / "good.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", str(folder / "voice.mp4"))
    (folder / "loop").symlink_to(".")                 # a folder link back to itself: not followed
    (folder / "self.mp4").symlink_to("self.mp4")      # a link loop
    (folder / "gone.mp4").symlink_to("deleted.mp4")   # its target deleted
    proc = mw("scan", "archive", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    rows = rows_of(proc.stdout)
    assert rows["archive/good.mp4"] == "done"
    assert rows["archive/empty.mp4"] == "failed: an empty file (0 bytes)"
    assert rows["archive/voice.mp4"] == "failed: has no video stream"
    assert rows["archive/self.mp4"] == "failed: a link that leads nowhere (Too many levels of symbolic links)"
    assert rows["archive/gone.mp4"] == "failed: a link that leads nowhere (No such file or directory)"
    assert len(rows) == 5, proc.stdout   # nothing found twice through the folder link
    assert [e["camera"] for e in events_json(tmp_path / "recordings")] == ["good"]
    alone = mw("scan", "archive/voice.mp4", "--no-progress", cwd=tmp_path, timeout=60)
    assert alone.returncode == 1 and alone.stderr.strip().splitlines()[-1] == \
        "motionwatch: error: archive/voice.mp4: has no video stream", alone.stderr


def as_root_without_override(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run scan as root without the capability to read what others may not (as a plain
    user would: root reads every file, so permissions could not be tested otherwise)."""
    if os.geteuid() != 0:
        return mw(*args, cwd=cwd, timeout=120)
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's file-reading capabilities")
    caps = "-dac_override,-dac_read_search"
    return subprocess.run(["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}",
                           sys.executable, "-m", "motionwatch", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_unreadable_files_and_folders_are_reported_not_left_out(tmp_path, good_clip):
    folder = tmp_path / "archive"
    (folder / "closed").mkdir(parents=True)
    shutil.copy2(good_clip, folder / "good.mp4")
    shutil.copy2(good_clip, folder / "locked.mp4")
    shutil.copy2(good_clip, folder / "closed" / "hidden.mp4")
    (folder / "locked.mp4").chmod(0)
    (folder / "closed").chmod(0)
    try:
        proc = as_root_without_override(["scan", "archive", "--no-progress"], tmp_path)
        alone = as_root_without_override(["scan", "archive/closed", "--no-progress"], tmp_path)
    finally:
        (folder / "closed").chmod(0o755)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    rows = rows_of(proc.stdout)
    assert rows["archive/good.mp4"] == "done"
    assert rows["archive/locked.mp4"] == "failed: cannot read any video from it: Permission denied"
    assert rows["archive/closed"] == "failed: cannot read the folder: Permission denied"
    assert alone.returncode == 2 and alone.stderr.strip().splitlines()[-1] == (
        "motionwatch: error: scan: no video file in archive/closed "
        "(archive/closed: cannot read the folder: Permission denied)")


def test_a_variable_frame_rate_file_on_several_jobs_gives_the_sequential_scans_events(tmp_path):
    """Frames dropped in stretches, as a camera does when its encoder falls behind:
    frame numbers and times no longer follow from the rate; decoding on several
    threads gives the same frames, numbers and times."""
    write_h264(LONG, tmp_path / "cfr.mp4", 300_000, 16)
    ffmpeg("-i", str(tmp_path / "cfr.mp4"), "-vf", r"select='lt(mod(n\,40)\,30)+not(mod(n\,2))'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-g", "16", "-x264-params", "scenecut=0", str(tmp_path / "vfr.mp4"))
    (tmp_path / "settle.yaml").write_text(FAST_SETTLE)
    mw("scan", "vfr.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=tmp_path, check=True)
    mw("scan", "vfr.mp4", "--config", "settle.yaml", "--jobs", "3", "--recordings", "par",
       "--no-progress", cwd=tmp_path, check=True)
    keys = ("start_frame", "end_frame", "start_offset_s", "end_offset_s", "frames_with_motion")
    seq = sorted(events_json(tmp_path / "seq"), key=lambda e: e["start_frame"])
    par = sorted(events_json(tmp_path / "par"), key=lambda e: e["start_frame"])
    assert len(seq) == len(LONG.walkers)
    assert [[e[k] for k in keys] for e in par] == [[e[k] for k in keys] for e in seq]
    assert [(tmp_path / "par" / e["snapshot"]).read_bytes() for e in par] == \
           [(tmp_path / "seq" / e["snapshot"]).read_bytes() for e in seq]


# The rest of the recording, written when the scan tells of its first event (once).
APPEND = """\
import os, sys
live, rest = sys.argv[1], sys.argv[2]
sys.stdin.read()
with open(sys.argv[3], "a") as log:
    log.write(os.environ["MOTIONWATCH_HOOK"] + "\\n")
if os.path.exists(rest):
    with open(rest, "rb") as f, open(live, "ab") as out:
        out.write(f.read())
    os.unlink(rest)
"""


def test_a_recording_still_being_written_is_scanned_again_next_time(tmp_path):
    """A DVR's current MPEG-TS file grows while the scan reads it. To make the growth
    certain on any machine, the event hook writes the rest of the recording when the
    first event starts (hooks run before the scan ends). The scan says the file
    changed; the next run scans it again instead of skipping it as done, finds the
    later visit too, and does not tell the hooks of the first one twice."""
    clip = tmp_path / "visits.mp4"
    write_h264(Scene(width=320, height=240, fps=10, duration_s=40, seed=9, noise=3.0,
                     walkers=(Walker(2.0, 3.0), Walker(30.0, 3.0))), clip, 300_000, 20)
    ffmpeg("-i", str(clip), "-c", "copy", "-f", "mpegts", str(tmp_path / "whole.ts"))
    data = (tmp_path / "whole.ts").read_bytes()
    cut = len(data) * 2 // 5 // 188 * 188   # at a transport packet: the first 16 s or so
    (tmp_path / "live.ts").write_bytes(data[:cut])
    (tmp_path / "rest.ts").write_bytes(data[cut:])
    (tmp_path / "append.py").write_text(APPEND)
    hook = [sys.executable, "append.py", "live.ts", "rest.ts", "hooks.log"]
    (tmp_path / "dvr.yaml").write_text(json.dumps({"hooks": {"on_event_start": hook, "on_event_end": hook}}))
    args = ["scan", "live.ts", "--jobs", "1", "--config", "dvr.yaml", "--no-progress"]
    first = mw(*args, cwd=tmp_path, timeout=120)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    assert "changed while it was scanned" in first.stderr
    assert (tmp_path / "live.ts").read_bytes() == data
    again = mw(*args, cwd=tmp_path, check=True)
    assert "scanned " in again.stdout and "skipped" not in again.stdout, again.stdout
    assert len(events_json(tmp_path / "recordings")) == 2   # the later visit too, and none twice
    told = (tmp_path / "hooks.log").read_text().split()
    assert told == ["event_start", "event_end", "event_start", "event_end"], told
    third = mw(*args, cwd=tmp_path, check=True)
    assert "skipped" in third.stdout


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_raw_elementary_stream_export_gets_its_clip(tmp_path, good_clip, codec):
    """Some cameras and NVRs export raw .264/.h265 streams: FFmpeg gives their packets
    no timestamps, so no clip can be copied from them. The clip is encoded from the
    decoded pictures instead (it was silently missing), and the event is the one the
    same video in MP4 gives."""
    raw = tmp_path / ("export.264" if codec == "h264" else "export.h265")
    if codec == "h264":
        ffmpeg("-i", str(good_clip), "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(raw))
    else:
        ffmpeg("-i", str(good_clip), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
               "-f", "hevc", str(raw))
    proc = mw("scan", raw.name, "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (ev,) = events_json(tmp_path / "recordings")
    assert ev["clip"] and ev["clip_format"] == "h264" and not ev.get("clip_copied")
    clip = tmp_path / "recordings" / ev["clip"]
    got = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                          "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True).stdout.strip()
    assert int(got) / VISIT.fps >= ev["end_offset_s"] - ev["start_offset_s"]
    assert (clip.parent / "snapshot.jpg").stat().st_size > 0
    mw("scan", str(good_clip), "--no-progress", "--recordings", str(tmp_path / "mp4-rec"), check=True, timeout=120)
    (mp4_ev,) = events_json(tmp_path / "mp4-rec")
    assert abs(ev["start_offset_s"] - mp4_ev["start_offset_s"]) <= 1 / VISIT.fps + 1e-6
    assert abs(ev["end_offset_s"] - mp4_ev["end_offset_s"]) <= 1 / VISIT.fps + 1e-6


def test_a_folder_scan_finds_raw_streams_by_their_first_bytes(tmp_path, good_clip):
    """An NVR export named `.bin` or `.dav`-less is still found in a folder when it
    begins like a raw H.264 or HEVC stream (x264 starts with an SEI, x265 with a VPS);
    other files are skipped."""
    folder = tmp_path / "export"
    folder.mkdir()
    ffmpeg("-i", str(good_clip), "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(folder / "ch1.bin"))
    ffmpeg("-i", str(good_clip), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
           "-f", "hevc", str(folder / "ch2.bin"))
    (folder / "notes.bin").write_bytes(b"\x00\x00\x00\x01" + b"\xff" * 60)   # a start code, no video after it
    (folder / "readme.txt").write_text("exported 2026-12-05\n")
    proc = mw("scan", "export", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = rows_of(proc.stdout)
    assert rows == {"export/ch1.bin": "done", "export/ch2.bin": "done"}, proc.stdout
    assert "2 non-video file(s) skipped" in proc.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_still_picture_track_before_the_video_is_not_what_is_watched(tmp_path, good_clip, jobs):
    """An exporter that puts a thumbnail or cover picture first (a one-frame MJPEG
    track in an MKV): the scan watches the video, as ffmpeg and players pick it, and
    its snapshot and clip are of that video, on worker processes too."""
    ffmpeg("-i", str(good_clip), "-frames:v", "1", "-vf", "scale=160:120", str(tmp_path / "thumb.jpg"))
    ffmpeg("-i", str(tmp_path / "thumb.jpg"), "-i", str(good_clip), "-map", "0", "-map", "1:v",
           "-c", "copy", str(tmp_path / "door.mkv"))
    proc = mw("scan", "door.mkv", "--no-progress", "--jobs", jobs, cwd=tmp_path, timeout=120,
              env={"MOTIONWATCH_PARALLEL_MIN_WORK": "0"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "warning" not in proc.stderr, proc.stderr
    assert f"scanned {VISIT.frames} frames" in proc.stdout
    [ev] = events_json(tmp_path / "recordings")
    assert ev["frame_size"] == [VISIT.width, VISIT.height]
    clip = tmp_path / "recordings" / ev["clip"]
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width",
                            "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == [f"h264,{VISIT.width}"]


def assert_clip_covers(recordings: Path, reference: dict) -> dict:
    """The one event of `recordings`: at the reference's times, with an H.264 clip
    encoded for it that holds the whole event."""
    (ev,) = events_json(recordings)
    assert abs(ev["start_offset_s"] - reference["start_offset_s"]) <= 1 / VISIT.fps + 1e-6
    assert abs(ev["end_offset_s"] - reference["end_offset_s"]) <= 1 / VISIT.fps + 1e-6
    assert ev["clip"] and ev["clip_format"] == "h264" and not ev.get("clip_copied")
    codec, frames = counted(recordings / ev["clip"])
    assert codec == "h264" and frames / VISIT.fps >= ev["end_offset_s"] - ev["start_offset_s"]
    return ev


def counted(clip: Path) -> tuple[str, int]:
    """(codec, frames decoded) of a clip, by ffprobe."""
    got = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames",
                          "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True).stdout.strip()
    codec, frames = got.split(",")
    return codec, int(frames)


@pytest.fixture(scope="module")
def reference_event(good_clip, tmp_path_factory) -> dict:
    rec = tmp_path_factory.mktemp("reference") / "recordings"
    mw("scan", str(good_clip), "--no-progress", "--recordings", str(rec), check=True, timeout=120)
    (ev,) = events_json(rec)
    return ev


def test_a_codec_an_mp4_clip_cannot_copy_gets_an_encoded_clip(tmp_path, good_clip, reference_event):
    """ProRes (which neither MP4 nor NUT takes) once ended the scan with a traceback at
    open, where the stream's facts are copied for the clip. It is scanned like any file
    now, with an H.264 clip of the event."""
    if not has_encoder("prores_ks"):
        pytest.skip("this ffmpeg has no prores_ks encoder to make the file with")
    ffmpeg("-i", str(good_clip), "-c:v", "prores_ks", "-profile:v", "0", str(tmp_path / "edit.mov"))
    proc = mw("scan", "edit.mov", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert_clip_covers(tmp_path / "recordings", reference_event)


def test_an_ogg_theora_file_that_repeats_pictures_is_read_to_its_end(tmp_path, good_clip, reference_event):
    """Theora sends a picture that did not change as an empty packet. Handed to the
    decoder, the first one drained it: the file was read up to there (its first
    second here), called truncated, and its visit was never seen."""
    if not has_encoder("libtheora"):
        pytest.skip("this ffmpeg has no libtheora encoder to make the file with")
    import av
    ffmpeg("-i", str(good_clip), "-c:v", "libtheora", "-q:v", "6", str(tmp_path / "old.ogv"))
    with av.open(str(tmp_path / "old.ogv")) as c:   # (ffprobe does not list them)
        empty = sum(1 for p in c.demux(video=0) if not p.size and p.pts is not None)
    assert empty >= 5, "the encoder sent no empty packets: nothing is tested"
    proc = mw("scan", "old.ogv", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert_clip_covers(tmp_path / "recordings", reference_event)


def test_an_av1_export_gets_a_copied_clip(tmp_path, good_clip, reference_event):
    """AV1 is read by libdav1d, a decoder with no encoder of its name: that once ended
    the scan with a traceback at open. Its clip is now the file's own packets, named
    av1 (the format, not the decoder), covering the event."""
    if not has_encoder("libsvtav1"):
        pytest.skip("this ffmpeg has no libsvtav1 encoder to make the file with")
    ffmpeg("-i", str(good_clip), "-c:v", "libsvtav1", "-preset", "12", "-svtav1-params", "loglevel=0",
           str(tmp_path / "export.mkv"))
    proc = mw("scan", "export.mkv", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (ev,) = events_json(tmp_path / "recordings")
    assert abs(ev["start_offset_s"] - reference_event["start_offset_s"]) <= 1 / VISIT.fps + 1e-6
    assert ev["clip_format"] == "av1" and ev["clip_copied"] is True
    codec, frames = counted(tmp_path / "recordings" / ev["clip"])
    shown_from = ev["clip_start_offset_s"]
    assert codec == "av1" and shown_from <= ev["start_offset_s"]
    assert shown_from + frames / VISIT.fps >= ev["end_offset_s"] - 1e-6


def test_a_codec_nothing_can_hold_a_copy_of_gets_a_clip_from_its_frames(tmp_path, good_clip, reference_event,
                                                                         monkeypatch, caplog):
    """Where no container here takes a copy of the stream's facts (simulated: MP4 alone
    is offered, and it refuses ProRes), the source keeps no packets and the clip is
    encoded from the decoded frames, as a raw stream's is; the log says so."""
    import logging
    import threading

    from motionwatch.config import CameraConfig, Config, RecordingsConfig
    from motionwatch.media import remux
    from motionwatch.pipeline.camera import CameraLoop
    from motionwatch.sinks.recorder import Recorder
    from motionwatch.sinks.runner import SinkRunner

    if not has_encoder("prores_ks"):
        pytest.skip("this ffmpeg has no prores_ks encoder to make the file with")
    path = tmp_path / "edit.mov"
    ffmpeg("-i", str(good_clip), "-c:v", "prores_ks", "-profile:v", "0", str(path))
    monkeypatch.setattr(remux, "HOLDERS", ("mp4",))
    cfg = Config(recordings=RecordingsConfig(path=str(tmp_path / "recordings"), min_free_gb=0.0))
    sinks = SinkRunner([Recorder(cfg.recordings, cfg.events)])
    loop = CameraLoop(CameraConfig(name="cam", source=str(path)), cfg, sinks, threading.Event(), scan=True)
    with caplog.at_level(logging.INFO, logger="motionwatch"):
        loop.run()
    sinks.close()
    assert loop.source.packets is None
    assert "clips are encoded from decoded frames" in caplog.text
    assert_clip_covers(tmp_path / "recordings", reference_event)


def test_a_folder_scan_finds_nvr_and_older_containers(tmp_path, good_clip):
    """DVD-style program streams (.vob), ASF and IVF files are found by their names,
    and an IVF or ASF file with a name no player knows by its first bytes; each is
    scanned to its event."""
    folder = tmp_path / "export"
    folder.mkdir()
    ffmpeg("-i", str(good_clip), "-c:v", "mpeg2video", "-q:v", "4", "-f", "vob", str(folder / "cam.vob"))
    ffmpeg("-i", str(good_clip), "-c:v", "msmpeg4v2", "-q:v", "4", "-f", "asf", str(folder / "cam.asf"))
    ffmpeg("-i", str(good_clip), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k",
           "-f", "ivf", str(folder / "cam.ivf"))
    shutil.copy(folder / "cam.ivf", folder / "channel3.bin")
    shutil.copy(folder / "cam.asf", folder / "channel4.dat")
    proc = mw("scan", "export", "--no-progress", cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert rows_of(proc.stdout) == {f"export/{n}": "done" for n in
                                    ("cam.vob", "cam.asf", "cam.ivf", "channel3.bin", "channel4.dat")}, proc.stdout
    assert len(events_json(tmp_path / "recordings")) == 5


def test_a_dahua_dav_export_is_scanned_like_its_mp4(tmp_path, good_clip):
    """A Dahua NVR's `.dav` export (written here by tests/dhav.py, as FFmpeg's `dhav`
    demuxer reads them; no real sample may be committed), also under a name that
    says nothing: found by its first bytes, its event is the MP4's, its clip is the
    camera's own packets copied, and it is dated by the NVR's clock the file
    carries. Dahua cameras record without B-frames."""
    from dhav import write_dhav
    plain = tmp_path / "plain.mp4"
    ffmpeg("-i", str(good_clip), "-c:v", "libx264", "-bf", "0", "-g", "20", "-preset", "veryfast", "-b:v", "300k",
           str(plain))
    folder = tmp_path / "nvr"
    folder.mkdir()
    assert write_dhav(plain, folder / "ch01_20260301120000.dav") == round(VISIT.fps * VISIT.duration_s)
    shutil.copy(folder / "ch01_20260301120000.dav", folder / "ch02.bin")
    proc = mw("scan", "nvr", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert rows_of(proc.stdout) == {"nvr/ch01_20260301120000.dav": "done", "nvr/ch02.bin": "done"}, proc.stdout
    mw("scan", str(plain), "--no-progress", "--recordings", str(tmp_path / "mp4-rec"), check=True, timeout=120)
    (want,) = events_json(tmp_path / "mp4-rec")
    got = events_json(tmp_path / "recordings")
    assert len(got) == 2
    recorded = datetime(2026, 3, 1, 12, 0, 0)   # write_dhav's NVR clock
    for ev in got:
        assert (ev["start_offset_s"], ev["end_offset_s"]) == (want["start_offset_s"], want["end_offset_s"])
        assert ev["clip_copied"] and ev["clip_format"] == "h264"
        # Dated by the NVR's clock in the file (local time), not by when it was copied here.
        at = datetime.fromisoformat(ev["start"]).replace(tzinfo=None)
        assert abs((at - recorded).total_seconds() - ev["start_offset_s"]) < 0.01, ev["start"]
        assert "/2026-03-01/" in ev["clip"]
