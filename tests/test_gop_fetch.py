"""A saved frame of a luma-decoded MP4 is re-decoded in colour from its own keyframe
when OpenCV's seek would start a GOP earlier (motionwatch.gop_fetch): the pictures
must be exactly those of a plain decode, for frames right after a keyframe of an
H.264 file with B-frames, and a file whose index does not match its decode must
still give the right frame."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from motionwatch.bench import make_clip
from motionwatch.decode import FileReader
from motionwatch.gop_fetch import GopIndex
from tests.conftest import decode_plain, read_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    # 25 fps with a keyframe every 50 frames; x264's defaults put B-frames between.
    return make_clip(tmp_path_factory.mktemp("gop") / "gop.mp4", 320, 240, 10.0, fps=25.0)


@pytest.fixture(scope="module")
def plain(clip):
    return decode_plain(clip)


def test_the_clip_has_b_frames_and_two_second_gops(clip):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=pict_type",
                          "-of", "csv=p=0", str(clip)], capture_output=True, text=True, check=True).stdout.split()
    assert "B" in out
    assert {0, 50, 100, 150} <= {i for i, t in enumerate(out) if t.startswith("I")}


def test_frames_just_after_a_keyframe_decode_from_it_and_match_a_plain_decode(clip, plain):
    gops = GopIndex.of(str(clip))
    assert gops is not None and len(gops.order) == len(plain) == 250
    # Less than 16 frames after a keyframe OpenCV's seek starts at the keyframe before.
    for i in (50, 51, 53, 57, 64, 100, 113, 200):
        assert gops.saves(i), i
        assert np.array_equal(gops.decode(i), plain[i]), f"frame {i} came back as another frame"
    # Further in, or in the first GOP, OpenCV's seek already starts at the right keyframe.
    for i in (3, 40, 70, 99, 130):
        assert not gops.saves(i), i


def test_snapshots_of_a_luma_scan_use_it_and_are_exact(clip, plain):
    reader = FileReader(str(clip), threaded=True)
    try:
        assert reader.luma
        frames = read_frames(reader)
        for i in (152, 52, 201, 20):   # out of order, as events' snapshots are asked for
            assert np.array_equal(frames[i].image, plain[i]), i
        assert isinstance(reader.fetcher.gops, GopIndex)
    finally:
        reader.close()


def test_an_index_that_numbers_frames_differently_is_dropped_and_the_frame_is_still_right(clip, plain):
    """A file whose index disagrees with what the decoder returns (edit lists, damage):
    the first mismatch is caught by the luma check, the index is no longer used, and
    OpenCV's seek gives the right frame."""
    reader = FileReader(str(clip), threaded=False)
    try:
        frames = read_frames(reader)
        gops = GopIndex.of(str(clip))
        gops.order = np.roll(gops.order, 5)   # every frame number off by five
        reader.fetcher.gops = gops
        assert np.array_equal(frames[103].image, plain[103])
        assert reader.fetcher.gops is False
        assert np.array_equal(frames[155].image, plain[155])
    finally:
        reader.close()


def test_only_unfragmented_mp4_files_have_an_index(clip, tmp_path):
    mkv = tmp_path / "gop.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", str(mkv)], check=True)
    assert GopIndex.of(str(mkv)) is None
    assert GopIndex.of(str(tmp_path / "missing.mp4")) is None


def _x265(src, out, params):
    p = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:v", "libx265", "-x265-params",
                        f"log-level=error:keyint=50:{params}", "-tag:v", "hvc1", str(out)], capture_output=True)
    if p.returncode != 0:
        pytest.skip("this ffmpeg has no libx265")
    return out


@pytest.mark.parametrize("params, from_index", [("open-gop=0", True), ("open-gop=1", False)])
def test_hevc_closed_gops_are_decoded_from_their_keyframe_open_ones_left_to_the_seek(clip, tmp_path, params,
                                                                                    from_index):
    """x265 writes open GOPs by default: the pictures shown before a CRA keyframe but
    stored after it may or may not be output when decoding starts there, so those
    GOPs go to OpenCV's seek (a CRA without leading pictures is decoded from it);
    either way the snapshot is the exact frame."""
    hevc = _x265(clip, tmp_path / "hevc.mp4", params)
    plain = decode_plain(hevc)
    gops = GopIndex.of(str(hevc))
    assert gops is not None
    near = [i for i in range(len(plain)) if gops.saves(i)]
    assert near
    planned = [i for i in near if gops.plan(i) is not None]
    if from_index:
        assert planned == near
    else:
        # x265 decides GOP by GOP whether a CRA has leading pictures; some do.
        assert len(planned) < len(near)
    for i in planned[-3:]:
        assert np.array_equal(gops.decode(i), plain[i]), i
    reader = FileReader(str(hevc), threaded=False)
    try:
        frames = read_frames(reader)
        for i in (near[-1], near[len(near) // 2], 30):
            assert np.array_equal(frames[i].image, plain[i]), i
    finally:
        reader.close()
