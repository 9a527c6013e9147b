"""Clips of H.264, HEVC, VP9 and AV1 sources by stream copy (events.clip_codec auto/copy): the
source's own packets, kept compressed in the pre-roll ring and muxed into MP4.

The clips are checked packet by packet against the source: the MD5 of every
packet's data (ffprobe -show_data_hash, an independent referee) must be a
contiguous run of the source's packets that starts on a keyframe at
`clip_start_offset_s`, so the clip is the source, bit for bit, and event.json
says exactly where it sits. Files are tested untagged and tagged like camera
recordings (bt709, tv range). Sources that cannot be copied (AVI, MPEG-4
Part 2, msmpeg4v3) still get an encoded clip. motionwatch itself runs without
the ffmpeg program here (it is taken off the PATH).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from motionwatch.config import CameraConfig, Config, EventsConfig
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sources.scene import Scene, Walker, encode_with_ffmpeg

from conftest import events_json, footage, mw
from web_support import plays_in_chromium

# ffmpeg writes the sources and ffprobe referees; motionwatch runs without either.
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="needs ffmpeg and ffprobe as referees")

FPS = 25
GOP = 25          # a keyframe every second; x264's B-frames on (reordering is what makes cutting hard)
VISIT = Scene(width=320, height=240, fps=FPS, duration_s=14, seed=21, noise=4.0,
              walkers=(Walker(5.0, 3.5, height=0.6),))


CAMERA_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


def write_h264(scene: Scene, path: Path, bitrate: str = "400k", tags: bool = False) -> Path:
    """The scene as H.264 MP4 with a silent audio track (which clips must leave out),
    tagged like a camera's recording (bt709, tv range) when `tags`."""
    assert encode_with_ffmpeg(scene, path, [
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-shortest",
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate, "-g", str(GOP),
        "-pix_fmt", "yuv420p", *(CAMERA_TAGS if tags else []), "-c:a", "aac"]) == 0
    return path


@pytest.fixture
def no_ffmpeg(tmp_path) -> dict:
    """An environment whose PATH has python but neither ffmpeg nor ffprobe."""
    import os
    import sys
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return {**os.environ, "PATH": str(bin_dir)}


def packets(path: Path) -> tuple[list[dict], Fraction, Fraction]:
    """Video packets in file order with their data hash, the stream's time base and
    its first timestamp (seconds)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_data_hash", "MD5",
                          "-show_entries", "packet=pts,flags,data_hash:stream=time_base,start_time",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout)
    st = data["streams"][0]
    return data["packets"], Fraction(st["time_base"]), Fraction(st["start_time"])


def streams(path: Path) -> list[str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def place(clip: Path, source: list[dict], tb: Fraction, t0: Fraction) -> tuple[float, int]:
    """(seconds from the source's first frame to the clip's first packet, its index in the
    source) after checking that the clip's packets are exactly a run of the source's,
    starting on a keyframe."""
    got, _, _ = packets(clip)
    hashes = [p["data_hash"] for p in source]
    run = [p["data_hash"] for p in got]
    start = hashes.index(run[0])
    assert hashes[start:start + len(run)] == run, f"{clip.name} is not a copy of the source's packets"
    assert source[start]["flags"].startswith("K") and got[0]["flags"].startswith("K")
    return float(int(source[start]["pts"]) * tb - t0), start


def shown_seconds(clip: Path) -> float:
    pk, _, _ = packets(clip)
    pts = sorted(int(p["pts"]) for p in pk)
    assert pts == list(range(pts[0], pts[0] + len(pts) * (pts[1] - pts[0]), pts[1] - pts[0])), "holes in the clip"
    return len(pts) / FPS


def checked_cut(ev: dict, recordings: Path, source_file: Path) -> float:
    """The event's single clip was cut from `source_file`, and event.json says where
    it starts and how long it is; returns the clip's start in the source (seconds)."""
    clip = recordings / ev["clip"]
    source, tb, t0 = packets(source_file)
    start_s, _ = place(clip, source, tb, t0)
    assert ev["clip_copied"] is True and ev["clip_start_offset_s"] == pytest.approx(start_s, abs=1e-3)
    assert ev["clip_seconds"] == pytest.approx(shown_seconds(clip), abs=0.02)
    return start_s


def config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mw.yaml"
    p.write_text("cameras:\n  - name: porch\n" + text)
    return p


@pytest.fixture(scope="module", params=["untagged", "camera-tagged"])
def visit(request, tmp_path_factory) -> Path:
    return write_h264(VISIT, tmp_path_factory.mktemp("copy") / f"visit-{request.param}.mp4",
                      tags=request.param == "camera-tagged")


def test_scan_cuts_the_clip_from_the_source_without_reencoding(visit, recordings, tmp_path, no_ffmpeg):
    proc = mw("scan", str(visit), "--recordings", str(recordings), "--config", str(config(tmp_path, "")),
              check=True, env=no_ffmpeg)
    (ev,) = events_json(recordings)
    clip = recordings / ev["clip"]
    assert ev["clip_parts"] == [ev["clip"]] and clip.name == "clip-001.mp4"
    assert ev["clip_format"] == "h264" and ev["clip_copied"] is True and ev["clip_fps"] == FPS
    assert streams(clip) == ["h264,video"]                 # -map 0:v:0: the audio track stays out
    source, tb, t0 = packets(visit)
    start_s, _ = place(clip, source, tb, t0)
    # event.json tells where the clip's first frame sits in the source, and it is
    # the keyframe at or before (first motion - 2 s pre-roll).
    assert ev["clip_start_offset_s"] == pytest.approx(start_s, abs=1e-3)
    assert ev["start_offset_s"] - 2.0 - GOP / FPS < start_s <= ev["start_offset_s"] - 2.0 + 1e-6
    seconds = shown_seconds(clip)
    assert ev["clip_seconds"] == pytest.approx(seconds, abs=0.02)
    _, _, clip_t0 = packets(clip)
    assert clip_t0 == 0   # the first keyframe shows at 0: no edit list hides a frame
    assert start_s + seconds >= ev["end_offset_s"] + 2.0      # the post-roll is all there
    assert start_s + seconds <= ev["end_offset_s"] + 2.0 + 1.0
    with open(clip, "rb") as f:   # faststart: the index first, so browsers play at once
        head = f.read(4096)
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    assert (clip.parent / "snapshot.jpg").is_file() and not list(recordings.rglob(".tmp-*"))
    assert "copy" not in proc.stderr and "WARNING" not in proc.stderr


def test_long_event_is_cut_in_parts_that_join_exactly(visit, recordings, tmp_path):
    cfg = config(tmp_path, "events:\n  max_seconds: 2.0\n  clip_codec: copy\n")
    mw("scan", str(visit), "--recordings", str(recordings), "--config", str(cfg), check=True)
    (ev,) = events_json(recordings)
    parts = [recordings / p for p in ev["clip_parts"]]
    assert [p.name for p in parts] == [f"clip-{i:03d}.mp4" for i in range(1, len(parts) + 1)]
    assert len(parts) >= 4
    source, tb, t0 = packets(visit)
    starts, total = [], 0.0
    for p in parts:
        start_s, index = place(p, source, tb, t0)
        seconds = shown_seconds(p)
        assert seconds <= 2.0 + 1e-6
        if starts:   # each part begins with the packet right after the previous part's last
            assert index == starts[-1][1] + starts[-1][2]
        starts.append((start_s, index, len(packets(p)[0])))
        total += seconds
    assert ev["clip_start_offset_s"] == pytest.approx(starts[0][0], abs=1e-3)
    assert ev["clip_seconds"] == pytest.approx(total, abs=0.05)


def test_vtest_avi_is_encoded_and_explicit_copy_says_why(recordings, tmp_path):
    """msmpeg4v3 in AVI cannot go into an MP4 clip: auto quietly encodes H.264,
    `copy` logs one line naming the reason and encodes too."""
    vtest = footage("opencv_vtest/vtest.avi")
    cfg = config(tmp_path, "events:\n  clip_codec: copy\n  max_seconds: 3.0\n")
    proc = mw("scan", str(vtest), "--recordings", str(recordings), "--config", str(cfg), check=True)
    lines = [ln for ln in proc.stderr.splitlines() if "clip_codec copy" in ln]
    assert len(lines) == 1 and "msmpeg4" in lines[0] and "encoding them instead" in lines[0]
    evs = events_json(recordings)
    assert evs and all(e["clip"] and e["clip_format"] == "h264" and "clip_copied" not in e for e in evs)
    assert streams(recordings / evs[0]["clip"]) == ["h264,video"]


def copies(path: str, events: EventsConfig) -> bool:
    """Whether `path` opened as the capture loop opens it keeps a packet ring for copied clips."""
    cfg = Config(events=events)
    loop = CameraLoop(CameraConfig(name="cam", source=path), cfg, None, None, scan=True)
    src = loop.open()
    try:
        return src.copying
    finally:
        src.close()


def test_auto_encodes_what_it_cannot_copy(tmp_path, caplog):
    """MPEG-4 Part 2 in MP4 (what OpenCV writes) and vtest's msmpeg4v3 AVI: auto
    plans no copy and says nothing; h264 never copies."""
    from motionwatch.sources.scene import write_video
    mp4v = write_video(Scene(width=160, height=120, fps=10, duration_s=1), str(tmp_path / "mp4v.mp4"))
    for path in (mp4v, str(footage("opencv_vtest/vtest.avi"))):
        with caplog.at_level(logging.INFO):
            assert not copies(path, EventsConfig(clip_codec="auto"))
        assert not copies(path, EventsConfig(clip_codec="h264"))
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_full_disk_during_the_cut_keeps_the_event(tmpfs, tmp_path):
    """A real 1 MB filesystem cannot hold the ~2 MB clip: the event is saved
    with its snapshot, the half-cut file is gone, one error line."""
    big = write_h264(Scene(width=320, height=240, fps=FPS, duration_s=10, seed=4, noise=20.0,
                           walkers=(Walker(3.0, 3.0, height=0.6),)), tmp_path / "big.mp4", bitrate="3M")
    disk = tmpfs(1)
    root = disk / "rec"
    proc = mw("scan", str(big), "--recordings", str(root), "--config", str(config(tmp_path, "")))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln]
    assert len(lines) == 1 and "clip" in lines[0] and "No space left" in lines[0], proc.stderr
    (ej,) = list(root.rglob("event.json"))
    ev = json.loads(ej.read_text())
    assert ev["clip"] is None and (root / ev["snapshot"]).is_file()
    assert not list(root.rglob(".tmp-*")) and not list(root.rglob("*.mp4"))


def test_auto_respects_a_smaller_clip_width(visit):
    """events.clip_width asks for smaller clips than the source: auto encodes them;
    an explicit copy still copies (at the source's size)."""
    assert not copies(str(visit), EventsConfig(clip_width=160))
    assert copies(str(visit), EventsConfig(clip_width=VISIT.width))
    assert copies(str(visit), EventsConfig(clip_codec="copy", clip_width=160))
    assert not copies(str(visit), EventsConfig(clip=False))


def test_matroska_source_is_cut_exactly(visit, recordings, tmp_path):
    """MKV's index may list only some keyframes, so ffmpeg's seek can land a GOP
    early; the clip must still start on the planned keyframe with nothing hidden."""
    mkv = tmp_path / "visit.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(visit), "-c", "copy", str(mkv)], check=True)
    mw("scan", str(mkv), "--recordings", str(recordings), "--config", str(config(tmp_path, "")), check=True)
    (ev,) = events_json(recordings)
    start_s = checked_cut(ev, recordings, mkv)
    assert start_s <= ev["start_offset_s"] - 2.0 + 1e-6


def picture_hashes(path: Path) -> list[str]:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [ln.rsplit(",", 1)[1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]


PS_ENCODERS = {"h264": ["-c:v", "libx264", "-preset", "veryfast", "-bf", "0"],
               "hevc": ["-c:v", "libx265", "-x265-params", "log-level=none:bframes=0"]}


@pytest.mark.parametrize("coding", sorted(PS_ENCODERS))
def test_mpeg_ps_source_is_cut_exactly(coding, visit, recordings, tmp_path):
    """MPEG-PS (.mpg, .vob, many NVRs' ".mp4" exports) times only some packets; those
    without a time were left out of the ring, and an event of such a file had no clip
    at all, without a word. Their times are filled in (no B-frames, as IP cameras
    encode), so the clip is the source's packets again."""
    ps = tmp_path / "visit.mpg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(visit), "-an", *PS_ENCODERS[coding],
                    "-g", str(GOP), "-f", "mpeg", str(ps)], check=True, timeout=120)
    assert sum(p.get("pts") is None for p in packets(ps)[0]) > 100   # most packets untimed
    proc = mw("scan", str(ps), "--recordings", str(recordings), "--config", str(config(tmp_path, "")), check=True)
    (ev,) = events_json(recordings)
    assert ev["clip_format"] == coding and ev["clip_copied"] is True, ev
    # The MP4 holds the pictures length-prefixed, the PS with start codes: the decoded
    # pictures are compared (ffmpeg's framemd5 as the referee).
    source, clip = picture_hashes(ps), picture_hashes(recordings / ev["clip"])
    first = source.index(clip[0])
    assert source[first:first + len(clip)] == clip
    start_s = first / FPS
    assert ev["clip_start_offset_s"] == pytest.approx(start_s, abs=0.05)
    assert ev["clip_seconds"] == pytest.approx(len(clip) / FPS, abs=0.05)
    assert ev["start_offset_s"] - 2.0 - GOP / FPS < start_s <= ev["start_offset_s"] - 2.0 + 1e-6
    assert start_s + ev["clip_seconds"] >= ev["end_offset_s"] + 2.0 - 1e-6
    assert "WARNING" not in proc.stderr, proc.stderr


def test_mpeg_ps_with_b_frames_gets_an_encoded_clip(visit, recordings, tmp_path):
    """With B-frames, an untimed packet's time cannot be told: the file is read as an
    untimed stream (times by count) and its clip encoded from the decoded pictures."""
    ps = tmp_path / "visit-b.mpg"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(visit), "-an", "-c:v", "libx264", "-preset",
                    "veryfast", "-bf", "2", "-g", str(GOP), "-f", "mpeg", str(ps)], check=True, timeout=120)
    proc = mw("scan", str(ps), "--recordings", str(recordings), "--config", str(config(tmp_path, "")), check=True)
    (ev,) = events_json(recordings)
    assert ev["clip_format"] == "h264" and "clip_copied" not in ev, ev
    assert 4.5 <= ev["start_offset_s"] <= 6.0 and ev["end_offset_s"] <= VISIT.duration_s, ev
    assert ev["clip_start_offset_s"] == pytest.approx(ev["start_offset_s"] - 2.0, abs=0.05)
    assert ev["clip_seconds"] == pytest.approx(shown_seconds(recordings / ev["clip"]), abs=0.05)
    assert ev["clip_seconds"] >= ev["end_offset_s"] - ev["start_offset_s"] + 3.9
    assert "WARNING" not in proc.stderr, proc.stderr


def test_run_on_a_file_cuts_its_clips_too(recordings, tmp_path):
    """`run --source FILE` plays the file at its own rate like a camera; its clips
    are cut from the file just the same."""
    short = write_h264(Scene(width=320, height=240, fps=FPS, duration_s=8, seed=7, noise=4.0,
                             walkers=(Walker(2.5, 2.5, height=0.6),)), tmp_path / "short.mp4")
    mw("run", "--source", str(short), "--recordings", str(recordings), "--config", str(config(tmp_path, "")),
       check=True, timeout=120)
    (ev,) = events_json(recordings)
    checked_cut(ev, recordings, short)


def test_hevc_is_copied_by_default_and_encoded_with_h264(recordings, tmp_path):
    """Most HEVC cameras are 1080p and up, where encoding every event frame costs
    more than the scan: `auto` copies HEVC (tagged hvc1 for Safari, the source's
    packets); `clip_codec: h264`, for clips every browser plays, encodes H.264."""
    hevc = tmp_path / "visit-hevc.mp4"
    assert encode_with_ffmpeg(VISIT, hevc, ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                                            f"log-level=error:keyint={GOP}", "-pix_fmt", "yuv420p"]) == 0
    mw("scan", str(hevc), "--recordings", str(recordings), "--config", str(config(tmp_path, "")), check=True)
    (ev,) = events_json(recordings)
    assert ev["clip_format"] == "hevc" and ev["clip_copied"] is True
    clip = recordings / ev["clip"]
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_tag_string", "-of", "csv=p=0",
                          str(clip)], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["hvc1"]
    source, tb, t0 = packets(hevc)
    place(clip, source, tb, t0)
    encoded = tmp_path / "h264-rec"
    mw("scan", str(hevc), "--recordings", str(encoded), "--config",
       str(config(tmp_path, "events:\n  clip_codec: h264\n")), check=True)
    (ev,) = events_json(encoded)
    assert ev["clip_format"] == "h264" and "clip_copied" not in ev


# Browsers play VP9 and AV1 in MP4 as they play H.264 (webm recordings, phones, screen
# recorders): their clips are the source's packets too, named by the format (`av1`,
# whichever decoder reads it).
BROWSER_CODECS = {
    "vp9": ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
                     "-g", str(GOP)]),
    "av1": ("mp4", ["-c:v", "libsvtav1", "-preset", "12", "-g", str(GOP), "-pix_fmt", "yuv420p"]),
}


@pytest.mark.parametrize("coding", sorted(BROWSER_CODECS))
def test_vp9_and_av1_are_copied_and_play_in_chromium(coding, recordings, tmp_path, no_ffmpeg):
    container, args = BROWSER_CODECS[coding]
    source = tmp_path / f"visit-{coding}.{container}"
    if encode_with_ffmpeg(VISIT, source, args) != 0:
        pytest.skip(f"this ffmpeg cannot encode {coding}")
    mw("scan", str(source), "--recordings", str(recordings), "--config", str(config(tmp_path, "")),
       check=True, env=no_ffmpeg)
    (ev,) = events_json(recordings)
    assert ev["clip_format"] == coding and ev["clip_copied"] is True
    clip = recordings / ev["clip"]
    assert streams(clip) == [f"{coding},video"]
    start_s = checked_cut(ev, recordings, source)
    assert start_s <= ev["start_offset_s"] - 2.0 + 1e-6     # the pre-roll is in it
    plays_in_chromium(clip, (VISIT.width, VISIT.height))


def test_a_long_event_holds_no_more_packets_than_a_short_one(tmp_path):
    """Someone in view for 24 s: while the event is open, the packets already handed
    to the clip leave the ring, so the capture loop holds about the pre-roll's worth
    (not the whole event's), and the clip still has every frame of the event."""
    import threading

    from motionwatch.config import RecordingsConfig
    from motionwatch.sinks.recorder import Recorder
    from motionwatch.sinks.runner import SinkRunner

    scene = Scene(width=320, height=240, fps=FPS, duration_s=30, seed=8, noise=4.0,
                  walkers=(Walker(3.0, 24.0, height=0.6),))
    path = write_h264(scene, tmp_path / "long.mp4")
    rec = tmp_path / "rec"
    cfg = Config(events=EventsConfig(pre_roll_seconds=1.0, post_roll_seconds=1.0, gap_seconds=2.0),
                 recordings=RecordingsConfig(path=str(rec), min_free_gb=0.0))
    sinks = SinkRunner([Recorder(cfg.recordings, cfg.events)], wait_for_room=True)
    open_bytes: list[int] = []
    loop = None

    def sample(frame, det):
        if loop.tracker.open is not None:
            open_bytes.append(loop.source.packets.nbytes)

    loop = CameraLoop(CameraConfig(name="cam", source=str(path)), cfg, sinks, threading.Event(),
                      scan=True, on_frame=sample)
    loop.run()
    sinks.close()
    (ev,) = events_json(rec)
    assert ev["clip_copied"] is True and ev["end_offset_s"] - ev["start_offset_s"] > 15
    per_s = path.stat().st_size / scene.duration_s
    # pre-roll + the ring's slack + a GOP + a batch not yet handed over: about 5 s, not 20.
    assert open_bytes and max(open_bytes) < 6 * per_s
    info = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                           "stream=nb_read_frames", "-of", "csv=p=0", str(rec / ev["clip"])],
                          capture_output=True, text=True, check=True).stdout
    assert int(info) / FPS >= ev["end_offset_s"] - ev["start_offset_s"] + 2.0


def test_packets_the_muxer_refuses_are_a_source_problem_not_a_write_failure(tmp_path):
    """A damaged file's timestamps can be beyond what MP4 stores (here a picture shown
    before it is decoded): the muxer refuses them. That clip is abandoned and said so
    as the source's fault, apart from write failures (which put the recorder in its
    broken state, "recording resumes when writing works again"); no file is left."""
    import av
    from motionwatch.media.remux import CodecTemplate
    from motionwatch.media.ring import PacketRing
    from motionwatch.sinks.clip_remux import PacketClip
    src = write_h264(Scene(width=320, height=240, fps=FPS, duration_s=3, seed=2, noise=4.0,
                           walkers=(Walker(0.5, 2.0, height=0.6),)), tmp_path / "src.mp4")
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        ring = PacketRing(stream.time_base, keep_s=60.0, template=CodecTemplate(stream))
        for pkt in c.demux(stream):
            ring.push(pkt)
    kept = ring.since(0)
    assert len(kept) == 3 * FPS and kept[0].key
    kept[5].pts = kept[5].dts - 10 * kept[5].duration   # shown before it is decoded
    folder = tmp_path / "event"
    clip = PacketClip(folder, None, kept[0].template, ring.time_base, FPS, 300.0, kept[0].clock)
    clip.packets(kept, kept[-1].clock)
    clip.end(kept[-1].clock, at_eof=True)
    clip.finish()
    assert clip.errors == []
    assert len(clip.refused) == 1 and "source's packets cannot be copied" in clip.refused[0], clip.refused
    assert clip.parts == [] and not list(folder.glob("*.mp4")) and not list(folder.glob(".tmp-*"))
