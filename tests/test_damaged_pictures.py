"""Bit errors in the video are not motion (media.damage).

A packet with bit errors still decodes: FFmpeg patches the broken part of the
picture and flags it, and the pictures predicted from it carry the patch until
the next keyframe. Here a still scene (ffmpeg's test card with sensor noise,
H.264 without B-frames and a keyframe every 2 s, as an IP camera records) has
random bytes written over the slice data of three P-frames before someone
crosses it at 7-9 s. Before, the patch started an event at 4.4 s that ran into
the visit; now the only event is the visit. Through `scan` (the file) and `run`
(the same file as a live MPEG-TS stream over loopback).

MPEG-TS that lost some of its 188-byte packets on the way is tested in H.264 and
HEVC (with and without B-frames): FFmpeg's HEVC decoder flags nothing, and only the
demuxer's flag on the packet tells the damage (before, a false event in HEVC).
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from conftest import events_json, mw
from live_run import run_until_an_event_ends
from motionwatch.media.damage import DamageRun
from ts_server import TsServer, remux_to_ts

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to make the video")

FPS = 25
SECONDS = 12
VISIT_S = (7.0, 9.0)
DAMAGE_S = (2.5, 4.3, 5.5)   # P-frames whose packets get bit errors
SAID = "damaged video at frame"


# ffmpeg's encoder options per codec: no B-frames, as IP cameras send.
ENCODERS = {"h264": ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
            "hevc": ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error:bframes=0"],
            # ... and with B-frames, as x265 and some cameras send
            "hevc-b": ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error:bframes=3"]}


def still_scene_with_a_visit(d: Path, codec: str = "h264") -> Path:
    still = d / "card.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=640x480:r=1:d=1",
                    "-frames:v", "1", str(still)], check=True)
    visit = d / "visit.mp4"
    start, end = VISIT_S
    graph = (f"[0]noise=alls=4:allf=t:all_seed=3[bg];color=c=white:s=80x140:r={FPS}:d={SECONDS}[b];"
             f"[bg][b]overlay=x='if(between(t,{start},{end}),(t-{start})*320,-200)':y=200,format=yuv420p")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-r", str(FPS), "-i", str(still), "-t", str(SECONDS),
                    "-filter_complex", graph, *ENCODERS[codec],
                    "-g", str(2 * FPS), "-b:v", "1500k", str(visit)], check=True)
    return visit


def with_bit_errors(src: Path, dst: Path) -> None:
    """`src` remuxed with the slice data of the first P-frame at or after each of
    DAMAGE_S overwritten from a third of the packet on (fixed bytes: the same every run)."""
    rnd = random.Random(1)
    todo = list(DAMAGE_S)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for pkt in inp.demux(stream):
            if pkt.dts is None:
                continue
            if todo and not pkt.is_keyframe and pkt.pts * pkt.time_base >= todo[0]:
                todo.pop(0)
                data = bytearray(bytes(pkt))
                cut = len(data) // 3
                data[cut:] = rnd.randbytes(len(data) - cut)
                bad = av.Packet(bytes(data))
                bad.pts, bad.dts, bad.time_base = pkt.pts, pkt.dts, pkt.time_base
                pkt = bad
            pkt.stream = copy
            out.mux(pkt)


def grey_pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.thread_count = 1
        return [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("damaged")
    clean = still_scene_with_a_visit(d)
    bad = d / "damaged.mp4"
    with_bit_errors(clean, bad)
    # The damage is there to see: from each damaged picture on, patches that differ
    # from the clean file's picture by tens of grey levels; before the first, none.
    diff = [int(np.abs(a - b).max()) for a, b in zip(grey_pictures(clean), grey_pictures(bad))]
    at = [round(t * FPS) for t in DAMAGE_S]
    assert all(max(diff[i:i + 3]) > 40 for i in at) and max(diff[:at[0]]) == 0, diff
    return bad


def scan_finds_only_the_visit(work: Path, name: str) -> None:
    """`scan NAME` in `work` as a user runs it (relative path, defaults): the visit is
    the one event, and the damage is said."""
    proc = mw("scan", name, "--no-progress", cwd=work, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (ev,) = events_json(work / "recordings")
    assert VISIT_S[0] - 0.2 <= ev["start_offset_s"] <= VISIT_S[0] + 0.6
    assert ev["end_offset_s"] <= VISIT_S[1] + 0.6
    assert SAID in proc.stderr


def test_a_file_with_bit_errors_has_only_the_visit_as_event(damaged, tmp_path):
    shutil.copy(damaged, tmp_path / "damaged.mp4")
    scan_finds_only_the_visit(tmp_path, "damaged.mp4")


def test_a_stream_with_bit_errors_has_only_the_visit_as_event(damaged, tmp_path):
    server = TsServer(remux_to_ts(damaged), SECONDS)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close, pre_roll_seconds=1.0,
                                  post_roll_seconds=0.5, gap_seconds=0.5)
    (ev,) = events_json(rec)   # the first event to end: the damage's, before
    # A live event's times count from the first picture the run got, which the
    # server's pacing puts up to a second off the file's own (6.2 s here, against
    # 3.65 for the damage's event).
    assert ev["start_offset_s"] >= VISIT_S[0] - 1.5
    assert ev["end_offset_s"] - ev["start_offset_s"] <= VISIT_S[1] - VISIT_S[0] + 0.8
    assert SAID in (tmp_path / "run.log").read_text()   # RunProcess's log


@pytest.fixture(scope="module")
def visits(damaged, tmp_path_factory) -> dict[str, Path]:
    """The undamaged scene per codec."""
    return {"h264": damaged.parent / "visit.mp4",
            **{codec: still_scene_with_a_visit(tmp_path_factory.mktemp(codec), codec) for codec in ("hevc", "hevc-b")}}


def losing_packets(mp4: Path, dst: Path) -> Path:
    """The video as MPEG-TS of which 0.4% of the 188-byte packets between 2 and 6 s
    never arrived (the same ones every run)."""
    data = remux_to_ts(mp4).read_bytes()
    count = len(data) // 188
    rnd = random.Random(3)
    # The file's bytes run about evenly through its 12 s: packets 2/12 to 6/12 of the way are 2-6 s.
    dst.write_bytes(b"".join(data[i * 188:(i + 1) * 188] for i in range(count)
                             if not (count // 6 <= i < count // 2 and rnd.random() < 0.004)))
    return dst


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_stream_losing_packets_has_only_the_visit_as_event(visits, codec, tmp_path):
    """MPEG-TS over a lossy link (UDP multicast, a restreamer dropping data): pictures
    come in truncated. Before, in H.264 that started an event at 2.1 s with 40% of
    the picture changed, joined to the visit, and in HEVC a false event before the
    visit; now the visit alone is an event."""
    server = TsServer(losing_packets(visits[codec], tmp_path / "lossy.ts"), SECONDS)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close, pre_roll_seconds=1.0,
                                  post_roll_seconds=0.5, gap_seconds=0.5)
    (ev,) = events_json(rec)   # the first event to end: the loss's, before
    assert ev["start_offset_s"] >= VISIT_S[0] - 1.5   # as for the bit errors above
    assert ev["end_offset_s"] - ev["start_offset_s"] <= VISIT_S[1] - VISIT_S[0] + 0.8
    assert SAID in (tmp_path / "run.log").read_text()


@pytest.mark.parametrize("codec", ["h264", "hevc", "hevc-b"])
def test_a_ts_recording_that_lost_packets_has_only_the_visit_as_event(visits, codec, tmp_path):
    """The same loss in a recording (a DVR's .ts, a capture of the stream), scanned."""
    losing_packets(visits[codec], tmp_path / "lossy.ts")
    scan_finds_only_the_visit(tmp_path, "lossy.ts")


def test_tune_leaves_damaged_pictures_out_as_run_does(damaged, tmp_path):
    """`tune` lists the events `run` would record: the visit only."""
    proc = mw("tune", str(damaged), "--out", str(tmp_path / "plot.png"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    starts = [float(m) for m in re.findall(r"event\s+([\d.]+) s", proc.stdout)]
    assert len(starts) == 1 and VISIT_S[0] - 0.2 <= starts[0] <= VISIT_S[0] + 0.6, proc.stdout


def test_pictures_shown_after_a_keyframe_but_predicted_from_a_damaged_one_are_damaged():
    """media.damage alone, on packets and pictures as a decoder with B-frames hands them
    over: the keyframe shown at 4.00 s was decoded before the damaged P-frame of 4.20 s
    (flagged by the demuxer on the packet before it), the B-frames shown between them
    after it. Before, the keyframe ended the damage, and the B-frames, predicted from
    the damaged picture, were analysed: a false event in a real HEVC stream."""
    def packet(pts, corrupt=False, key=False):
        return SimpleNamespace(size=1000, pts=pts, is_corrupt=corrupt, is_keyframe=key)

    def picture(pts, key=False):
        return SimpleNamespace(pts=pts, is_corrupt=False, key_frame=key)

    run = DamageRun(25)
    for pts, corrupt, key in ((88, False, False), (100, False, True), (96, True, False), (105, False, False)):
        run.arrived(packet(pts, corrupt, key))
    assert run.damaged(picture(100, key=True)) is False   # whole: decoded before the damage
    for pts in (101, 102, 103, 104):
        run.arrived(packet(pts))
        assert run.damaged(picture(pts)) is True, pts
    assert run.damaged(picture(105)) is True
    run.arrived(packet(150, key=True))   # a keyframe decoded after the damage ends it
    assert run.damaged(picture(150, key=True)) is False
    assert run.damaged(picture(151)) is False
