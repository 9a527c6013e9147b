"""Live CPU of `run` (defaults) on the loopback MJPEG camera: this tree against a git ref.

    PYTHONPATH=. .venv/bin/python tests/bench/live_ab.py [--baseline-ref HEAD~1] [--rounds 3] [--window 15]
        [--source mjpeg|h264-file|ts-stream|rtsp-jpeg] [--stream 1920x1080@25] [--clips-off]
        [--mjpeg-sampling 420|422|grey]

Both trees watch the same 640x480@30 camera (tests/mjpeg_server.py, someone always
moving, so clips are always being encoded), in turn, round by round; CPU per 1000
frames as compare_peers.py measures it, and this tree's median as a ratio to the
baseline's. `--source h264-file` plays compare_peers.py's 640x480@30 H.264 file
instead (generated into the temp folder once), `--clips-off` runs with
`events.clip: false`. `--source ts-stream` serves a generated H.264 clip of
`--stream`'s size and rate as a live MPEG-TS camera over HTTP on loopback
(tests/ts_server.py, looped to outlast the window); each run joins it from the start.
`--source rtsp-jpeg` serves the 640x480@30 file as JPEGs from GStreamer's RTSP server
(tests/rtsp_server.py --codec mjpeg: an RTSP JPEG camera, read through FFmpeg as a
V4L2 webcam's MJPEG mode is), from the start to each run. `--mjpeg-sampling` makes
the MJPEG camera send 4:2:2 JPEGs (as most USB webcams do) or grey ones (night
mode). Each run's clips' total size is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_peers import live_cpu, start_mjpeg  # noqa: E402
from motionwatch.bench import make_clip  # noqa: E402
from rtsp_camera import jpeg_mov, start_rtsp, stop_rtsp  # noqa: E402
from scan_cpu import export  # noqa: E402
from ts_server import TsServer, remux_to_ts  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def start_ts(work: Path, stream: str, seconds: float) -> tuple[TsServer, str]:
    """A looped live MPEG-TS camera of `stream` (WxH@FPS) lasting at least `seconds`."""
    size, fps = stream.split("@")
    w, h = (int(v) for v in size.split("x"))
    mp4 = work / f"stream-{w}x{h}-{fps}fps.mp4"
    if not mp4.exists():
        make_clip(mp4, w, h, 20.0, fps=float(fps))
    server = TsServer(remux_to_ts(mp4), 20.0, loops=int(seconds // 20.0) + 1)
    return server, server.url


def start_rtsp_jpeg(work: Path, window: float) -> tuple[subprocess.Popen, str]:
    """GStreamer's RTSP server serving the 640x480@30 bench file as JPEGs."""
    mp4 = work / "live-640x480-30fps.mp4"
    if not mp4.exists():
        make_clip(mp4, 640, 480, window + 30.0, fps=30.0)
    mov = work / "live-640x480-30fps-jpeg.mov"
    if not mov.exists():
        jpeg_mov(mp4, mov)
    proc, port = start_rtsp(mov, codec="mjpeg")
    return proc, f"rtsp://127.0.0.1:{port}/cam"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default="HEAD~1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=15.0)
    ap.add_argument("--source", choices=("mjpeg", "h264-file", "ts-stream", "rtsp-jpeg"), default="mjpeg")
    ap.add_argument("--stream", default="640x480@30", help="WxH@FPS of the ts-stream camera")
    ap.add_argument("--clips-off", action="store_true")
    ap.add_argument("--mjpeg-sampling", choices=("420", "422", "grey"), default="420")
    args = ap.parse_args()
    trees = {"baseline": export(args.baseline_ref), "ours": REPO}
    work = Path(tempfile.gettempdir()) / "motionwatch-live-ab"
    work.mkdir(exist_ok=True)
    config = work / ("clips-off.yaml" if args.clips_off else "defaults.yaml")
    config.write_text("events:\n  clip: false\n" if args.clips_off else "{}\n")
    if args.source == "mjpeg":
        server, url = start_mjpeg(work, args.mjpeg_sampling)
    elif args.source == "ts-stream":
        server, url = start_ts(work, args.stream, 4.0 + args.window + 5.0)
    elif args.source == "rtsp-jpeg":
        server, url = start_rtsp_jpeg(work, args.window)
    else:
        server, url = None, work / "live-640x480-30fps.mp4"
        if not url.exists():
            make_clip(url, 640, 480, args.window + 30.0, fps=30.0)
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    try:
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                with tempfile.TemporaryDirectory() as rec:
                    cmd = ["env", f"PYTHONPATH={trees[name]}", sys.executable, "-m", "motionwatch", "run",
                           "--source", str(url), "--recordings", rec, "--config", str(config), "-q"]
                    cpu[name].append(live_cpu(cmd, 4.0, args.window, cwd=rec))
                    clips = sum(f.stat().st_size for f in Path(rec).rglob("*.mp4")) / 1e6
                print(f"round {r + 1}: {name:8s} {cpu[name][-1]:.2f} CPU s / 1000 frames, clips {clips:.1f} MB",
                      flush=True)
    finally:
        if isinstance(server, TsServer):
            server.close()
        elif args.source == "rtsp-jpeg":
            stop_rtsp(server)
        elif server is not None:
            server.stdin.close()
            server.terminate()
            server.wait(timeout=10)
    base, ours = (statistics.median(cpu[n]) for n in ("baseline", "ours"))
    print(f"baseline {args.baseline_ref}: {base:.2f}, ours: {ours:.2f} CPU s / 1000 frames, ours / baseline {ours / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
