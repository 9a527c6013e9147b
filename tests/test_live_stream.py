"""Live H.264 streams over loopback against a real `motionwatch run`: the clip is
muxed from the compressed pre-roll ring (stream copy), and its frames are the
source's own, bit for bit; a camera that changes resolution mid-stream; a URL
that answers with a web page says what came back.

The streams are real MPEG-TS over HTTP on loopback, the way many IP cameras and
restreamers serve them: a small threaded server sends the file's bytes paced at
its own length, to each client (`TsServer`); ffmpeg writes the sources and
referees. motionwatch itself uses no ffmpeg program.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import av
import pytest

from conftest import count_sleeps, events_json, mw
from live_run import RunProcess, run_until_an_event_ends, write_config
from rtsp_camera import jpeg_mov, rtsp_server_runs, start_rtsp, stop_rtsp
from support.pictures import picture_hash
from ts_server import TsServer
from motionwatch.sources.scene import Scene, Walker, write_h264

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to serve the stream")

FPS = 25
VISIT = Scene(width=320, height=240, fps=FPS, duration_s=9, seed=21, noise=4.0,
              walkers=(Walker(3.5, 2.5, height=0.6),))


def to_ts(mp4: Path) -> Path:
    ts = mp4.with_suffix(".ts")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", "-bsf:v", "h264_mp4toannexb",
                    "-f", "mpegts", str(ts)], check=True)
    return ts


def to_hevc(mp4: Path) -> Path:
    """The MP4 re-encoded as HEVC (a GOP a second, no B-frames, as cameras send it)."""
    hevc = mp4.with_name(mp4.stem + "-hevc.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c:v", "libx265", "-preset", "ultrafast",
                    "-x265-params", f"log-level=none:keyint={FPS}:bframes=0", "-tag:v", "hvc1", str(hevc)],
                   check=True)
    return hevc


def frame_hashes(path: Path) -> list[str]:
    """The fingerprint of every decoded picture (support.pictures), in display order."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(picture_hash(f))
    return out


def is_run_of(got: list[str], src: list[str]) -> bool:
    """Whether `got` is a run of consecutive pictures of `src` (a still scene repeats
    pictures, so the run may start at any copy of its first)."""
    return any(src[i:i + len(got)] == got for i, h in enumerate(src) if h == got[0])


def keyframe_pictures(path: Path) -> set[str]:
    with av.open(str(path)) as c:
        return {picture_hash(f) for f in c.decode(video=0) if f.key_frame}


@pytest.mark.parametrize("tags", [True, False], ids=["camera-tagged", "untagged"])
def test_live_h264_clip_is_the_streams_own_frames(tmp_path, tags):
    source = tmp_path / "visit.mp4"
    write_h264(VISIT, source, 400_000, FPS, camera_tags=tags)
    server = TsServer(to_ts(source), VISIT.duration_s)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close, pre_roll_seconds=1.0,
                                  post_roll_seconds=1.0, gap_seconds=1.0)
    (ev,) = events_json(rec)
    assert ev["clip_copied"] is True and ev["clip_format"] == "h264"
    clip = rec / ev["clip"]
    got, src = frame_hashes(clip), frame_hashes(source)
    assert is_run_of(got, src), "the clip's frames are not a run of the stream's own"
    assert got[0] in keyframe_pictures(source), "a stream-copy clip starts on a keyframe"
    # Pre-roll, the visit and post-roll: at least the event plus most of both rolls.
    event_s = ev["end_offset_s"] - ev["start_offset_s"]
    assert len(got) / FPS >= event_s + 1.0
    assert ev["clip_seconds"] == pytest.approx(len(got) / FPS, abs=0.1)
    with av.open(str(clip)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


# MPEG-TS times are 33 bits of a 90 kHz clock: they wrap every 26.5 hours, so a TS
# camera watched for months wraps daily. The offset puts the wrap 4 s into VISIT,
# while its walker is in view (ffmpeg's mpegts muxer adds its 1.4 s mux delay).
TS_WRAP_S = 2 ** 33 / 90_000
WRAP_AT_S = 4.0


def test_a_ts_cameras_clock_wrapping_during_a_visit_keeps_the_event_and_its_clip_whole(tmp_path):
    """The 33-bit clock wraps while someone is in view: one event of the visit's
    length, its clip still the stream's own frames across the wrap."""
    source = tmp_path / "visit.mp4"
    write_h264(VISIT, source, 400_000, FPS)
    ts = tmp_path / "wrap.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c", "copy", "-bsf:v", "h264_mp4toannexb",
                    "-f", "mpegts", "-output_ts_offset", f"{TS_WRAP_S - WRAP_AT_S - 1.4:.3f}", str(ts)], check=True)
    server = TsServer(ts, VISIT.duration_s)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close, pre_roll_seconds=1.0,
                                  post_roll_seconds=1.0, gap_seconds=1.0)
    assert_whole_across_the_wrap(rec, source)


@pytest.mark.skipif(not rtsp_server_runs(), reason="needs GStreamer's RTSP server for /usr/bin/python3 "
                    "(apt: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
def test_an_rtsp_cameras_clock_wrapping_during_a_visit_keeps_the_event_and_its_clip_whole(tmp_path):
    """An RTSP camera's RTP clock (32 bits at 90 kHz) wraps every 13 hours; here
    while someone is in view."""
    source = tmp_path / "visit.mp4"
    write_h264(VISIT, source, 400_000, FPS)
    server, port = start_rtsp(source, rtp_timestamp_offset=2 ** 32 - round(WRAP_AT_S * 90_000))
    rec = run_until_an_event_ends(tmp_path, f"rtsp://127.0.0.1:{port}/cam", lambda: stop_rtsp(server),
                                  pre_roll_seconds=1.0, post_roll_seconds=1.0, gap_seconds=1.0)
    assert_whole_across_the_wrap(rec, source)


def assert_whole_across_the_wrap(rec: Path, source: Path) -> None:
    (ev,) = events_json(rec)
    walker = VISIT.walkers[0]
    assert ev["start_offset_s"] <= WRAP_AT_S <= ev["end_offset_s"], ev
    assert 1.0 <= ev["end_offset_s"] - ev["start_offset_s"] <= walker.duration_s + 2.0, ev
    assert ev["clip_copied"] is True
    got, src = frame_hashes(rec / ev["clip"]), frame_hashes(source)
    assert is_run_of(got, src), "the clip's frames are not a run of the stream's own"
    assert len(got) / FPS >= ev["end_offset_s"] - ev["start_offset_s"] + 1.0
    assert ev["clip_seconds"] == pytest.approx(len(got) / FPS, abs=0.1)


@pytest.mark.parametrize("clip_codec", ["auto", "h264"], ids=["stream-copy", "encoded"])
def test_camera_that_changes_resolution_mid_stream(tmp_path, clip_codec):
    """Two sizes back to back in one MPEG-TS stream: the background is re-learned at
    the new size and someone walking by afterwards is still an event, with a clip
    that is the new size in its header as well as in its pictures."""
    parts = []
    for scene, path in ((Scene(width=320, height=240, fps=FPS, duration_s=4, seed=3, noise=3.0), "a.mp4"),
                        (Scene(width=480, height=360, fps=FPS, duration_s=8, seed=4, noise=3.0,
                               walkers=(Walker(3.0, 2.5, height=0.6),)), "b.mp4")):
        write_h264(scene, tmp_path / path, 400_000, FPS)
        parts.append(to_ts(tmp_path / path).read_bytes())
    both = tmp_path / "both.ts"
    both.write_bytes(b"".join(parts))
    server = TsServer(both, 12.0)
    rec = run_until_an_event_ends(tmp_path, server.url, server.close,
                                  first=r"picture size changed from 320x240 to 480x360", clip_codec=clip_codec)
    evs = events_json(rec)
    assert len(evs) == 1 and evs[0]["frame_size"] == [480, 360]
    clip = rec / evs[0]["clip"]
    with av.open(str(clip)) as c:
        frames = list(c.decode(video=0))
    assert frames and {(f.width, f.height) for f in frames} == {(480, 360)}
    # ffprobe reads the size from the clip's header (the track and its avcC), which is
    # what a browser lays the player out by: it must be the new size, not the stream's first.
    assert header_size(clip) == (480, 360)


def header_size(clip: Path) -> tuple[int, int]:
    """(width, height) that ffprobe reads from the clip's stream header, without decoding."""
    out = subprocess.run(["ffprobe", "-v", "error", "-nofind_stream_info", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "csv=p=0", str(clip)],
                         capture_output=True, text=True, check=True).stdout.strip()
    w, h = out.split(",")
    return int(w), int(h)


@pytest.mark.skipif(not rtsp_server_runs(), reason="needs GStreamer's RTSP server for /usr/bin/python3 "
                    "(apt: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_rtsp_camera_cut_and_restored(tmp_path, codec):
    """A real RTSP camera (GStreamer's server) on loopback, H.264 or HEVC (as many
    newer cameras send): someone walks by and the event's clip is the stream's own
    frames; the server is killed mid-stream (the camera is lost) and started again
    on the same port: the camera is found again and the next visit is recorded too."""
    source = tmp_path / "visit.mp4"
    write_h264(Scene(width=320, height=240, fps=FPS, duration_s=14, seed=21, noise=4.0,
                     walkers=(Walker(4.0, 2.5, height=0.6),)), source, 400_000, FPS)
    if codec == "hevc":
        source = to_hevc(source)
    server, port = start_rtsp(source, codec=codec)
    rec = tmp_path / "rec"
    cfg = write_config(tmp_path / "c.yaml", rec, [{"name": "gate", "source": f"rtsp://127.0.0.1:{port}/cam",
                                                   "timeout_seconds": 3.0}],
                       events={"pre_roll_seconds": 1.0, "post_roll_seconds": 1.0})
    run = RunProcess(tmp_path, "--config", str(cfg))
    try:
        run.wait_for(r"gate: event \w+ ended", timeout=60)
        stop_rtsp(server)                       # cut: the camera goes away mid-stream
        run.wait_for(r"gate: camera lost", timeout=30)
        server, _ = start_rtsp(source, port, codec=codec)   # restored on the same address
        run.wait_for(r"gate: camera found again", timeout=60)
        run.wait_for(r"gate: event \w+ ended", timeout=60, count=2)
    finally:
        code = run.stop()
        stop_rtsp(server)
    assert code == 0 and "Traceback" not in run.log, run.log
    evs = events_json(rec)
    assert len(evs) == 2, run.log
    src = frame_hashes(source)
    for ev in evs:
        assert ev["clip_copied"] is True and ev["clip_format"] == codec
        got = frame_hashes(rec / ev["clip"])
        assert is_run_of(got, src), "the clip's frames are not a run of the stream's own"
        assert len(got) / FPS >= ev["end_offset_s"] - ev["start_offset_s"] + 1.0


@pytest.mark.skipif(not rtsp_server_runs(), reason="needs GStreamer's RTSP server for /usr/bin/python3 "
                    "(apt: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
def test_an_rtsp_camera_that_refuses_tcp_is_read_over_udp(tmp_path):
    """Some cameras send RTP over UDP only and answer RTP over TCP with 461 Unsupported
    Transport. TCP is asked for first (nothing is lost on a busy network); such a
    camera was never opened ("cannot open stream: protocol not supported", retried for
    ever). Now it is read over UDP, and after it is cut and restored, over UDP again."""
    source = tmp_path / "visit.mp4"
    write_h264(Scene(width=320, height=240, fps=FPS, duration_s=10, seed=21, noise=4.0,
                     walkers=(Walker(3.0, 2.5, height=0.6),)), source, 400_000, FPS)
    server, port = start_rtsp(source, udp_only=True)
    rec = tmp_path / "rec"
    cfg = write_config(tmp_path / "c.yaml", rec, [{"name": "gate", "source": f"rtsp://127.0.0.1:{port}/cam",
                                                   "timeout_seconds": 3.0}])
    run = RunProcess(tmp_path, "--config", str(cfg))
    try:
        run.wait_for(r"gate: event \w+ ended", timeout=60)
        stop_rtsp(server)
        run.wait_for(r"gate: camera lost", timeout=30)
        server, _ = start_rtsp(source, port, udp_only=True)
        run.wait_for(r"gate: camera found again", timeout=60)
    finally:
        code = run.stop()
        stop_rtsp(server)
    assert code == 0 and "Traceback" not in run.log, run.log
    assert run.log.count("refuses RTP over TCP; reading it over UDP") == 1, run.log   # remembered
    (ev,) = [e for e in events_json(rec) if e["start_offset_s"] < 8.0]
    assert 1.5 <= ev["start_offset_s"] <= 4.5 and ev["clip_copied"] is True   # the visit at 3 s


@pytest.mark.skipif(not rtsp_server_runs(), reason="needs GStreamer's RTSP server for /usr/bin/python3 "
                    "(apt: gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
def test_an_rtsp_jpeg_camera_records_its_visit_and_decodes_only_what_it_analyses(tmp_path):
    """An MJPEG stream FFmpeg opens (RTSP JPEG here; a V4L2 camera's MJPEG mode the
    same way) is not decoded in full on the reader thread: its JPEGs are handed out,
    and only an analysed frame's grey is decoded, reduced (as the MJPEG-over-HTTP
    reader does). A real `run` records the visit with an H.264 clip."""
    from motionwatch.media.jpeg import JpegFrame
    from motionwatch.sources.base import SourceOptions
    from motionwatch.sources.pyav import AvLiveSource
    mp4 = tmp_path / "visit.mp4"
    write_h264(Scene(width=320, height=240, fps=FPS, duration_s=14, seed=21, noise=4.0,
                     walkers=(Walker(4.0, 2.5, height=0.6),)), mp4, 400_000, FPS)
    source = jpeg_mov(mp4, tmp_path / "visit.mov")
    server, port = start_rtsp(source, codec="mjpeg")
    url = f"rtsp://127.0.0.1:{port}/cam"
    try:
        cam = AvLiveSource(url, SourceOptions(gray_on_demand=True, detect_width=160))
        cam.open()
        try:
            frames = [cam.read(10.0) for _ in range(12)]
        finally:
            cam.close()
        assert all(isinstance(f, JpegFrame) for f in frames), frames
        for f in frames[::2]:
            assert f.gray.shape == (120, 160)     # libjpeg's 1/2 scale: the detection width
        assert not any(f.gray_decoded or f.decoded for f in frames[1::2])
        rec = run_until_an_event_ends(tmp_path, url, lambda: None, pre_roll_seconds=1.0, post_roll_seconds=1.0)
    finally:
        stop_rtsp(server)
    (ev,) = events_json(rec)
    assert ev["clip_format"] == "h264" and not ev.get("clip_copied") and ev["frame_size"] == [320, 240]
    got = frame_hashes(rec / ev["clip"])
    assert len(got) / FPS >= ev["end_offset_s"] - ev["start_offset_s"] + 1.0


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body>Camera login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_url_that_answers_a_web_page_says_what_came_back(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/video"
        p = mw("run", "--source", url, "--recordings", str(tmp_path / "rec"), timeout=60)
    finally:
        server.shutdown()
    assert p.returncode == 1 and "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "HTTP 200" in line and "text/html" in line and "no video stream" in line, p.stderr


# ffmpeg's HLS muxer carries the MPEG-TS continuity counters on from segment to
# segment; its segment muxer starts each segment's at 0, as some packagers do.
SEGMENTERS = {"hls": ["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"],
              "segment": ["-f", "segment", "-segment_time", "1", "-segment_format", "mpegts",
                          "-segment_list_type", "m3u8", "-segment_list"]}


@pytest.mark.parametrize("segmenter", SEGMENTERS)
def test_hls_stream_is_watched_and_its_clip_copied(tmp_path, segmenter):
    """An HLS playlist of H.264 segments over HTTP (how many NVRs and restreamers publish).

    Its frames arrive in bursts, a segment at a time. With detection.fps scheduled by
    arrival time alone, most of a burst went unanalysed and this visit was missed;
    with frames timed by their arrival, the event lasted a few milliseconds. They
    are handed on at the pace of their timestamps now, so the event spans the visit.
    Segments whose continuity counters start again are not damage (FFmpeg flags the
    packet at each start as if TS packets were lost): taken for it, they hid every
    segment's pictures."""
    source = tmp_path / "visit.mp4"
    write_h264(VISIT, source, 400_000, FPS)
    hls = tmp_path / "hls"
    hls.mkdir()
    out = [str(hls / "index.m3u8")] + ([str(hls / "seg%03d.ts")] if segmenter == "segment" else [])
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-c", "copy", *SEGMENTERS[segmenter], *out],
                   check=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kw):
            super().__init__(*args, directory=str(hls), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.m3u8"
    rec = run_until_an_event_ends(tmp_path, url, server.shutdown)
    (ev,) = events_json(rec)
    assert ev["clip_copied"] is True
    walker = VISIT.walkers[0]
    assert ev["end_offset_s"] - ev["start_offset_s"] >= 0.6 * walker.duration_s, ev
    assert ev["frames_with_motion"] >= 0.6 * walker.duration_s * 15, ev   # detection.fps 15
    got, src = frame_hashes(rec / ev["clip"]), frame_hashes(source)
    assert is_run_of(got, src)


@pytest.mark.parametrize("size,batched", [((320, 240), True), ((1920, 1080), False)], ids=["small", "1080p"])
def test_a_live_cameras_small_pictures_reach_the_loop_in_batches_and_large_ones_do_not(tmp_path, size, batched):
    """Decoded pictures kept for a batch pin the decoder's buffers: a small camera's
    wait for one (the loop sleeps once for several analysed frames), a 1080p camera's
    (3 MB each) are handed out as they come."""
    from motionwatch.sources import open_source
    from motionwatch.sources.base import LIVE_BATCH_S, SourceOptions
    scene = Scene(width=size[0], height=size[1], fps=FPS, duration_s=3, seed=5, noise=3.0)
    write_h264(scene, tmp_path / "cam.mp4", 2_000_000, FPS)
    server = TsServer(to_ts(tmp_path / "cam.mp4"), 3.0, loops=2)
    src = open_source(server.url, SourceOptions(timeout=5.0, analysed=lambda index, ts, arrived: True))
    sleeps = count_sleeps(src)
    try:
        assert src.read(5) is not None
        sleeps[0] = 0
        frames = [src.read(5) for _ in range(50)]
    finally:
        src.close()
        server.close()
    assert all(f is not None for f in frames)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert src.batch_s == (LIVE_BATCH_S if batched else 0.0)
    if batched:
        # Kept for the loop; about one sleep per batch of five (what tells batching from
        # none). A loop held up past MAX_HELD frames still gets the newest, so a loaded
        # machine drops a few: CI dropped 2 of 51 on one worker, 3 on two (xdist).
        assert indices == list(range(1, 51)) and src.stats().dropped <= 5
        assert sleeps[0] <= 25, f"the loop slept {sleeps[0]} times for 50 frames"
    else:
        # Each frame wakes the loop (and one that comes before it is taken is dropped
        # for the newer, as before).
        assert sleeps[0] >= 40, f"the loop slept only {sleeps[0]} times for 50 frames"
