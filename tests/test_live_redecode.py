"""A live H.264 stream with detection.fast_decode: detection decodes it without the
deblocking filter, and a saved picture is decoded again at full quality from the
packets of its GOP (media.gop), kept per connection.

The streams are real MPEG-TS over HTTP on loopback (`TsServer`); the referee is a
full decode of the same file by PyAV, compared plane by plane (and the saved JPEGs
against the same encode of that decode).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import av
import pytest

from conftest import events_json
from live_run import run_until_an_event_ends
from support.pictures import picture_hash
from test_live_stream import FPS, VISIT, frame_hashes, is_run_of, rtsp_server_runs, start_rtsp, stop_rtsp, to_ts
from ts_server import TsServer
from motionwatch.media import gop
from motionwatch.sinks.recorder import encode_jpeg
from motionwatch.sources import open_source
from motionwatch.sources.scene import Scene, Walker, write_h264

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to write the stream")

JPEG_QUALITY = 90   # recordings.jpeg_quality's default


def full_decode(path: Path) -> dict[int, av.VideoFrame]:
    """Every picture of the file at full quality, by pts."""
    with av.open(str(path)) as c:
        return {f.pts: f for f in c.decode(video=0)}


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    """A noisy 4 s H.264 clip (B-frames, a keyframe a second) as MPEG-TS: the
    deblocking filter changes nearly every picture of it."""
    tmp = tmp_path_factory.mktemp("live-redecode")
    mp4 = tmp / "v.mp4"
    write_h264(Scene(width=320, height=240, fps=FPS, duration_s=4, seed=21, noise=4.0,
                     walkers=(Walker(0.5, 2.5, height=0.6),)), mp4, 150_000, FPS)
    return to_ts(mp4)


def read_live(ts: Path, seconds: float) -> list:
    server = TsServer(ts, seconds)
    try:
        return read_all(server.url)
    finally:
        server.close()


def read_all(url: str, limit: int = 10_000) -> list:
    src = open_source(url, fast_decode=True, timeout=5.0)
    frames = []
    try:
        while len(frames) < limit and (frame := src.read(timeout=3.0)) is not None:
            frames.append(frame)
    finally:
        src.close()
    return frames


def test_live_frames_are_analysed_fast_and_saved_in_full(stream):
    full = full_decode(stream)
    frames = read_live(stream, 4.0)
    assert len(frames) > 50
    # Detection saw the cheaper decode (main decoded live streams in full: this fails there) ...
    differ = sum(picture_hash(f.av_frame) != picture_hash(full[f.pts]) for f in frames)
    assert differ > len(frames) // 2, "the live stream was not decoded without the deblocking filter"
    # ... the live view's look at a frame is that decode and costs it nothing later ...
    f0 = frames[len(frames) // 2]
    assert (f0.glance == f0.av_frame.to_ndarray(format="bgr24")).all()
    # ... and every frame saved is the full decode, bit for bit, B-frames and GOP ends included.
    for f in frames:
        assert picture_hash(f.full_quality()) == picture_hash(full[f.pts]), f
    assert (f0.image == full[f0.pts].to_ndarray(format="bgr24")).all()


def test_a_stream_larger_than_720p_is_analysed_in_full(tmp_path):
    """Above 1280x720 a saved picture's second decode would add its reference pictures
    to the camera's peak memory (18 MB at 1080p): such a stream is decoded in full
    for detection, and its frames are saved as they were analysed."""
    mp4 = tmp_path / "big.mp4"
    write_h264(Scene(width=1440, height=816, fps=FPS, duration_s=1, seed=21, noise=4.0), mp4, 600_000, FPS)
    ts = to_ts(mp4)
    full = full_decode(ts)
    frames = read_live(ts, 1.0)
    assert len(frames) > 10
    for f in frames:
        assert picture_hash(f.av_frame) == picture_hash(full[f.pts]), f
        assert f.redecode is None


@pytest.mark.skipif(not rtsp_server_runs(), reason="needs GStreamer's RTSP server for /usr/bin/python3")
def test_rtsp_frames_are_saved_in_full(tmp_path):
    """RTSP (GStreamer's server): the parameter sets come in the SDP, the timestamps are
    the RTP clock's, so the saved pictures are matched to the file's by content. The
    first packets may come before the clock is known: such a frame (no pts) cannot be
    told apart in a second decode and keeps the analysis decode; warm-up covers it."""
    mp4 = tmp_path / "v.mp4"
    write_h264(Scene(width=320, height=240, fps=FPS, duration_s=4, seed=21, noise=4.0,
                     walkers=(Walker(0.5, 2.5, height=0.6),)), mp4, 150_000, FPS)
    full = {picture_hash(f) for f in full_decode(mp4).values()}
    server, port = start_rtsp(mp4)
    try:
        frames = read_all(f"rtsp://127.0.0.1:{port}/cam", limit=60)
    finally:
        stop_rtsp(server)
    assert len(frames) >= 30
    assert sum(picture_hash(f.av_frame) not in full for f in frames) > len(frames) // 2
    timed = [f for f in frames if f.pts is not None]
    assert len(timed) >= len(frames) - 2
    assert all(picture_hash(f.full_quality()) in full for f in timed)


def test_a_gop_past_the_bound_is_saved_from_the_analysis_decode(stream, monkeypatch, caplog):
    """A GOP that never ends stops being kept: its later frames are saved as detection
    decoded them, with an info line, never an error."""
    monkeypatch.setattr(gop, "MAX_RUN_PACKETS", 10)
    full = full_decode(stream)
    frames = read_live(stream, 4.0)
    analysis = {f.index: picture_hash(f.av_frame) for f in frames}
    with caplog.at_level(logging.INFO, logger="motionwatch"):
        saved = {f.index: picture_hash(f.full_quality()) for f in frames}
    from_full = [i for i in saved if saved[i] == picture_hash(full[frames[i].pts]) != analysis[i]]
    kept_as_is = [i for i in saved if saved[i] == analysis[i] != picture_hash(full[frames[i].pts])]
    assert from_full and kept_as_is and len(from_full) + len(kept_as_is) >= len(frames) - 5
    assert "saved from the analysis decode" in caplog.text and "ERROR" not in caplog.text


def test_a_stream_joined_mid_gop_saves_full_quality_snapshots(tmp_path):
    """A real `run` joins a camera's stream halfway through a GOP: the visit is still
    an event, its clip is the stream's own packets, and its snapshots (first and
    best) are a full-quality decode of their frames, not the analysis decode."""
    source = tmp_path / "visit.mp4"
    write_h264(VISIT, source, 400_000, FPS)
    data = to_ts(source).read_bytes()
    cut = int(len(data) * 1.5 / VISIT.duration_s) // 188 * 188   # 1.5 s in: mid-GOP (a keyframe a second)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(data[cut:])
    server = TsServer(joined, VISIT.duration_s - 1.5)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close, snapshot="both", pre_roll_seconds=1.0,
                                  post_roll_seconds=1.0)
    (ev,) = events_json(rec)
    full = full_decode(source)
    full_jpegs = {encode_jpeg(f.to_ndarray(format="bgr24"), JPEG_QUALITY) for f in full.values()}
    folder = (rec / ev["snapshot"]).parent
    for name in ("first.jpg", "snapshot.jpg"):
        assert (folder / name).read_bytes() in full_jpegs, f"{name} is not a full decode of a frame"
    got, src = frame_hashes(rec / ev["clip"]), frame_hashes(source)
    assert ev["clip_copied"] is True and is_run_of(got, src)


def test_a_picture_size_change_mid_stream_is_saved_in_full(tmp_path):
    """Two sizes back to back in one MPEG-TS stream: frames of both are decoded again
    in full (the new size's parameter sets come in band with its first keyframe)."""
    parts, full = [], set()
    for scene, name in ((Scene(width=320, height=240, fps=FPS, duration_s=3, seed=3, noise=3.0), "a.mp4"),
                        (Scene(width=480, height=360, fps=FPS, duration_s=3, seed=4, noise=3.0,
                               walkers=(Walker(0.5, 2.5, height=0.6),)), "b.mp4")):
        write_h264(scene, tmp_path / name, 400_000, FPS)
        parts.append(to_ts(tmp_path / name).read_bytes())
        full |= {picture_hash(f) for f in full_decode(tmp_path / name).values()}
    both = tmp_path / "both.ts"
    both.write_bytes(b"".join(parts))
    frames = read_live(both, 6.0)
    assert {f.size for f in frames} == {(320, 240), (480, 360)}
    assert all(picture_hash(f.full_quality()) in full for f in frames if f.pts is not None)
