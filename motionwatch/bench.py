"""`motionwatch bench [FILE]`: will this machine keep up?

Runs a bare decode-only loop (PyAV with its own decoder settings: every frame
decoded, its Y plane read)
and the full scan pipeline (decode, detect, track events, write snapshots and
clips) on the same file, each in its own process, alternating the two for a
few rounds, and prints the medians: frames/s, CPU milliseconds per frame,
their ratio and peak memory. With no FILE it first generates a clip of a
textured room with sensor noise and people walking through (H.264 encoded in
process, tagged BT.709 limited range like most camera recordings).

CPU time comes from getrusage() of each child process (all its threads),
so it is the cost of a frame on this machine whatever else is running; the
wall-clock figures depend on how busy the machine is.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from motionwatch.errors import MotionwatchError, SourceError


# --- a generated clip --------------------------------------------------------

def bench_scene(width: int, height: int, seconds: float, fps: float, seed: int = 3):
    """A room with noise and a person crossing every ~12 s (about half the time has motion)."""
    from motionwatch.sources.scene import Scene, Walker
    walkers = tuple(Walker(start_s=t, duration_s=6.0, shade=30 + (k * 37) % 120,
                           x_from=-0.15 if k % 2 == 0 else 1.15, x_to=1.15 if k % 2 == 0 else -0.15)
                    for k, t in enumerate(_frange(2.0, seconds - 6.0, 12.0)))
    return Scene(width=width, height=height, fps=fps, duration_s=seconds, seed=seed, noise=4.0,
                 walkers=walkers)


def _frange(a: float, b: float, step: float) -> list[float]:
    out = []
    while a <= b:
        out.append(a)
        a += step
    return out


def make_clip(path: str | Path, width: int, height: int, seconds: float, fps: float = 25.0,
              seed: int = 3, camera_tags: bool = True) -> Path:
    """Render the bench scene into an H.264 MP4 (in process; no ffmpeg program needed)."""
    from motionwatch.sources.scene import write_h264
    path = Path(path)
    # An IP camera's budget (about 0.1 bit per pixel: 2.3 Mbit/s at 720p25) and a
    # key frame every 2 s, so decoding costs what it costs on real recordings.
    bitrate = int(0.1 * width * height * fps)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    try:
        write_h264(bench_scene(width, height, seconds, fps, seed), tmp, bitrate, int(2 * fps), camera_tags)
    except OSError as e:
        raise MotionwatchError(f"cannot write {tmp}: {e.strerror or e}") from None
    os.replace(tmp, path)
    return path


# --- the measured loops (run in a child process each) --------------------------

def _cpu() -> float:
    """CPU seconds of this process (all its threads: decoder, encoder) and any children it has waited for."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def decode_only(path: str, threads: int | None = None) -> dict:
    """The floor: a bare PyAV loop that decodes every frame and reads its Y plane, and
    does nothing else. With `threads` None the decoder keeps PyAV's own settings, the
    loop anyone would write (slice threads: one thread's CPU on most camera files);
    with a number it decodes on that many FFmpeg frame threads, as a lone file's scan
    does, which costs a quarter to a third more CPU per frame (docs/performance.md)."""
    import av
    from motionwatch.media.frames import luma_view
    from motionwatch.media.packet_times import repeats_last
    from motionwatch.media.probe import video_stream
    from motionwatch.sources.pyav import decoder
    c0, t0 = _cpu(), time.perf_counter()
    n = 0
    with av.open(path) as container:
        stream = video_stream(container)
        if threads is not None:
            decoder(stream, threads, False)
        for pkt in container.demux(stream):
            if repeats_last(pkt):   # nothing to decode, and it would stop the decoder
                continue
            for frame in stream.decode(pkt):
                luma_view(frame)
                n += 1
    return {"frames": n, "cpu": _cpu() - c0, "wall": time.perf_counter() - t0}


def scan_pipeline(path: str, config: str | None) -> dict:
    """What `motionwatch scan` does: decode, detect, track events, write snapshots."""
    from dataclasses import replace
    from motionwatch.config import CameraConfig, load_config
    from motionwatch.index.database import EventIndex
    from motionwatch.pipeline.camera import CameraLoop
    from motionwatch.pipeline.runtime import build_sinks
    with tempfile.TemporaryDirectory(prefix="motionwatch-bench-") as rec:
        cfg = load_config(config)
        cam = replace(cfg.cameras[0] if cfg.cameras else CameraConfig(), name="bench", source=path)
        cfg = replace(cfg, cameras=(cam,), recordings=replace(cfg.recordings, path=rec))
        c0, t0 = _cpu(), time.perf_counter()
        seen = {}
        loop = CameraLoop(cam, cfg, build_sinks(cfg, EventIndex(Path(rec))), threading.Event(), scan=True,
                          on_frame=lambda f, d: seen.setdefault("luma", f.gray is not None))
        loop.open()
        try:
            st = loop.run()
        finally:
            loop.sinks.close()
        return {"frames": st.frames, "cpu": _cpu() - c0, "wall": time.perf_counter() - t0,
                "events": st.events, "stalls": st.stalls, "luma": seen.get("luma", False)}


def child_main(argv: list[str]) -> None:
    """Entry point of a measuring child: prints one JSON line."""
    kind, path, config = argv[0], argv[1], (argv[2] or None)
    result = decode_only(path) if kind == "decode" else scan_pipeline(path, config)
    result["rss"] = peak_rss()
    print(json.dumps(result), flush=True)


def peak_rss(pid: int | str = "self") -> int:
    """Peak resident memory in bytes (VmHWM; reset at exec, unlike a child's ru_maxrss,
    which would include the parent's pages copied at fork)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(kind: str, path: str, config: str | None = None) -> dict:
    """Run one measuring child and return its figures (frames, cpu, wall, rss...)."""
    code = "import sys; from motionwatch.bench import child_main; child_main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, kind, path, config or ""],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise MotionwatchError(f"bench: the {kind} run failed: {last[0]}")
    return json.loads(out.decode().strip().splitlines()[-1])


def compare(path: str, rounds: int, config: str | None = None, echo=None) -> dict:
    """Alternate decode-only and pipeline runs; medians of each figure."""
    runs: dict[str, list[dict]] = {"decode": [], "scan": []}
    for r in range(rounds):
        for kind in ("decode", "scan") if r % 2 == 0 else ("scan", "decode"):
            res = measure(kind, path, config)
            runs[kind].append(res)
            if echo:
                echo(f"  round {r + 1}/{rounds} {kind:6s}: {res['frames'] / res['wall']:7.1f} fps, "
                     f"{1000 * res['cpu'] / max(res['frames'], 1):6.2f} CPU ms/frame")
    return {kind: summarize(rs) for kind, rs in runs.items()}


def summarize(rs: list[dict]) -> dict:
    frames = rs[0]["frames"]
    out = {"frames": frames,
           "fps": statistics.median(r["frames"] / r["wall"] for r in rs),
           "cpu_ms": statistics.median(1000 * r["cpu"] / max(r["frames"], 1) for r in rs),
           "rss": max(r["rss"] for r in rs)}
    for k in ("events", "stalls", "luma"):
        if k in rs[0]:
            out[k] = rs[0][k]
    return out


# --- the report ------------------------------------------------------------------

def describe(path: str) -> str:
    import av
    from motionwatch.media.probe import facts, video_stream
    try:
        with av.open(path) as container:
            stream = video_stream(container)
            f = facts(stream) if stream is not None else None
    except av.FFmpegError:
        f = None
    if f is None:
        raise SourceError(f"{path}: not a video FFmpeg can decode")
    length = f"{f.frames} frames" if f.frames else f"{f.duration_s:.1f} s"   # Ogg, MKV, TS: no count
    return f"{f.width}x{f.height}, {f.fps:g} fps, {length}, {f.codec}"


def print_report(res: dict, info: str) -> None:
    d, s = res["decode"], res["scan"]
    if not d["frames"] or not s["frames"]:
        raise SourceError("bench: no frame could be decoded")
    print()
    print(f"{'':24s} {'frames/s':>9s} {'CPU ms/frame':>13s} {'peak RSS':>9s}")
    print(f"{'decode only (PyAV, Y)':24s} {d['fps']:9.1f} {d['cpu_ms']:13.2f} {d['rss'] / 2**20:7.0f} MB")
    print(f"{'motionwatch pipeline':24s} {s['fps']:9.1f} {s['cpu_ms']:13.2f} {s['rss'] / 2**20:7.0f} MB")
    print(f"{'ratio pipeline/decode':24s} {s['fps'] / d['fps']:8.2f}x {s['cpu_ms'] / d['cpu_ms']:12.2f}x")
    print()
    decoder = ("decoder's luma plane (colour only for saved frames)" if s.get("luma")
               else "BGR frames")
    print(f"pipeline: {s.get('events', 0)} event(s), {s.get('stalls', 0)} capture-loop stall(s), "
          f"detected on the {decoder}")
    src_fps = _fps_of(info)
    interval = f"1/{src_fps:g} s" if src_fps else "one frame interval"
    print(f"  a capture-loop stall is a frame that kept the loop busy longer than the source's frame "
          f"interval ({interval}): watched live, the camera's next frame would have waited or been dropped")
    if src_fps:
        share = s["cpu_ms"] * src_fps / 1000
        print(f"live at {src_fps:g} fps this needs {100 * share:.0f}% of one CPU core; "
              f"scanning runs {s['fps'] / src_fps:.1f}x faster than real time")


def _fps_of(info: str) -> float:
    try:
        return float(info.split(", ")[1].split()[0])
    except (IndexError, ValueError):
        return 0.0
