"""A camera's damaged JPEGs are not motion (media.jpeg_check).

A USB webcam whose bus drops packets, or a flaky camera or link, sends JPEGs
with part of their data lost. libjpeg still decodes them ("Corrupt JPEG data:
premature end of data segment") and fills the rest of the picture with garbage,
which to the detector is motion over much of the picture.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import events_json, wait_until
from mjpeg_server import ServerProcess, lose_data
from motionwatch.media.jpeg import UNDECODED, JpegFrame
from motionwatch.media import jpeg_check
from motionwatch.media.jpeg_check import TRUST_CHECKS, JpegCheck
from motionwatch.sources.scene import Scene, SceneRenderer, Walker

SAID = "damaged video at frame"


def room(size=(640, 480), frames=8) -> list[np.ndarray]:
    scene = Scene(width=size[0], height=size[1], fps=10, duration_s=frames / 10, seed=7, noise=3.0,
                  walkers=(Walker(0.0, frames / 10, height=0.6),))
    r = SceneRenderer(scene)
    return [r.render(i) for i in range(frames)]


KINDS = {   # how cameras encode their JPEGs
    "4:2:0": [],
    "4:2:2 (most USB webcams)": [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422],
    "4:4:4": [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
    "restart markers": [cv2.IMWRITE_JPEG_RST_INTERVAL, 4],
    "progressive": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
}
# A progressive JPEG that lost data in the middle lost refinement scans: it shows
# its picture a little coarser, which is not motion (and no camera sends them).


def analysed(jpegs: list[bytes], check: JpegCheck) -> list[bool]:
    """Which of the stream's JPEGs the capture loop would judge damaged, each analysed in turn."""
    out = []
    for i, j in enumerate(jpegs):
        frame = JpegFrame(j, UNDECODED, (640, 480), i, i / 10, i / 10)
        frame.check = check
        gray = frame.gray
        out.append(frame.damaged)
        assert (gray is None) == frame.damaged
    return out


def without_tables(jpeg: bytes) -> bytes:
    """The JPEG without its Huffman tables (DHT), as many UVC webcams send it: decoders
    use the standard ones."""
    out, i = bytearray(jpeg[:2]), 2
    while jpeg[i + 1] != 0xDA:   # up to the scan
        end = i + 2 + int.from_bytes(jpeg[i + 2:i + 4], "big")
        if jpeg[i + 1] != 0xC4:
            out += jpeg[i:end]
        i = end
    return bytes(out + jpeg[i:])


@pytest.mark.parametrize("kind", [*KINDS, "without Huffman tables (UVC webcams)"])
def test_jpegs_with_data_lost_are_damaged_whole_ones_are_not(kind):
    pictures = room()
    params = [cv2.IMWRITE_JPEG_QUALITY, 80] + KINDS.get(kind, [])
    strip = without_tables if kind not in KINDS else (lambda j: j)
    for grey in (False, True):
        jpegs = [strip(cv2.imencode(".jpg", cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) if grey else p, params)[1].tobytes())
                 for p in pictures]
        # Every other JPEG lost a sixth of its data: libjpeg decodes all of them.
        stream = [lose_data(j) if i % 2 else j for i, j in enumerate(jpegs)]
        assert all(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2) is not None
                   for j in stream)
        judged = analysed(stream, JpegCheck())
        if kind == "progressive":
            judged = judged[::2]
        assert judged == [bool(i % 2) for i in range(0, len(stream), 1 + (kind == "progressive"))], (kind, grey)


def test_a_walker_costs_no_check(monkeypatch):
    """Only a picture that changed as damage does (over much of it, or across its
    bottom rows) is decoded again by FFmpeg: someone crossing the room is not, past
    the camera's first JPEG."""
    checked = []
    decode = jpeg_check.decode_one
    monkeypatch.setattr(jpeg_check, "decode_one", lambda dec, jpeg: checked.append(jpeg) or decode(dec, jpeg))
    jpegs = [cv2.imencode(".jpg", p)[1].tobytes() for p in room(frames=40)]
    assert analysed(jpegs, JpegCheck()) == [False] * len(jpegs)
    assert checked == jpegs[:1]


def test_a_camera_whose_every_jpeg_ffmpeg_refuses_is_still_watched():
    """FFmpeg's strict check is trusted only for a camera some of whose JPEGs pass it:
    one whose JPEGs all fail it (lost data in every frame, or a camera's own quirk)
    is analysed as libjpeg decodes it, as before, rather than not at all."""
    jpegs = [lose_data(cv2.imencode(".jpg", p)[1].tobytes()) for p in room()]
    assert analysed(jpegs, JpegCheck()) == [False] * len(jpegs)
    # Once one passed, refusals count as damage, up to TRUST_CHECKS in a row.
    check = JpegCheck()
    whole = cv2.imencode(".jpg", room(frames=1)[0])[1].tobytes()
    assert analysed([whole] + jpegs, check) == [False] + [True] * len(jpegs)
    check.since_whole = TRUST_CHECKS
    assert analysed(jpegs[:2], check) == [False, False]


def test_a_webcam_losing_data_in_every_third_jpeg_has_only_the_visit_as_event(tmp_path):
    """`run --source URL` in a fresh folder, as a user runs it (defaults, the default
    recordings folder): the room is empty for 8 s, someone crosses it for 6 s, then
    it is empty again, and every third JPEG lost a sixth of its data throughout.
    Before, the damaged JPEGs held the event open for seconds after the visit (11.8 s
    for a 6 s visit with every fourth damaged) and started events of their own (every
    other one); now the only event is the visit, and the log says so once: libjpeg's
    own `Corrupt JPEG data` line, which came with every damaged JPEG, too."""
    with ServerProcess(fps=10, size="640x480", mode="still") as cam:
        cam.send("damage 3")
        log = tmp_path / "run.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "motionwatch", "run", "--source", cam.url],
                                    cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "watching stream" in log.read_text(), timeout=60)
            time.sleep(8)
            cam.send("motion")
            time.sleep(6)
            cam.send("still")
            time.sleep(6)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    text = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in text, text
    (ev,) = events_json(tmp_path / "recordings")
    # The visit lasts 6 s; the event ends a post-roll after the last motion.
    assert 4.0 <= ev["end_offset_s"] - ev["start_offset_s"] <= 8.0, ev
    assert ev["peak_fraction"] < 0.15, ev   # the damage's garbage covered 15-50%
    assert text.count(SAID) == 1, text
    # After the first, each JPEG is checked before libjpeg decodes it (and says so).
    assert text.count("Corrupt JPEG data") <= 2, text
