"""x264's rate control for encoded clips: CRF (what media/encode.py uses) against a
constant quantizer, on real footage and on the bench's MJPEG camera pictures.

    PYTHONPATH=. .venv/bin/python tests/bench/x264_rate.py [--frames 150] [--runs 5] [--settings crf=23 qp=22 qp=21]

Each file's first frames are converted once to BT.601 limited-range 4:2:0 (as a
clip's are) and encoded in this process by libx264 `ultrafast` on one thread,
per setting; prints CPU ms a frame (the least of the runs), the clip's kB and
the PSNR of its Y plane against the input, so a cheaper setting can be compared
at equal size and quality.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/: footage and the camera

from motionwatch.media.encode import jpeg_to_tv  # noqa: E402
from motionwatch.media.frames import luma_view  # noqa: E402
from motionwatch.media.jpeg import decode_yuv  # noqa: E402
from support.footage import FOOTAGE  # noqa: E402

FILES = ("opencv_vtest/vtest.avi", "motorway_timestamp/video02.avi",
         "dvrscan_brightness_change/issue53_brightness_change.avi", "dvrscan_traffic_camera/traffic_camera.mp4")


def file_frames(path: Path, n: int) -> list[av.VideoFrame]:
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            w, h = f.width - f.width % 2, f.height - f.height % 2
            out.append(f.reformat(width=w, height=h, format="yuv420p", dst_colorspace=5, dst_color_range=1))
            if len(out) >= n:
                break
    return out


def camera_frames(n: int) -> list[av.VideoFrame]:
    """The loopback MJPEG camera's JPEGs (tests/mjpeg_server.py, 640x480, someone moving)
    as the clip writer gets them: decoded by FFmpeg and mapped to limited range."""
    import mjpeg_server
    jpegs = mjpeg_server.Camera(30.0, (640, 480), "motion").frames()[:n]
    return [jpeg_to_tv(decode_yuv(j)) for j in jpegs]


def encode(frames: list[av.VideoFrame], setting: str) -> tuple[float, bytes]:
    key, value = setting.split("=")
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4")
    stream = out.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    stream.codec_context.options = {"preset": "ultrafast", key: value}
    stream.codec_context.thread_count = 1
    t = time.process_time()
    for i, f in enumerate(frames):
        f.pts, f.time_base = i, Fraction(1, 30)
        f.pict_type = PictureType.NONE   # x264 decides, as the clip encoder lets it (not the source's I/P/B)
        for pkt in stream.encode(f):
            out.mux(pkt)
    for pkt in stream.encode(None):
        out.mux(pkt)
    spent = (time.process_time() - t) / len(frames) * 1000
    out.close()
    return spent, buf.getvalue()


def psnr(data: bytes, ref: list[av.VideoFrame]) -> float:
    with av.open(io.BytesIO(data)) as c:
        errs = [float(((luma_view(f).astype(np.float32) - luma_view(r)) ** 2).mean())
                for f, r in zip(c.decode(video=0), ref)]
    return float(np.mean([10 * np.log10(255 ** 2 / max(1e-9, e)) for e in errs]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--settings", nargs="+", default=["crf=23", "qp=22", "qp=21", "qp=24"])
    a = ap.parse_args()
    sources = {"bench MJPEG camera": lambda: camera_frames(a.frames)}
    for rel in FILES:
        if (FOOTAGE / rel).exists():
            sources[rel.split("/")[0]] = lambda rel=rel: file_frames(FOOTAGE / rel, a.frames)
    print("| content | size | " + " | ".join(f"{s}: ms, kB, dB" for s in a.settings) + " |")
    print("|---|---|" + "---:|" * len(a.settings))
    for name, load in sources.items():
        frames = load()
        cells = []
        for setting in a.settings:
            runs = [encode(frames, setting) for _ in range(a.runs)]
            cells.append(f"{min(r[0] for r in runs):.2f}, {len(runs[0][1]) // 1000}, {psnr(runs[0][1], frames):.1f}")
        print(f"| {name} | {frames[0].width}x{frames[0].height} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
