"""A long file decoded by worker processes (sources.parallel): the frames the
detector gets are those of one decode of the whole file, so `scan --jobs 2` of a
lone file records exactly what `--jobs 1` records; a worker killed mid-run or a
Ctrl-C loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from motionwatch.model import detection_size
from motionwatch.media.frames import SmallFrame, UndecodedFrame
from motionwatch.sources import SourceOptions, open_source
from motionwatch.sources import parallel

from conftest import PARALLEL_ANY_LENGTH, events_json, footage, mw, same_events, wait_until

TRAFFIC = "dvrscan_traffic_camera/traffic_camera.mp4"
VTEST = "opencv_vtest/vtest.avi"


def every_third(first: int, stop: int) -> frozenset:
    return frozenset(i for i in range(first, stop) if i % 3 == 0)


def read_all(path: Path, **options) -> tuple[list, object]:
    """Every frame a scan's source hands out, and the (closed) source."""
    src = open_source(str(path), SourceOptions(scan=True, fast_decode=True, **options))
    out = []
    try:
        while (f := src.read()) is not None:
            out.append(f)
        return out, src
    finally:
        src.close()


def small(picture, size):
    return cv2.resize(picture, detection_size(*size, 320), interpolation=cv2.INTER_LINEAR)


def assert_same_pictures(path: Path, due) -> tuple[parallel.ParallelFileSource, int, int]:
    """Frame by frame, the parallel source's analysed pictures are the one-pass decode's,
    shrunk; also how many analysed frames each left undecoded (decoded late, from their
    keyframe: the one-pass source guesses wrong where frames are hidden too)."""
    one, _ = read_all(path, wanted=(lambda i: i in due(i, i + 1)) if due else None)
    many, src = read_all(path, decode_jobs=2, wanted_range=due)
    assert src.parallel
    assert [(f.index, f.pts) for f in many] == [(f.index, f.pts) for f in one]
    compared, late_one, late_many = 0, 0, 0
    for a, b in zip(one, many):
        if due is not None and a.index not in due(a.index, a.index + 1):
            continue
        late_one += isinstance(a, UndecodedFrame)
        late_many += isinstance(b, UndecodedFrame)
        a = a.with_picture() if isinstance(a, UndecodedFrame) else a
        b = b.with_picture() if isinstance(b, UndecodedFrame) else b
        assert ((b.gray if isinstance(b, SmallFrame) else small(b.gray, b.size)) == small(a.gray, a.size)).all(), a.index
        compared += 1
    assert compared >= (len(one) // 3 if due else len(one))
    return src, late_one, late_many


@pytest.fixture
def short_files_in_parallel(monkeypatch):
    """The real clips here are shorter than a scan decodes in parallel by default."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_WORK", 0.0)


@pytest.mark.parametrize("due", [None, every_third], ids=["every frame", "every third"])
def test_a_real_camera_file_in_chunks_gives_the_one_pass_pictures(short_files_in_parallel, due):
    """traffic_camera.mp4: B-frames, BT.709 tags; also with frames left undecoded."""
    path = footage(TRAFFIC)
    src, _, late = assert_same_pictures(path, due)
    assert len(list(src._chunks())) > 1 and late == 0


@pytest.mark.parametrize("max_chunk_s", [parallel.MAX_CHUNK_S, 5.0])
def test_an_open_gop_file_is_not_cut_at_its_recovery_points(short_files_in_parallel, tmp_path, monkeypatch,
                                                            max_chunk_s):
    """x264's open GOPs: every keyframe after the first is a recovery-point I picture
    (flagged a keyframe in the MP4) whose leading B-frames refer to the GOP before.
    Cutting there would change those frames: the file stays one chunk, decoded in
    the scan's own process as it goes once no cut has come for MAX_CHUNK_S."""
    monkeypatch.setattr(parallel, "MAX_CHUNK_S", max_chunk_s)
    path = tmp_path / "open.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=15:d=12",
                    "-f", "lavfi", "-t", "12", "-i", "cellauto=s=320x240:r=15:rule=18",
                    "-filter_complex", "[0][1][0][1]concat=n=4", "-c:v", "libx264", "-bf", "3",
                    "-x264-params", "open-gop=1:keyint=40:min-keyint=10:scenecut=40", str(path)], check=True)
    src, _, _ = assert_same_pictures(path, every_third)
    assert len(list(src._chunks())) == 1


def test_a_file_without_an_index_is_decoded_in_one_pass(short_files_in_parallel, tmp_path):
    path = tmp_path / "stream.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(footage(TRAFFIC)), "-c", "copy", str(path)], check=True)
    src = open_source(str(path), SourceOptions(scan=True, decode_jobs=2))
    try:
        assert not src.parallel    # MPEG-TS seeks land anywhere
        assert src.read() is not None
    finally:
        src.close()


def test_a_real_mpeg4_file_scanned_on_two_jobs_equals_the_one_job_scan(tmp_path):
    """vtest.avi (MS-MPEG-4, 80 s)."""
    shutil.copy2(footage(VTEST), tmp_path / "vtest.avi")
    mw("scan", "vtest.avi", "--jobs", "1", "--recordings", "one", cwd=tmp_path, check=True)
    two = mw("scan", "vtest.avi", "--jobs", "2", "--recordings", "two", cwd=tmp_path, env=PARALLEL_ANY_LENGTH,
             check=True)
    assert "decoding on 2 worker processes" in two.stderr
    assert same_events(tmp_path / "one", tmp_path / "two")


def decode_workers(pid: int) -> list[int]:
    """The decoding worker processes of scan process `pid` (spawned: `spawn_main`)."""
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(int(child))
        except FileNotFoundError:
            pass
    return out


def start_scan(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "motionwatch", "scan", "vtest.avi", "--jobs", "2",
                                 "--recordings", name], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **PARALLEL_ANY_LENGTH})
    return proc, log


def test_a_killed_decoding_worker_loses_nothing(tmp_path):
    """The chunks the dead worker had are decoded by the scan itself: same events."""
    shutil.copy2(footage(VTEST), tmp_path / "vtest.avi")
    mw("scan", "vtest.avi", "--jobs", "1", "--recordings", "one", cwd=tmp_path, check=True)
    proc, log = start_scan(tmp_path, "two")
    try:
        victim = wait_until(lambda: decode_workers(proc.pid), 30, "a decoding worker")[0]
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "a decoding worker failed" in log.read_text(), log.read_text()
    assert same_events(tmp_path / "one", tmp_path / "two"), log.read_text()


def test_ctrl_c_stops_the_decoding_workers_and_keeps_the_open_event_whole(tmp_path):
    shutil.copy2(footage(VTEST), tmp_path / "vtest.avi")
    proc, log = start_scan(tmp_path, "rec")
    try:
        workers = wait_until(lambda: decode_workers(proc.pid), 30, "a decoding worker")
        wait_until(lambda: "started at" in log.read_text(), 60, "the event to start")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in log.read_text() and "Traceback" not in log.read_text()
    [event] = events_json(tmp_path / "rec")
    assert event["end_frame"] > event["start_frame"] and (tmp_path / "rec" / event["snapshot"]).exists()
    time.sleep(0.5)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "a decoding worker outlived the scan"


def test_a_file_whose_edit_list_hides_its_first_frames_is_planned_from_the_true_index(
        short_files_in_parallel, tmp_path, monkeypatch):
    """`ffmpeg -ss 2.5 -c copy` keeps the GOP before the cut and hides its first 63
    frames with an edit list: the packets outnumber the frames, so every chunk after
    the first begins 63 frames earlier than its packets say. The chunks are planned
    again from the true index, and no analysed frame has to be decoded late."""
    path = tmp_path / "cut.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "2.5", "-i", str(footage(TRAFFIC)), "-c", "copy", str(path)],
                   check=True)
    src, late_one, late_many = assert_same_pictures(path, every_third)
    assert src._shift < 0 and late_many <= late_one <= 2
