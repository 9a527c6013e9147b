"""A recorded file's event times come from its own timestamps, as a player seeks.

Cameras and NVRs write files whose frame rate varies or that have gaps (frames
dropped under load, motion-triggered segments joined in one export). Counting
frames at the average rate put every event after such a gap early, so the
offset in event.json showed the wrong moment, and a container without a frame
count (MKV, MPEG-TS) was reported truncated. Real `motionwatch scan` runs on
files made from one generated scene with ffmpeg."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from conftest import PARALLEL_ANY_LENGTH, events_json, footage, has_encoder, mw
from motionwatch.media.clock import MAX_GAP_S, FileClock
from motionwatch.sources.scene import Scene, Walker, write_video

# A walker at 6-8 s of the scene; the files skip 3 s after the scene's 3 s.
SCENE = Scene(width=320, height=240, fps=15, duration_s=10, seed=5, noise=3.0,
              walkers=(Walker(6.0, 2.0, height=0.6),))
GAP_S = 3.0


@pytest.fixture(scope="module")
def gapped(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("times")
    src = Path(write_video(SCENE, str(d / "scene.mp4")))
    out = {"plain": src}
    for suffix in ("mkv", "mp4", "ts"):
        dst = d / f"gap.{suffix}"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src),
                        "-vf", f"setpts=PTS+gt(T\\,3)*{GAP_S}/TB", "-fps_mode", "passthrough",
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", str(dst)],
                       check=True, timeout=120)
        out[suffix] = dst
    return out


def scan(path: Path, rec: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return mw("scan", str(path), "--recordings", str(rec), "--no-progress", *extra, timeout=120, env=env)


def test_the_frame_count_places_events_in_a_constant_rate_file(gapped, tmp_path):
    proc = scan(gapped["plain"], tmp_path / "rec")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "rec")
    assert 5.5 <= ev["start_offset_s"] <= 7.0
    assert ev["start_offset_s"] == round(ev["start_frame"] / SCENE.fps, 3)


@pytest.mark.parametrize("suffix", ["mkv", "mp4", "ts"])
def test_an_event_after_a_gap_is_at_its_timestamp(gapped, tmp_path, suffix):
    proc = scan(gapped[suffix], tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    # The file has all its frames: a gap is not a truncated end.
    assert "truncated" not in proc.stderr and "could not be decoded" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "rec")
    assert 5.5 + GAP_S <= ev["start_offset_s"] <= 7.0 + GAP_S, ev
    assert ev["end_offset_s"] - ev["start_offset_s"] < 3.0
    # Frame indices still count the frames read.
    assert 5.5 * SCENE.fps <= ev["start_frame"] <= 7.0 * SCENE.fps
    # The clip is cut at the same moment: its first frame is the pre-roll before the start.
    if ev.get("clip_start_offset_s") is not None:
        assert ev["start_offset_s"] - 3.0 <= ev["clip_start_offset_s"] <= ev["start_offset_s"]


def test_worker_processes_give_the_same_times(gapped, tmp_path):
    one = scan(gapped["mkv"], tmp_path / "one", "--jobs", "1")
    two = scan(gapped["mkv"], tmp_path / "two", "--jobs", "2", env=PARALLEL_ANY_LENGTH)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    fields = ("start_offset_s", "end_offset_s", "start_frame", "end_frame", "start", "end")
    pick = lambda rec: [{k: e[k] for k in fields} for e in events_json(rec)]  # noqa: E731
    assert pick(tmp_path / "one") == pick(tmp_path / "two") and len(pick(tmp_path / "one")) == 1


def test_a_truncated_file_without_a_frame_count_says_where_it_stopped(gapped, tmp_path):
    """An MKV states its duration but no frame count: cut after the gap, the end is
    missing by time, and the warning names the time in the file."""
    data = gapped["mkv"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    proc = scan(cut, tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    assert "the file looks truncated" in proc.stderr, proc.stderr
    read = int(proc.stdout.split("scanned ")[1].split()[0])
    stopped = float(proc.stderr.split("decoding stopped at ")[1].split()[0])
    # Past the gap: later than the frames read at the average rate would say.
    assert read / SCENE.fps + GAP_S - 0.5 <= stopped <= read / SCENE.fps + GAP_S + 0.5, proc.stderr


def test_an_mkv_whose_times_start_late_is_whole_and_dated_by_its_length(gapped, tmp_path):
    """A Matroska file whose timestamps start at 10 h (a remux that kept a long
    recording's times, ffmpeg -copyts) states a Duration of 10 h plus its length:
    it is not reported truncated, and its events are dated from its own length
    before the file's time, not 10 h earlier. Cut in half, it still is truncated."""
    late = tmp_path / "late.mkv"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(gapped["plain"]), "-c", "copy",
                    "-output_ts_offset", "36000", str(late)], check=True, timeout=60)
    proc = scan(late, tmp_path / "rec")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "rec")
    assert 5.5 <= ev["start_offset_s"] <= 7.0
    started = datetime.fromisoformat(ev["start"]).timestamp()
    assert late.stat().st_mtime - SCENE.duration_s - 5 <= started <= late.stat().st_mtime, ev["start"]
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(late.read_bytes()[:late.stat().st_size // 2])
    proc = scan(cut, tmp_path / "rec2")
    assert proc.returncode == 0 and "the file looks truncated" in proc.stderr, proc.stderr
    assert float(proc.stderr.split("decoding stopped at ")[1].split()[0]) < SCENE.duration_s


def _reordered_kind(src: Path, d: Path, kind: str) -> Path:
    """Files whose containers keep no true presentation times for B-frames: an AVI
    as Xvid writes it ("packed" B-frames: a P- and a B-frame in one chunk, an empty
    one after, like old DVRs' and capture tools' files), Xvid's packed B-frames in
    MKV, and H.264 with B-frames in AVI."""
    if kind == "h264-b.avi":
        # At 25 fps, analysed at 15: the frames left undecoded between (sources.undecoded)
        # come with their packets' times, in another order again.
        args = ["-vf", "fps=25", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2"]
    else:
        if not has_encoder("libxvid"):
            pytest.skip("this ffmpeg has no libxvid encoder")
        args = ["-c:v", "libxvid", "-bf", "2", "-q:v", "4"]
    dst = d / kind
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *args, str(dst)], check=True, timeout=120)
    return dst


@pytest.mark.parametrize("kind,jobs", [("packed-xvid.avi", "1"), ("packed-xvid.avi", "2"),
                                       ("packed-xvid.mkv", "1"), ("h264-b.avi", "1"), ("h264-b.avi", "2")])
def test_pictures_shown_out_of_their_timestamps_order_keep_the_files_length(gapped, tmp_path, kind, jobs):
    """Such files give their pictures timestamps out of order (1, 4, 6, 5, ...); counting
    each step back as a frame interval timed the walker at 6-8 s late (12.4 s in
    the packed AVI, 7.4 s with H.264 in AVI, 12.5 s in the MKV) and the 10 s file as up to
    20 s long. Where decode timestamps are in order they are used (FFmpeg's best-effort
    timestamp, as players use); a picture a little behind the others keeps the rest at
    their own times."""
    path = _reordered_kind(gapped["plain"], tmp_path, kind)
    proc = scan(path, tmp_path / "rec", "--jobs", jobs, env=PARALLEL_ANY_LENGTH)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "rec")
    assert 5.5 <= ev["start_offset_s"] <= 7.0, ev
    assert ev["end_offset_s"] <= SCENE.duration_s, ev
    # Times and frame numbers agree, to a few frames.
    fps = 25 if kind == "h264-b.avi" else SCENE.fps
    assert abs(ev["start_offset_s"] - ev["start_frame"] / fps) <= 0.25, ev
    assert abs(ev["end_offset_s"] - ev["end_frame"] / fps) <= 0.25, ev


def test_an_avi_that_counts_frames_not_sent_is_whole(gapped, tmp_path):
    """An AVI made at a higher rate than its source (ffmpeg -r 25 of a 15 fps scene)
    or a capture that dropped frames has index entries with no picture: its header
    counts 249 frames where 150 come. It was reported truncated ("99 of 249 frames
    could not be decoded ... decoding stopped at 10.0 s"); cut in half, it still is."""
    avi = tmp_path / "r25.avi"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(gapped["plain"]), "-r", "25", "-c:v", "libx264",
                    "-preset", "veryfast", str(avi)], check=True, timeout=120)
    proc = scan(avi, tmp_path / "rec")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    [ev] = events_json(tmp_path / "rec")
    assert 5.5 <= ev["start_offset_s"] <= 7.0, ev
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[:avi.stat().st_size // 2])
    proc = scan(cut, tmp_path / "rec2")
    assert proc.returncode == 0 and "the file looks truncated" in proc.stderr, proc.stderr


def test_a_ts_recording_that_starts_mid_gop_counts_only_the_pictures_it_shows(gapped, tmp_path):
    """A DVR's or restreamer's .ts segment starts wherever the recording did: the
    pictures before its first keyframe cannot be decoded. Its duration counts them,
    so the end was reported missing ("the file looks truncated") by their length;
    and those left undecoded by detection.fps were counted as frames read."""
    ts = tmp_path / "whole.ts"
    # 30 fps, as cameras record: detection.fps 15 leaves out every other disposable B-frame.
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(gapped["plain"]), "-vf", "fps=30", "-c:v",
                    "libx264", "-preset", "veryfast", "-g", "90", str(ts)], check=True, timeout=120)
    data = ts.read_bytes()
    packets = len(data) // 188
    late = tmp_path / "late.ts"
    late.write_bytes(data[(packets * 2 // 5) * 188:])   # from 40% in, on a TS packet
    # ffprobe as the referee: the frames a decoder gives, and the first one's time.
    probe = subprocess.run(["ffprobe", "-v", "quiet", "-select_streams", "v", "-show_entries", "frame=pts_time",
                            "-of", "csv=p=0", str(late)], capture_output=True, text=True, check=True).stdout.split()
    first_s = float(probe[0])
    for jobs in ("1", "2"):
        rec = tmp_path / f"rec{jobs}"
        proc = scan(late, rec, "--jobs", jobs)
        assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
        # The B-frames before the first keyframe are not frames read from the file:
        # counting them put every frame number late.
        assert f"scanned {len(probe)} frames" in proc.stdout, (jobs, proc.stdout)
        [ev] = events_json(rec)
        # The walker's event at its own picture's time, counted from the first frame.
        assert ev["start_offset_s"] == pytest.approx(float(probe[ev["start_frame"]]) - first_s, abs=0.01), ev


def test_a_real_packed_xvid_file_ends_where_it_ends(tmp_path):
    """The real camera file that showed it: 30 s of a motorway (MPEG-4 Part 2 with
    packed B-frames in AVI), busy from start to end; its one event was 49.5 s long."""
    path = footage("motorway_timestamp/video02.avi")
    proc = scan(path, tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr
    events = events_json(tmp_path / "rec")
    assert events and all(ev["end_offset_s"] <= 30.0 for ev in events), events
    last = max(events, key=lambda ev: ev["end_frame"])
    assert abs(last["end_offset_s"] - last["end_frame"] / 25) <= 0.25, last


def test_the_clock_takes_decode_timestamps_when_pts_go_back_more_often():
    """Unit: libavcodec's best-effort rule. Pictures of a packed-B-frame AVI come
    with pts 1, 4, 6, 5, 7, 9, 8, ... and dts 3, 4, 5, 6, ...: from the first pts
    that goes back, the dts count, and the clock keeps the file's rate. A file whose
    pts only go back at a join (its dts too) keeps its pts."""
    from fractions import Fraction
    packed = FileClock(Fraction(1, 25), 25.0)
    pts = [1, 4, 6] + [p for k in range(5, 300, 3) for p in (k, k + 2, k + 1)]
    times = [packed.time(p, i, i + 3) for i, p in enumerate(pts)]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] == pytest.approx((len(pts) - 1) / 25 + 0.12)   # 3 frames ahead from the start
    # Reordered without usable decode timestamps (pts and dts alike, as Xvid's packed
    # B-frames in MKV): each picture a little behind is placed just after the one before.
    remuxed = FileClock(Fraction(1, 1000), 25.0)
    order = [0] + [p for k in range(1, 298, 2) for p in (k + 1, k)]
    times = [remuxed.time(p * 40, i, p * 40) for i, p in enumerate(order)]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert all(abs(t - i / 25) <= 1.25 / 25 for i, t in enumerate(times))
    joined = FileClock(Fraction(1, 1000), 10.0)
    assert [joined.time(p, i, p - 200) for i, p in enumerate([5000, 5100, 5200, 100, 200])] == \
        pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_the_clock_falls_back_to_the_frame_interval():
    """Unit: timestamps missing, repeated, going back or jumping past MAX_GAP_S
    count one frame interval per frame; later timestamps count from there."""
    from fractions import Fraction
    c = FileClock(Fraction(1, 1000), 10.0)
    assert c.time(5000, 0) == 0.0
    assert c.time(5100, 1) == pytest.approx(0.1)
    assert c.time(8100, 2) == pytest.approx(3.1)           # a 3 s gap is time that passed
    assert c.time(None, 3) == pytest.approx(3.2)           # no timestamp: one interval
    assert c.time(8300, 4) == pytest.approx(3.3)           # counted from the last frame with one
    assert c.time(8300, 5) == pytest.approx(3.4)           # repeated
    assert c.time(100, 6) == pytest.approx(3.5)            # backwards (a reset)
    assert c.time(200, 7) == pytest.approx(3.6)            # ... and on from the reset
    far = 200 + int((MAX_GAP_S + 1) * 1000)
    assert c.time(far, 8) == pytest.approx(3.7)            # a jump past MAX_GAP_S
    assert c.time(None, 10) == pytest.approx(3.9)          # a damaged frame between
    assert FileClock(None, 25.0).time(None, 50) == 2.0     # a raw stream: index / fps
