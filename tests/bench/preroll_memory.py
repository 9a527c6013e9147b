"""Peak RSS of a live `run` on 1080p sources: this tree against a baseline git ref.

    PYTHONPATH=. .venv/bin/python tests/bench/preroll_memory.py [--baseline-ref ff14022] [--seconds 40]
        [--rounds N] [--fresh-install]

Three 1080p sources, each watched with the default config (clips on, 2 s pre-roll) by
both trees in turn, each for the same seconds:

* H.264 served as live MPEG-TS over HTTP on loopback (clips are stream copies);
* the same pictures as most IP cameras encode them (no B-frames, one reference
  frame, a keyframe every 2 s), served alike;
* an MPEG-4 Part 2 file (what OpenCV writes) played at its own rate with
  `run --source FILE` (clips are encoded), two people walking by.

Peak RSS is sampled from /proc/PID/status (VmHWM). Prints one Markdown row per source
and round.

`--fresh-install` writes the installed OpenCV, NumPy, PyAV and pydantic-core
libraries again with their own bytes before every run, as `pip install` leaves
them (in the page cache, in large folios on Linux 6.18): the state a user's first
`run` after an install meets (cli.memory). It rewrites files of the venv in place.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# First: compare_peers drops library pages a fresh install left in large folios
# before this process maps the libraries (so the runs it starts can).
from compare_peers import make_clip, peak_rss  # noqa: E402
from scan_cpu import export  # noqa: E402
from ts_server import TsServer  # noqa: E402

from motionwatch.cli.memory import LIBRARY_PACKAGES, library_files  # noqa: E402
from motionwatch.sources.scene import Scene, Walker, write_video  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def h264_ts(work: Path) -> Path:
    ts = work / "mem-1920x1080-25fps.ts"
    if not ts.exists():
        mp4 = work / "mem-1920x1080-25fps.mp4"
        make_clip(mp4, 1920, 1080, 20.0, fps=25.0)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", "-f", "mpegts", str(ts)],
                       check=True)
    return ts


def ip_camera_ts(work: Path) -> Path:
    """The H.264 stream re-encoded as IP cameras send it: every picture a reference."""
    ts = work / "mem-1920x1080-25fps-noB.ts"
    if not ts.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(h264_ts(work)), "-c:v", "libx264", "-preset",
                        "veryfast", "-bf", "0", "-refs", "1", "-g", "50", "-b:v", "5M", "-maxrate", "5M",
                        "-bufsize", "5M", "-f", "mpegts", str(ts)], check=True)
    return ts


def mpeg4_file(work: Path, seconds: float) -> Path:
    path = work / f"mem-1920x1080-mp4v-{seconds:g}s.mp4"
    if not path.exists():
        walkers = (Walker(seconds * 0.25, 4.0, height=0.6), Walker(seconds * 0.6, 4.0, height=0.6))
        write_video(Scene(width=1920, height=1080, fps=25, duration_s=seconds, seed=5, noise=3.0,
                          walkers=walkers), str(path))
    return path


def write_libraries_again() -> None:
    """Each library file written anew with its own bytes, as pip unpacks a wheel."""
    for path in library_files(LIBRARY_PACKAGES):
        data, mode = path.read_bytes(), path.stat().st_mode
        path.unlink()
        path.write_bytes(data)
        path.chmod(mode)
    os.sync()


def run_peak(tree: Path, source: str, seconds: float, fresh: bool = False) -> tuple[float, int]:
    """(peak RSS in MB, events recorded) of `run --source` for `seconds`."""
    if fresh:
        write_libraries_again()
    with tempfile.TemporaryDirectory() as rec:
        env = dict(os.environ, PYTHONPATH=str(tree))
        peak = peak_rss([sys.executable, "-m", "motionwatch", "run", "--source", source, "--recordings", rec, "-q"],
                        seconds, cwd=rec, env=env)
        return peak / 2**20, len(list(Path(rec).rglob("event.json")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default="ff14022")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--fresh-install", action="store_true",
                    help="before each run, write the libraries again as pip install does (rewrites the venv's files)")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "motionwatch-peers"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    trees = {"before": export(args.baseline_ref), "ours": REPO}
    loops = max(1, round(args.seconds / 20.0)) + 1
    server, ip_server = TsServer(h264_ts(work), 20.0, loops=loops), TsServer(ip_camera_ts(work), 20.0, loops=loops)
    sources = {"H.264 MPEG-TS over HTTP (copied clips)": server.url,
               "H.264 without B-frames, one reference (an IP camera's), MPEG-TS over HTTP": ip_server.url,
               "MPEG-4 Part 2 file, paced (encoded clips)": str(mpeg4_file(work, args.seconds))}
    print(f"| 1080p25 source, {args.seconds:g} s | before peak RSS | ours peak RSS | events (before / ours) |")
    print("|---|---:|---:|---|")
    try:
        for label, source in [item for _ in range(args.rounds) for item in sources.items()]:
            got = {name: run_peak(tree, source, args.seconds, args.fresh_install) for name, tree in trees.items()}
            print(f"| {label} | {got['before'][0]:.0f} MB | {got['ours'][0]:.0f} MB | "
                  f"{got['before'][1]} / {got['ours'][1]} |", flush=True)
    finally:
        server.close()
        ip_server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
