"""Clip encoding cost on this machine: CPU milliseconds per frame and MB per
minute for each clip format, plus the pre-roll ring's memory, at 720p and 1080p;
with --mjpeg, the ways an MJPEG camera's JPEGs can become an H.264 clip.

    .venv/bin/python tests/bench/clip_cost.py [--frames 150] [--width 1280]
    .venv/bin/python tests/bench/clip_cost.py --mjpeg [--rounds 3]

CPU is measured as process time (this process plus its ffmpeg children), so
it is the cost a Raspberry Pi or a busy desktop pays, not wall-clock speed.
The --mjpeg table interleaves its variants round by round and prints each as a
ratio to motionwatch's own path (sinks.clip.EventClip fed JpegFrames), on
generated 640x480 JPEGs and on JPEGs of the real traffic_camera.mp4.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/: where the footage lies

from motionwatch.media.jpeg import jpeg_frame  # noqa: E402
from motionwatch.model import Frame  # noqa: E402
from motionwatch.sinks.clip import EventClip  # noqa: E402
from motionwatch.sources.scene import Scene, SceneRenderer, Walker  # noqa: E402
from support.footage import FOOTAGE  # noqa: E402


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def frames(width: int, n: int, fps: float) -> list:
    height = width * 9 // 16
    scene = Scene(width=width, height=height, fps=fps, duration_s=n / fps + 1, seed=4, noise=4.0,
                  walkers=(Walker(0.0, n / fps, height=0.6),))
    r = SceneRenderer(scene)
    return [r.render(i) for i in range(n)]


def encode(fmt: str, images: list, fps: float) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as d:
        clip = EventClip(Path(d), fmt, fps)
        c0, t0 = cpu(), time.perf_counter()
        for i, img in enumerate(images):
            clip.add(Frame(img, i, i / fps, i / fps))
        clip.finish()
        c1, t1 = cpu(), time.perf_counter()
        if clip.errors or not clip.parts:
            raise SystemExit(f"{fmt}: {clip.errors}")
        size = sum(p.stat().st_size for p in clip.parts)
    n = len(images)
    return 1000 * (c1 - c0) / n, 1000 * (t1 - t0) / n, size / 1e6 / (n / fps) * 60


# --- MJPEG camera clips ---------------------------------------------------------

X264 = {"preset": "ultrafast", "crf": "23"}
MJPEG_VARIANTS = {
    # name: (x264 options, x264 threads, how the JPEG becomes the encoder's picture)
    "motionwatch (EventClip: FFmpeg decode, table to tv range)": None,
    "FFmpeg decode, swscale to tv yuv420p": (X264, 1, "swscale"),
    "... the JPEG's I-frame type kept (before 2026-12-06: a keyframe per frame)": (X264, 1, "swscale, keep type"),
    "FFmpeg decode, yuvj420p as it is (full range tags)": (X264, 1, "full"),
    "... and tune zerolatency": ({**X264, "tune": "zerolatency"}, 1, "full"),
    "swscale, x264 threads auto": (X264, 0, "swscale"),
    "swscale, crf 26": ({"preset": "ultrafast", "crf": "26"}, 1, "swscale"),
    "OpenCV imdecode to BGR, swscale": (X264, 1, "opencv"),
    "Motion's x264 settings (ultrafast, zerolatency, crf 20), swscale": (
        {"preset": "ultrafast", "tune": "zerolatency", "crf": "20"}, 1, "swscale"),
}


def camera_jpegs(n: int) -> dict[str, list[bytes]]:
    """JPEGs as cameras send them (4:2:0, quality 80): a generated room, and the real
    traffic camera scaled to 640x360."""
    r = SceneRenderer(Scene(width=640, height=480, fps=30, duration_s=n / 30 + 1, seed=4, noise=4.0,
                            walkers=(Walker(0.0, n / 30, height=0.6),)))
    q = [cv2.IMWRITE_JPEG_QUALITY, 80]
    out = {"generated 640x480": [cv2.imencode(".jpg", r.render(i), q)[1].tobytes() for i in range(n)]}
    traffic = FOOTAGE / "dvrscan_traffic_camera" / "traffic_camera.mp4"
    if traffic.exists():
        import av
        real = []
        with av.open(str(traffic)) as c:
            for f in c.decode(video=0):
                img = cv2.resize(f.to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA)
                real.append(cv2.imencode(".jpg", img, q)[1].tobytes())
                if len(real) == n:
                    break
        out["traffic_camera 640x360"] = real
    return out


def mjpeg_variant(name: str, jpegs: list[bytes], folder: Path) -> tuple[float, int]:
    """(CPU ms per frame, clip bytes) of one way of encoding the JPEGs at 30 fps."""
    import av
    from av.video.frame import PictureType
    path = folder / f"{abs(hash(name))}.mp4"
    spec = MJPEG_VARIANTS[name]
    if spec is None:
        # Made before timing: the grey decode for detection is the capture thread's, not the clip's.
        frames = [jpeg_frame(j, i, i / 30, i / 30, 320) for i, j in enumerate(jpegs)]
        c0 = time.process_time()
        clip = EventClip(folder / "mw", "h264", 30.0)
        for f in frames:
            clip.add(f)
        clip.finish()
        return 1000 * (time.process_time() - c0) / len(jpegs), clip.parts[0].stat().st_size
    opts, threads, how = spec
    c0 = time.process_time()
    dec = av.CodecContext.create("mjpeg", "r")
    out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    stream = out.add_stream("libx264", rate=30)
    h, w = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape
    stream.width, stream.height = w * 8, h * 8
    stream.pix_fmt = "yuvj420p" if how == "full" else "yuv420p"
    cc = stream.codec_context
    cc.time_base, cc.color_range, cc.colorspace = Fraction(1, 30), 2 if how == "full" else 1, 5
    cc.options, cc.thread_count = dict(opts), threads
    for i, j in enumerate(jpegs):
        if how == "opencv":
            f = av.VideoFrame.from_ndarray(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), format="bgr24")
        else:
            f = dec.decode(av.Packet(j))[-1]
        if how != "full":
            f = f.reformat(format="yuv420p", dst_colorspace=5, dst_color_range=1, interpolation="AREA")
        if how != "swscale, keep type":
            f.pict_type = PictureType.NONE   # x264 decides, as media.encode.Mp4Encoder lets it
        f.pts, f.time_base = i, Fraction(1, 30)
        for pkt in stream.encode(f):
            out.mux(pkt)
    for pkt in stream.encode(None):
        out.mux(pkt)
    out.close()
    return 1000 * (time.process_time() - c0) / len(jpegs), path.stat().st_size


def mjpeg_table(frames: int, rounds: int) -> None:
    names = list(MJPEG_VARIANTS)
    for label, jpegs in camera_jpegs(frames).items():
        cpu: dict[str, list[float]] = {n: [] for n in names}
        size: dict[str, int] = {}
        with tempfile.TemporaryDirectory() as d:
            for r in range(rounds):
                for name in (names if r % 2 == 0 else names[::-1]):
                    sub = Path(d) / f"r{r}-{names.index(name)}"
                    sub.mkdir()
                    ms, size[name] = mjpeg_variant(name, jpegs, sub)
                    cpu[name].append(ms)
        base = statistics.median(cpu[names[0]])
        print(f"\n{label}: {len(jpegs)} camera JPEGs to an H.264 clip, CPU ms per frame "
              f"(median of {rounds} interleaved rounds)")
        print("| way | CPU ms/frame | x motionwatch | clip kB |\n|---|---:|---:|---:|")
        for name in names:
            m = statistics.median(cpu[name])
            print(f"| {name} | {m:.2f} | {m / base:.2f} | {size[name] / 1e3:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--width", type=int, action="append")
    ap.add_argument("--mjpeg", action="store_true", help="only the MJPEG camera table")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import av
    if args.mjpeg:
        print(f"# {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, PyAV {av.__version__}")
        mjpeg_table(args.frames, args.rounds)
        return 0
    print(f"# {os.cpu_count()} CPUs, OpenCV {cv2.__version__}, PyAV {av.__version__} (libx264 in process)")
    for width in args.width or [1280]:
        images = frames(width, args.frames, args.fps)
        h, w = images[0].shape[:2]
        print(f"\n{w}x{h}, {args.frames} frames at {args.fps:g} fps")
        print(f"{'format':<8} {'CPU ms/frame':>13} {'wall ms/frame':>14} {'MB/minute':>10} {'CPU share at fps':>17}")
        for fmt in ("h264", "mp4v"):
            c, t, mb = encode(fmt, images, args.fps)
            print(f"{fmt:<8} {c:13.1f} {t:14.1f} {mb:10.1f} {c * args.fps / 10:16.0f}%")
    print("\npre-roll ring memory of encoded sources (events.pre_roll_seconds x fps x frame bytes;"
          " H.264/HEVC sources keep packets instead: bitrate x seconds):")
    for (w, h) in ((1280, 720), (1920, 1080), (640, 360)):
        for fps in (15, 25, 30):
            mb = 2.0 * fps * w * h * 3 / 2**20
            print(f"  {w}x{h} @ {fps} fps, 2 s: {mb:6.0f} MiB")
    # Cost of keeping the ring at a reduced clip_width: one resize per frame.
    img = frames(1920, 2, 25)[0]
    for width in (1280, 640):
        size = (width, width * 9 // 16)
        t0 = time.perf_counter()
        for _ in range(50):
            cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        print(f"clip_width {width} from 1080p: resize {1000 * (time.perf_counter() - t0) / 50:.1f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
