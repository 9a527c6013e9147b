"""`media.encode.jpeg_to_tv`: a JPEG's full-range YUV mapped to the limited range
every clip has, level by level as BT.601 says (luma 0..255 to 16..235, chroma
0..255 to 16..240 around 128), whatever OpenCV routine does the arithmetic."""

from __future__ import annotations

import threading

import av
import cv2
import numpy as np
import pytest

from motionwatch.media.encode import Mp4Encoder, jpeg_to_tv
from motionwatch.media.frames import plane_view
from motionwatch.media.jpeg import decode_yuv


def test_every_full_range_level_lands_on_the_rounded_bt601_level():
    frame = av.VideoFrame(64, 32, "yuvj420p")
    levels = np.arange(256, dtype=np.uint8)
    for k in range(3):
        p = plane_view(frame, k)
        p[...] = np.resize(levels if k == 0 else levels[::-1], p.shape)
    out = jpeg_to_tv(frame)
    assert (out.format.name, out.color_range, out.colorspace) == ("yuv420p", 1, 5)
    for k, (lo, span) in enumerate(((16, 219), (16, 224), (16, 224))):
        src = plane_view(frame, k).astype(np.float64)
        want = np.floor(lo + src * span / 255 + 0.5) if k == 0 else np.floor(128 + (src - 128) * span / 255 + 0.5)
        assert np.array_equal(plane_view(out, k), want.astype(np.uint8)), f"plane {k}"
    assert plane_view(out, 0).min() == 16 and plane_view(out, 0).max() == 235
    assert plane_view(out, 1).min() == 16 and plane_view(out, 1).max() == 240


@pytest.mark.parametrize("fmt", ["yuvj422p", "yuvj444p", "yuvj440p"])
def test_finer_chroma_is_averaged_down_to_420_and_mapped(fmt):
    """USB webcams send 4:2:2 JPEGs: each 4:2:0 chroma sample is the rounded mean of
    the samples it covers, then mapped to the limited range."""
    frame = av.VideoFrame(64, 32, fmt)
    rng = np.random.default_rng(7)
    for k in range(3):
        p = plane_view(frame, k)
        p[...] = rng.integers(0, 256, p.shape, dtype=np.uint8)
    out = jpeg_to_tv(frame)
    assert (out.format.name, out.width, out.height) == ("yuv420p", 64, 32)
    luma = plane_view(frame, 0).astype(np.float64)
    assert np.array_equal(plane_view(out, 0), np.floor(16 + luma * 219 / 255 + 0.5).astype(np.uint8))
    for k in (1, 2):
        src = plane_view(frame, k).astype(np.float64)
        fy, fx = src.shape[0] // 16, src.shape[1] // 32
        mean = src.reshape(16, fy, 32, fx).mean(axis=(1, 3))
        want = 128 + (mean - 128) * 224 / 255
        # Averaging and mapping in one rounding or in two differ by at most one level.
        assert np.abs(plane_view(out, k).astype(np.float64) - want).max() <= 1.0, f"plane {k}"


def textured_room(h: int, w: int, blur: int) -> np.ndarray:
    """A colour texture wider than the camera's view, to pan across."""
    noise = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (blur, blur), 0), None, 20, 230, cv2.NORM_MINMAX)


def _clip_bytes(path, pictures) -> int:
    """The size of a 320x240 clip of `pictures` (anything `Mp4Encoder.add` takes)."""
    enc = Mp4Encoder(path, (320, 240), 10)
    for picture in pictures:
        enc.add(picture)
    enc.close()
    return path.stat().st_size


def test_a_422_camera_clip_is_as_small_as_a_420_one(tmp_path):
    """The same scene sent as 4:2:2 and as 4:2:0 JPEGs makes clips of about one size.
    Through swscale, which copied the JPEG's I-frame picture type to x264, every
    frame of the 4:2:2 clip was a keyframe: 2.8 times larger on real footage."""
    room = textured_room(240, 400, 9)
    sizes = {}
    for name, sampling in (("420", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420), ("422", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422)):
        jpegs = [cv2.imencode(".jpg", room[:, 2 * i:2 * i + 320], [cv2.IMWRITE_JPEG_QUALITY, 85,
                              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])[1].tobytes() for i in range(20)]
        assert decode_yuv(jpegs[0]).format.name == f"yuvj{name}p"
        sizes[name] = _clip_bytes(tmp_path / f"{name}.mp4", map(decode_yuv, jpegs))
    assert sizes["422"] < 1.25 * sizes["420"], sizes


def test_a_grey_jpeg_is_mapped_with_neutral_colour():
    """A camera in night mode may send one-component (grey) JPEGs: FFmpeg decodes
    them as full-range "gray"."""
    frame = av.VideoFrame(64, 32, "gray")
    frame.color_range = 2
    plane_view(frame, 0)[...] = np.resize(np.arange(256, dtype=np.uint8), (32, 64))
    out = jpeg_to_tv(frame)
    assert (out.format.name, out.color_range) == ("yuv420p", 1)
    luma = plane_view(frame, 0).astype(np.float64)
    assert np.array_equal(plane_view(out, 0), np.floor(16 + luma * 219 / 255 + 0.5).astype(np.uint8))
    assert (plane_view(out, 1) == 128).all() and (plane_view(out, 2) == 128).all()


def test_a_night_mode_camera_clip_is_smaller_than_a_colour_one(tmp_path):
    """A grey clip has no colour to spend bits on. Grey JPEGs went through swscale,
    whose copy of the I-frame picture type made every frame a keyframe and the clip
    as large as the same scene's colour clip here (2.4 times as large on real
    footage); now they are a sixth of it."""
    room = textured_room(240, 400, 9)
    views = [room[:, 2 * i:2 * i + 320] for i in range(20)]
    colour = [cv2.imencode(".jpg", v, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for v in views]
    grey = [cv2.imencode(".jpg", cv2.cvtColor(v, cv2.COLOR_BGR2GRAY), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
            for v in views]
    assert decode_yuv(grey[0]).format.name == "gray"
    # Grey first, in a thread of its own: a fresh decoder, as a night-mode camera's.
    sizes = {}
    worker = threading.Thread(target=lambda: sizes.update(grey=_clip_bytes(tmp_path / "g.mp4", map(decode_yuv, grey))))
    worker.start()
    worker.join()
    sizes["colour"] = _clip_bytes(tmp_path / "c.mp4", map(decode_yuv, colour))
    assert sizes["grey"] < 0.6 * sizes["colour"], sizes


def test_a_full_range_bt709_picture_keeps_its_colours_in_the_clip(tmp_path):
    """A camera's raw H.264 export may be full range on BT.709's matrix (yuvj420p,
    as a JPEG's format is named): its clip must change the matrix too, not only the
    range. Mapping it as a JPEG put colours 7 levels off on average, 22 at the 99th
    percentile, on FFmpeg's testsrc2 pattern."""
    rng = np.random.default_rng(5)
    bgr = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_NEAREST)
    src = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(
        format="yuvj420p", dst_colorspace=1, dst_color_range=2)
    src.colorspace, src.color_range = 1, 2
    want = src.reformat(format="bgr24", src_colorspace=1, src_color_range=2).to_ndarray().astype(int)
    enc = Mp4Encoder(tmp_path / "c.mp4", (320, 240), 10)
    for _ in range(3):
        enc.add(src)
    enc.close()
    with av.open(str(tmp_path / "c.mp4")) as c:
        got = next(iter(c.decode(video=0)))
    assert (got.colorspace, got.color_range) == (5, 1)   # as every clip is tagged
    err = np.abs(got.to_ndarray(format="bgr24").astype(int) - want)
    inner = err[8:-8, 8:-8]   # chroma subsampling blurs the blocks' edges alike either way
    assert inner.mean() < 4.0, inner.mean()   # 2.3 now


def test_a_camera_clip_at_a_clip_width_is_as_small_as_one_of_small_pictures(tmp_path):
    """With `events.clip_width` the encoder scales a camera's JPEG pictures. When
    swscale scaled the JPEG's own frame it copied its I-frame picture type, every
    frame became a keyframe and the clip 3-5 times larger (real footage: 1088
    against 368 kB)."""
    room = textured_room(480, 800, 17)
    views = [room[:, 4 * i:4 * i + 640] for i in range(20)]
    jpegs = [cv2.imencode(".jpg", v, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for v in views]
    sizes = {"scaled.mp4": _clip_bytes(tmp_path / "scaled.mp4", map(decode_yuv, jpegs)),
             # the same pictures, shrunk beforehand
             "small.mp4": _clip_bytes(tmp_path / "small.mp4",
                                      (cv2.resize(v, (320, 240), interpolation=cv2.INTER_AREA) for v in views))}
    assert sizes["scaled.mp4"] < 1.3 * sizes["small.mp4"], sizes


@pytest.mark.parametrize("tags", [(0, 2), (1, 5), (1, 6)], ids=["untagged", "bt470bg", "smpte170m"])
def test_a_limited_range_bt601_picture_keeps_its_levels_in_the_clip(tmp_path, tags):
    """MPEG-4 Part 2 and msmpeg4 files are mostly untagged 4:2:0: they go into the clip
    as they are (only tagged), not through swscale, and keep their levels there."""
    rng = np.random.default_rng(3)
    frames = []
    for i in range(10):
        f = av.VideoFrame(128, 96, "yuv420p")
        for k in range(3):
            p = plane_view(f, k)
            p[...] = (np.resize(np.arange(16, 236, dtype=np.uint8), p.shape) if k == 0
                      else rng.integers(100, 156, p.shape, dtype=np.uint8))
        f.color_range, f.colorspace = tags
        frames.append(f)
    want = [plane_view(f, 0).astype(np.int16).copy() for f in frames]
    enc = Mp4Encoder(tmp_path / "c.mp4", (128, 96), 10)
    for f in frames:
        enc.add(f)
    enc.close()
    with av.open(str(tmp_path / "c.mp4")) as c:
        got = [f for f in c.decode(video=0)]
    assert len(got) == 10 and (got[0].color_range, got[0].colorspace) == (1, 5)
    assert all(np.abs(plane_view(g, 0).astype(np.int16) - w).mean() < 1.5 for g, w in zip(got, want))
