#!/usr/bin/env python3
"""Archive scanning on this machine: `--jobs 2` against `--jobs 1`, and a local
Dask cluster, as ratios measured in one run (the machine's speed, and whoever
else uses it, changes from run to run).

Run by hand (pytest does not collect it; it takes several minutes):

    PYTHONPATH=. .venv/bin/python tests/bench/scan_archive.py [--fps 15] [--cache DIR] [--skip-real] [--long-only] [--no-cluster]

* eight 60 s 1280x720 H.264 files (generated: textured room, sensor noise, people
  walking, IP-camera bitrate) and eight ~69 s copies of the real 1280x720 traffic
  camera file (../shared/footage, three times over, stream-copied by ffmpeg):
  `--jobs 1` against `--jobs 2`, events compared;
* one 10-minute 1280x720 file, generated and real (the traffic camera 26 times
  over): `--jobs 1` against `--jobs 2` (its decoding split into chunks decoded by two
  worker processes, detected in order), events compared;
* a Dask cluster on loopback (a scheduler and two one-thread workers started
  here) on the eight generated files: events compared with `--jobs 1`, and the
  overhead per task against the local `--jobs 2` pool; and on the 10-minute
  generated file (the client detects, the workers decode its chunks).

Events are compared by camera, first and last frame and the snapshot's bytes.
Generated and concatenated clips are cached in --cache between runs.

Each row also prints how many cores `--jobs 1` kept busy (CPU s / wall s: about
one, since `--jobs 1` decodes inside the detecting thread) and
the bound: the ratio `--jobs 2` would reach if the CPU it used kept every core busy
from start to end; and `vs one core`, `--jobs 2`'s wall time against `--jobs 1`'s
CPU time, i.e. against one process held to one core (the fair speed-up of the
second core, when `--jobs 1` already spreads over both). A ratio near its bound is all the cores can give; the gap is
start-up and the tail where one worker has nothing left. The summary at the end
gives the two targets' ratios, the cluster's overhead per task and whether the
events were identical. About 5 minutes on an idle 2-core machine once the clips
are cached (generating them the first time takes longer); `--skip-real`,
`--long-only` and `--no-cluster` shorten it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))          # tests/: dask_support, support.footage
sys.path.insert(0, str(HERE.parent.parent))   # the package

from dask_support import LoopbackCluster  # noqa: E402
from motionwatch.sources.scene import Scene, Walker, write_h264  # noqa: E402
from support.footage import FOOTAGE  # noqa: E402

# The cores this run may use: the bound a --jobs 2 run could reach is its CPU spread over all of them.
CORES = len(os.sched_getaffinity(0))
REAL = FOOTAGE / "dvrscan_traffic_camera" / "traffic_camera.mp4"
BITRATE = 2_000_000   # a 720p IP camera's main stream
GOP_S = 2
# Mean grey-level difference (at 160x90) within which two frames count as one picture.
SAME_PICTURE = 0.5


def visits(duration: float, every: float, seed: int) -> tuple[Walker, ...]:
    out, t, k = [], 3.0 + seed % 5, 0
    while t + 6 < duration:
        out.append(Walker(t, 5.0 + k % 3, shade=40 + 20 * (k % 3),
                          x_from=-0.15 if k % 2 == 0 else 1.15, x_to=1.15 if k % 2 == 0 else -0.15))
        t += every + (seed * 7 + k * 3) % 11
        k += 1
    return tuple(out)


def generated(cache: Path, name: str, duration: float, fps: float, seed: int) -> Path:
    path = cache / f"{name}-{fps:g}fps.mp4"
    if not path.exists():
        print(f"  making {path.name} ...", flush=True)
        scene = Scene(width=1280, height=720, fps=fps, duration_s=duration, seed=seed, noise=3.0,
                      walkers=visits(duration, 25.0, seed))
        tmp = path.with_suffix(".part.mp4")
        write_h264(scene, tmp, BITRATE, int(GOP_S * fps))
        tmp.rename(path)
    return path


def repeated(cache: Path, src: Path, times: int) -> Path:
    """`src` played `times` times over, stream-copied (no re-encode) by ffmpeg's concat demuxer."""
    path = cache / f"{src.stem}-x{times}.mp4"
    if not path.exists():
        lst = cache / "concat.txt"
        lst.write_text("".join(f"file '{src}'\n" for _ in range(times)))
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
                        "-c", "copy", str(path)], check=True)
    return path


def folder(work: Path, name: str, files: list[Path]) -> Path:
    """A folder of symbolic links: the files by new names, nothing copied."""
    d = work / name
    d.mkdir()
    for i, f in enumerate(files):
        (d / f"{name}{i}.mp4").symlink_to(f)
    return d


def scan(paths: list[Path], rec: Path, *extra: str) -> tuple[float, float, list]:
    """(wall s, CPU s, events) of one `motionwatch scan` run into a fresh folder."""
    shutil.rmtree(rec, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "motionwatch", "scan", *map(str, paths), "--recordings", str(rec),
                           "--no-progress", "-q", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"scan {' '.join(extra)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, events(rec)


@dataclass(frozen=True, order=True)
class Ev:
    camera: str
    start: int
    end: int
    motion: int          # frames_with_motion
    snap: str            # the snapshot's md5, short
    snapshot: Path       # the JPEG (gone once the next scan into that folder starts)


def events(rec: Path) -> list[Ev]:
    out = subprocess.run([sys.executable, "-m", "motionwatch", "events", "--json", "--recordings", str(rec)],
                         capture_output=True, text=True, check=True).stdout
    return sorted(Ev(e["camera"], e["start_frame"], e["end_frame"], e["frames_with_motion"],
                     hashlib.md5((rec / e["snapshot"]).read_bytes()).hexdigest()[:8], rec / e["snapshot"])
                  for e in json.loads(out))


def same(a: list[Ev], b: list[Ev]) -> str:
    if len(a) != len(b):
        return f"DIFFERENT: {len(a)} vs {len(b)} events"
    off = [(x, y) for x, y in zip(a, b) if x.camera != y.camera or abs(x.start - y.start) > 1 or abs(x.end - y.end) > 1]
    snaps = sum(x.snap != y.snap for x, y in zip(a, b))
    motion = sum(x.motion != y.motion for x, y in zip(a, b))
    if off:
        return f"DIFFERENT: {len(off)} of {len(a)} events moved by more than a frame: {off[:2]}"
    return (f"identical ({len(a)} events" + (f", {snaps} snapshot(s) differ" if snaps else ", same snapshots")
            + (f", frames_with_motion differs in {motion})" if motion else ", same frames_with_motion)"))


def differences(a: list[Ev], b: list[Ev], sources: dict[str, Path]) -> list[str]:
    """One line per event whose frames_with_motion or snapshot differs between the two scans:
    the counts and, for a snapshot, the frame each scan chose (found by decoding the event's
    frames and matching the JPEGs), so a difference can be measured, not guessed."""
    lines = []
    if len(a) != len(b):
        return lines
    for x, y in zip(a, b):
        if x.motion != y.motion:
            lines.append(f"    {x.camera} frames {x.start}-{x.end}: frames_with_motion {x.motion} (jobs 1) vs {y.motion} "
                         f"(jobs 2), {y.motion - x.motion:+d} ({100 * (y.motion - x.motion) / max(x.motion, 1):+.1f} %)")
        if x.snap != y.snap and x.camera in sources:
            fx, fy = snapshot_frames(sources[x.camera], [x.snapshot, y.snapshot], min(x.start, y.start), max(x.end, y.end))
            lines.append(f"    {x.camera} frames {x.start}-{x.end}: snapshot frame {frames_text(fx)} (jobs 1) vs "
                         f"{frames_text(fy)} (jobs 2)")
    return lines


def snapshot_frames(video: Path, jpegs: list[Path], first: int, last: int) -> list[list[int]]:
    """The frame indices in [first, last] that each snapshot JPEG shows: the decoded frames
    nearest to it, compared small and grey (JPEG noise is far below one frame's difference
    from the next). More than one where the picture repeats (the traffic file played 26 times)."""
    import av
    import cv2
    import numpy as np
    size = (160, 90)
    wanted = [cv2.resize(cv2.imread(str(j), cv2.IMREAD_GRAYSCALE), size, interpolation=cv2.INTER_AREA).astype(np.float32)
              for j in jpegs]
    dist: list[list[tuple[float, int]]] = [[] for _ in jpegs]
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(stream)):   # display order: the scan's frame indices
            if i > last:
                break
            if i < first:
                continue
            small = cv2.resize(frame.to_ndarray(format="gray"), size, interpolation=cv2.INTER_AREA).astype(np.float32)
            for k, w in enumerate(wanted):
                dist[k].append((float(np.mean(np.abs(small - w))), i))
    out = []
    for d in dist:
        best = min(d)[0]
        out.append([i for x, i in sorted(d) if x <= best + SAME_PICTURE])   # the nearest first
    return out


def frames_text(frames: list[int]) -> str:
    if len(frames) == 1:
        return str(frames[0])
    return f"{frames[0]} (or {', '.join(map(str, frames[1:4]))}{', ...' if len(frames) > 4 else ''}: " \
           f"{len(frames)} frames show that picture)"


def sources_of(paths: list[Path]) -> dict[str, Path]:
    """camera name (the file's stem) -> the file, for the files a scan of `paths` reads."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.glob("*.mp4")))]
    return {f.stem: f for f in files}


@dataclass
class Row:
    label: str
    ratio: float        # --jobs 2 wall / --jobs 1 wall
    bound: float        # the best ratio --jobs 2 could reach with the CPU it used: both cores busy throughout
    cores1: float       # cores --jobs 1 kept busy (CPU s / wall s)
    one_core: float     # --jobs 2 wall / --jobs 1 CPU: against one process held to one core
    identical: bool


def compare(label: str, paths: list[Path], work: Path) -> tuple[Row, float, list]:
    w1, c1, e1 = scan(paths, work / "rec1", "--jobs", "1")
    w2, c2, e2 = scan(paths, work / "rec2", "--jobs", "2")
    verdict = same(e1, e2)
    row = Row(label, w2 / w1, c2 / CORES / w1, c1 / w1, w2 / c1, verdict.startswith("identical"))
    print(f"{label:<42} jobs1 {w1:6.1f} s ({row.cores1:.2f} cores)  jobs2 {w2:6.1f} s  ratio {row.ratio:.2f} "
          f"(bound {row.bound:.2f}, vs one core {row.one_core:.2f})  CPU jobs2/jobs1 {c2 / c1:.2f}  events: {verdict}", flush=True)
    for line in differences(e1, e2, sources_of(paths)):
        print(line, flush=True)
    return row, w2, e1


def cluster_long(work: Path, long: Path, jobs2_wall: float, seq: list) -> bool:
    """One long file on a loopback Dask cluster (its chunks decoded by the workers):
    identical events to --jobs 1."""
    with LoopbackCluster(2, work) as c:
        wd, _, ed = scan([long], work / "recdl", "--cluster", c.address)
    verdict = same(seq, ed)
    print(f"{'one 10-minute generated on Dask (2x1 thr)':<42} dask {wd:6.1f} s  jobs2 {jobs2_wall:6.1f} s  "
          f"ratio {wd / jobs2_wall:.2f}  events vs jobs1: {verdict}", flush=True)
    return verdict.startswith("identical")


def cluster(work: Path, eight_dir: Path, jobs2_wall: float, seq: list, cache: Path, fps: float) -> tuple[float, bool]:
    """(overhead per task in s against the local pool, identical events) on a loopback Dask cluster."""
    with LoopbackCluster(2, work) as c:
        wd, _, ed = scan([eight_dir], work / "recd", "--cluster", c.address)
        verdict = same(seq, ed)
        per_task = (wd - jobs2_wall) / 8
        print(f"{'eight 60 s 720p generated on Dask (2x1 thr)':<42} dask {wd:6.1f} s  jobs2 {jobs2_wall:6.1f} s  "
              f"ratio {wd / jobs2_wall:.2f}  overhead per task {per_task:+.2f} s  events vs jobs1: {verdict}",
              flush=True)
        tiny = [generated(cache, f"tiny{i}", 2.0, fps, 20 + i) for i in range(16)]
        tdir = folder(work, "tiny", tiny)
        wt2, _, _ = scan([tdir], work / "rect2", "--jobs", "2")
        wtd, _, _ = scan([tdir], work / "rectd", "--cluster", c.address)
        print(f"{'sixteen 2 s files: Dask against jobs 2':<42} dask {wtd:6.1f} s  jobs2 {wt2:6.1f} s  "
              f"overhead per task {(wtd - wt2) / len(tiny):+.3f} s", flush=True)
    return (wtd - wt2) / len(tiny), verdict.startswith("identical")


def summary(rows: list[Row], dask: tuple[float, bool] | None) -> None:
    print("\nsummary (target: --jobs 2 wall <= 0.6 x --jobs 1 wall, identical events)")
    for r in rows:
        print(f"  {r.label:<42} ratio {r.ratio:.2f} ({'met' if r.ratio <= 0.6 else 'NOT met'})  bound {r.bound:.2f}  "
              f"jobs1 used {r.cores1:.2f} cores  vs one core {r.one_core:.2f}")
    if dask is not None:
        print(f"  cluster overhead per task {dask[0]:+.3f} s (sixteen 2 s files, Dask against --jobs 2)")
    same_all = all(r.identical for r in rows) and (dask is None or dask[1])
    print(f"  identical events: {'yes' if same_all else 'no'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fps", type=float, default=15.0, help="frame rate of the generated files (default 15)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "motionwatch-bench-archive")
    ap.add_argument("--skip-real", action="store_true", help="generated files only")
    ap.add_argument("--long-only", action="store_true", help="only the 10-minute files")
    ap.add_argument("--no-cluster", action="store_true", help="leave out the Dask cluster")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parents[1] / "motionwatch")], check=True)
    print(f"scan_archive bench, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{CORES} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    long = generated(args.cache, "ten-minutes", 600.0, args.fps, 11)
    eight = [] if args.long_only else [generated(args.cache, f"minute{i}", 60.0, args.fps, i + 1) for i in range(8)]
    real = not args.skip_real and REAL.exists()
    rows, dask = [], None
    with tempfile.TemporaryDirectory(prefix="mw-bench-") as tmp:
        work = Path(tmp)
        if eight:
            gen = folder(work, "gen", eight)
            row, jobs2_wall, seq = compare(f"eight 60 s 720p generated ({args.fps:g} fps)", [gen], work)
            rows.append(row)
        long_row, long_w2, long_seq = compare(f"one 10-minute 720p generated ({args.fps:g} fps)", [long], work)
        rows.append(long_row)
        if real and eight:
            real_minute = repeated(args.cache, REAL, 3)
            rows.append(compare("eight 69 s 720p real (traffic camera, 25 fps)",
                                [folder(work, "real", [real_minute] * 8)], work)[0])
        if real:
            rows.append(compare("one 10-minute 720p real (traffic camera x26)",
                                [repeated(args.cache, REAL, 26)], work)[0])
        # The clusters last: their processes' CPU reaches this process's children's
        # usage when they are reaped, and would count against the next scan measured.
        if not args.no_cluster:
            long_row.identical &= cluster_long(work, long, long_w2, long_seq)
        if eight and not args.no_cluster:
            dask = cluster(work, gen, jobs2_wall, seq, args.cache, args.fps)
    summary(rows, dask)


if __name__ == "__main__":
    main()
