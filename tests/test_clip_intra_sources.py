"""Clips of intra-only sources: every decoded frame of a raw V4L2 webcam (YUYV),
a Motion JPEG file or an all-intra codec (ProRes) says "I-frame", and libx264 obeys a frame's
picture type. A clip encoded from them must still be an ordinary H.264 stream (one
keyframe, then P-frames), not a keyframe per frame at several times the size."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from motionwatch.sources.scene import Scene, Walker, encode_scene, scene_rate

from conftest import events_json, mw

# A static room with camera noise and one person: the P-frames of such a clip are small.
SCENE = Scene(width=320, height=240, fps=10, duration_s=10, seed=5, noise=2.0, walkers=(Walker(2.0, 5.0),))


def write_intra(path: Path, codec: str, pix_fmt: str, colorspace: int, color_range: int) -> None:
    """The scene in an intra-only codec, tagged as given (written by PyAV: no ffmpeg)."""
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=scene_rate(SCENE))
        st.width, st.height, st.pix_fmt = SCENE.width, SCENE.height, pix_fmt
        st.codec_context.colorspace, st.codec_context.color_range = colorspace, color_range
        encode_scene(SCENE, out, st, colorspace, color_range)


def keyframes_and_frames(clip: Path) -> tuple[int, int]:
    with av.open(str(clip)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
    return sum(p.is_keyframe for p in packets), len(packets)


@pytest.mark.parametrize("name, codec, pix_fmt, colorspace, color_range", [
    # A V4L2 webcam's raw YUYV, untagged: converted by swscale, which copies the picture type.
    ("webcam.nut", "rawvideo", "yuyv422", 2, 0),
    # Already the clip's format and tags: handed to x264 as decoded.
    ("tv601.nut", "rawvideo", "yuv420p", 5, 1),
    # An editor's 10-bit 4:2:2 BT.709 export: through swscale.
    ("export.mov", "prores_ks", "yuv422p10le", 1, 1),
    # A dashcam's Motion JPEG: mapped by hand to a new frame.
    ("dashcam.avi", "mjpeg", "yuvj422p", 2, 2),
])
def test_a_clip_of_an_intra_only_source_has_one_keyframe(tmp_path, name, codec, pix_fmt, colorspace,
                                                        color_range):
    write_intra(tmp_path / name, codec, pix_fmt, colorspace, color_range)
    proc = mw("scan", name, "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = events_json(tmp_path / "recordings")
    assert len(events) == 1 and events[0]["clip_format"] == "h264", events
    keys, frames = keyframes_and_frames(tmp_path / "recordings" / events[0]["clip"])
    assert frames >= 30 and keys == 1, f"{keys} keyframes in {frames} frames"
