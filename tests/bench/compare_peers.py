#!/usr/bin/env python3
"""The performance table: motionwatch against a decode-only loop, DVR-Scan and Motion.

Run by hand (pytest does not collect it; it takes several minutes):

    .venv/bin/python tests/bench/compare_peers.py [--rounds 3] [--quick] [--skip-dvr] [--skip-live]
        [--baseline-ref REF] [--tools NAME ...] [--live-only MJPEG] [--live-file F] [--mjpeg-sampling 422] [--clips FILE ...]
        [--memory-clip MP4]

Everything is measured in this run, on the same inputs, and reported as ratios
against the decode-only baseline measured alongside, because the machine's
speed (and whoever else is using it) changes from run to run:

* The package is byte-compiled first, as pip does for a normal install.
* decode-only: a PyAV loop that decodes every frame with PyAV's own decoder
  settings and reads its Y plane as a NumPy view, importing nothing else (the
  loop the issue names); the ratios are against it, start-up included.
  "decode-only, 2 frame threads" is the same loop on FFmpeg frame threads as a
  lone file's default scan decodes (until 2026-12-05 the baseline: it costs a
  quarter more CPU, which flattered every ratio). A 5-frame file's row shows
  what start-up and exit cost on their own.
* scan (defaults, clips re-encoded with `clip_codec: h264`, clips off,
  fast_decode off, detection.fps 15, 10 and 5): generated H.264 clips
  (640x480, 1280x720, 1920x1080; textured room, sensor noise, people walking,
  encoded at IP-camera bitrates and tagged BT.709 limited range like camera
  files), the real camera file ../shared/footage/dvrscan_traffic_camera/
  traffic_camera.mp4 and ../shared/footage/opencv_vtest/vtest.avi, and any files
  given with --clips (your own camera's recordings). Each tool runs as its own process;
  CPU seconds come from wait4() (the process and the children it waited for,
  e.g. the ffmpeg clip encoder), peak RSS from sampling /proc/PID/status VmHWM.
  Runs are interleaved round by round and the median is reported.
* DVR-Scan (`dvr-scan-headless`, installed into its own venv under the work
  folder) with its defaults, `-b CNT` and `-df 4`; skipped with a message when
  it cannot be installed.
* live: `motionwatch run` (defaults, and with clips off) and the `motion`
  daemon (/usr/bin/motion, web ports off; movie_output on and off) reading the
  same 640x480 source paced at 30 fps, an H.264 file and a loopback
  MJPEG-over-HTTP camera; CPU from /proc/PID/stat over a steady window after
  warm-up, per 1000 source frames.
* memory: peak RSS of `motionwatch run` with defaults (clips on, 2 s
  pre-roll) on a 1080p25 H.264 camera, a looped generated clip served as live
  MPEG-TS over HTTP on loopback (tests/ts_server.py), with people walking;
  or, with --memory-clip, your own camera's MP4 (H.264 or HEVC) looped the same way.
* frame age at decision, dropped frames and capture-loop stalls from the same
  capture loop run in-process on each live source.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))   # the shared harness: where the footage lies

# Measured as a user's `run` meets it: this process maps the same libraries (it renders
# the clips), and a page it maps cannot be dropped by the runs it starts, so library
# pages a fresh install left in large folios (cli.memory) are dropped before it does.
from motionwatch.cli.memory import release_fresh_library_pages  # noqa: E402
release_fresh_library_pages()
from motionwatch.bench import bench_scene, make_clip  # noqa: E402
from support.footage import FOOTAGE  # noqa: E402

VTEST = FOOTAGE / "opencv_vtest" / "vtest.avi"
PY = sys.executable
MW = [PY, "-m", "motionwatch"]
TICK = os.sysconf("SC_CLK_TCK")

# The baseline is the loop a user would write, importing PyAV and NumPy only: until
# 2026-12-06 it imported motionwatch's decoder helpers, which brought pydantic, OpenCV
# and the config models along (0.2 s of start-up CPU) and flattered short files' ratios.
# OpenBLAS's thread pool is kept to one thread as motionwatch does, so NumPy's import
# costs the baseline no more than it costs motionwatch.
DECODE_LOOP = """
import os, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import av
import numpy as np
n = 0
with av.open(sys.argv[1]) as container:
    stream = container.streams.video[0]
    if len(sys.argv) > 2:
        stream.codec_context.thread_count = int(sys.argv[2])
        stream.codec_context.thread_type = "FRAME"
    for frame in container.decode(stream):
        plane = frame.planes[0]
        np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]
        n += 1
print(n)
"""
TRAFFIC = FOOTAGE / "dvrscan_traffic_camera" / "traffic_camera.mp4"


# --- measuring a process -------------------------------------------------------

class RssSampler(threading.Thread):
    """Polls a process's VmHWM (peak RSS) and VmRSS until it exits."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.samples: list[int] = []

    def run(self) -> None:
        while not self.done.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
                    elif line.startswith("VmRSS:"):
                        self.samples.append(int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            self.done.wait(0.05)

    def growth(self) -> int:
        """Highest RSS in the last third of the run minus the highest in the middle third
        (start-up excluded): about 0 when memory stays flat over a long scan."""
        n = len(self.samples)
        if n < 9:
            return 0
        return max(self.samples[2 * n // 3:]) - max(self.samples[n // 3: 2 * n // 3])


def run_measured(cmd: list[str], cwd: str | None = None, env: dict | None = None) -> dict:
    """Run a command to the end: CPU seconds (with waited-for children), wall, peak RSS, output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    sampler = RssSampler(proc.pid)
    sampler.start()
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    sampler.done.set()
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out[0].decode(errors="replace") if out else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {text.strip()[-400:]}")
    return {"cpu": usage.ru_utime + usage.ru_stime, "wall": wall, "rss": sampler.peak, "out": text,
            "growth": sampler.growth()}


def proc_cpu(pid: int) -> float:
    """CPU seconds of a running process and all its descendants, finished or still
    running: a clip encoder busy at either end of a window must count in full."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0     # exited between listing and reading: its time is in the parent's cutime
    own = sum(int(v) for v in fields[11:15]) / TICK
    return own + sum(proc_cpu(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


# --- inputs ----------------------------------------------------------------------

def clips(work: Path, seconds: float, own: list[Path] | None = None) -> list[tuple[str, Path, list]]:
    """(label, path, truth intervals) for the scan table; generated once and kept in
    `work`. `own`: files of the caller's (real camera recordings), each labelled by
    its name and picture size, with no truth: their events are counted."""
    out = []
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        path = work / f"bench-{w}x{h}-{seconds:g}s.mp4"
        if not path.exists():
            print(f"generating {path.name} ...", flush=True)
            make_clip(path, w, h, seconds, fps=25.0)
        out.append((f"{w}x{h} H.264", path, bench_scene(w, h, seconds, 25.0).truth()))
    # What every scan pays before its first frame and after its last (imports, the
    # config models, opening the index, exiting): a file of a fifth of a second.
    start = work / "bench-startup-640x480.mp4"
    if not start.exists():
        make_clip(start, 640, 480, 0.2, fps=25.0)
    out.append(("start-up: 5-frame 640x480", start, None))
    if TRAFFIC.exists():
        out.append(("traffic_camera.mp4 1280x720", TRAFFIC, None))
    if VTEST.exists():
        out.append(("vtest.avi 768x576", VTEST, None))
    else:
        print(f"skipping vtest: {VTEST} not found", flush=True)
    for path in own or []:
        out.append((f"{path.name} {picture_size(path)}", path, None))
    return out


def stream_facts(path: Path):
    """media.probe's facts of the file's video stream."""
    import av
    from motionwatch.media.probe import facts
    with av.open(str(path)) as c:
        return facts(c.streams.video[0])


def picture_size(path: Path) -> str:
    f = stream_facts(path)
    return f"{f.width}x{f.height} {f.codec}"


def frame_count(path: Path) -> int:
    r = subprocess.run([PY, "-c", DECODE_LOOP, str(path)], capture_output=True, text=True, check=True, cwd=str(REPO))
    return int(r.stdout.strip().splitlines()[-1])


# --- the tools ---------------------------------------------------------------------

def dvr_scan_bin(work: Path) -> Path | None:
    venv = work / "dvr-venv"
    exe = venv / "bin" / "dvr-scan"
    if exe.exists():
        return exe
    print("installing dvr-scan-headless into", venv, flush=True)
    try:
        subprocess.run([PY, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "dvr-scan-headless"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"DVR-Scan skipped: cannot install dvr-scan-headless ({e})", flush=True)
        return None
    return exe if exe.exists() else None


def tool_commands(dvr: Path | None, noclip_cfg: Path, encode_cfg: Path, extra: dict[str, Path]) -> dict:
    """name -> function(path, outdir) -> argv."""
    def with_config(cfg: Path):
        return lambda p, o: MW + ["scan", str(p), "--recordings", str(o), "--no-progress", "-q", "--config", str(cfg)]
    tools = {
        "decode-only": lambda p, o: [PY, "-c", DECODE_LOOP, str(p)],
        "decode-only, 2 frame threads": lambda p, o: [PY, "-c", DECODE_LOOP, str(p), "2"],
        "motionwatch scan": lambda p, o: MW + ["scan", str(p), "--recordings", str(o), "--no-progress", "-q"],
        "motionwatch scan --jobs 1": lambda p, o: MW + ["scan", str(p), "--recordings", str(o), "--no-progress", "-q",
                                                        "--jobs", "1"],
        "motionwatch scan, clips re-encoded": lambda p, o: MW + [
            "scan", str(p), "--recordings", str(o), "--no-progress", "-q", "--config", str(encode_cfg)],
        "motionwatch scan, clips off": lambda p, o: MW + ["scan", str(p), "--recordings", str(o),
                                                          "--no-progress", "-q", "--config", str(noclip_cfg)],
        "motionwatch scan, clips off, --detect-every 3": lambda p, o: MW + [
            "scan", str(p), "--recordings", str(o), "--no-progress", "-q", "--config", str(noclip_cfg),
            "--detect-every", "3"],
        **{f"motionwatch scan, {name}": with_config(cfg) for name, cfg in extra.items()},
    }
    if dvr is not None:
        tools["dvr-scan (defaults)"] = lambda p, o: [str(dvr), "-i", str(p), "-d", str(o), "-q"]
        tools["dvr-scan -b CNT"] = lambda p, o: [str(dvr), "-i", str(p), "-d", str(o), "-q", "-b", "CNT"]
        tools["dvr-scan -df 4"] = lambda p, o: [str(dvr), "-i", str(p), "-d", str(o), "-q", "-df", "4"]
    return tools


def events_of(tool: str, out: str, outdir: Path) -> list[tuple[float, float]] | None:
    """Event intervals in seconds a tool reported (None when unknown)."""
    if tool.startswith("motionwatch"):
        r = subprocess.run(MW + ["events", "--recordings", str(outdir), "--json"], capture_output=True, text=True)
        try:
            return sorted((e["start_offset_s"], e["end_offset_s"]) for e in json.loads(r.stdout))
        except (ValueError, KeyError):
            return []
    if tool.startswith("dvr-scan"):
        # With -q DVR-Scan prints only the events' timecodes: start,end,start,end,...
        secs = [int(h) * 3600 + int(m) * 60 + float(s)
                for h, m, s in re.findall(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", out)]
        return list(zip(secs[0::2], secs[1::2]))
    return None


def score(events, truth) -> str:
    if events is None:
        return ""
    if truth is None or not events:
        return f"{len(events)} ev"
    hit = sum(any(a <= e1 + 1.0 and e0 - 1.0 <= b for e0, e1 in events) for a, b in truth)
    false = sum(not any(a <= e1 + 1.0 and e0 - 1.0 <= b for a, b in truth) for e0, e1 in events)
    return f"{len(events)} ev, {hit}/{len(truth)} found, {false} false"


# --- the scan table -------------------------------------------------------------------

def baseline_tools(ref: str, noclip_cfg: Path) -> dict:
    """`scan` (defaults, clips off) of the tree at git `ref`, to measure a change
    before and after in one run. -P: the current folder (this tree) must not come
    before the baseline's PYTHONPATH."""
    from scan_cpu import export
    tree = export(ref)
    subprocess.run([PY, "-m", "compileall", "-q", str(tree / "motionwatch")], check=True)
    mw = ["env", f"PYTHONPATH={tree}", PY, "-P", "-m", "motionwatch"]
    return {f"motionwatch scan @{ref}": lambda p, o: mw + ["scan", str(p), "--recordings", str(o),
                                                         "--no-progress", "-q"],
            f"motionwatch scan, clips off @{ref}": lambda p, o: mw + [
                "scan", str(p), "--recordings", str(o), "--no-progress", "-q", "--config", str(noclip_cfg)]}


def scan_table(work: Path, rounds: int, seconds: float, dvr: Path | None, only: list[str] | None = None,
               baseline: str | None = None, tool_words: list[str] | None = None,
               own: list[Path] | None = None) -> list[dict]:
    noclip = work / "noclip.yaml"
    noclip.write_text("events:\n  clip: false\n")
    encode = work / "encode.yaml"
    encode.write_text("events:\n  clip_codec: h264\n")
    extra = {}
    for name, text in (("fast_decode off", "detection:\n  fast_decode: false\n"),
                       ("detection.fps 15", "detection:\n  fps: 15\n"),
                       ("detection.fps 10", "detection:\n  fps: 10\n"),
                       ("detection.fps 5", "detection:\n  fps: 5\n")):
        extra[name] = work / f"{name.replace(' ', '-')}.yaml"
        extra[name].write_text(text)
    tools = tool_commands(dvr, noclip, encode, extra)
    if baseline:
        tools.update(baseline_tools(baseline, noclip))
    if tool_words:
        tools = {t: c for t, c in tools.items() if t == "decode-only" or t in tool_words}
    rows = []
    for label, path, truth in clips(work, seconds, own):
        if only and not any(word in label for word in only):
            continue
        n = frame_count(path)
        runs: dict[str, list[dict]] = {t: [] for t in tools}
        evs: dict[str, str] = {}
        for r in range(rounds):
            order = list(tools) if r % 2 == 0 else list(reversed(tools))
            for tool in order:
                outdir = Path(tempfile.mkdtemp(prefix="mw-out-", dir=work))
                try:
                    res = run_measured(tools[tool](path, outdir), cwd=str(REPO))
                except RuntimeError as e:
                    print(f"  {tool} failed on {label}: {e}", flush=True)
                    continue
                runs[tool].append(res)
                if r == 0:
                    evs[tool] = score(events_of(tool, res["out"], outdir), truth)
                shutil.rmtree(outdir, ignore_errors=True)
                print(f"  {label:20s} round {r + 1}: {tool:28s} {1000 * res['cpu'] / n:7.2f} CPU ms/frame "
                      f"{n / res['wall']:7.1f} fps {res['rss'] / 2**20:6.0f} MB", flush=True)
        base = runs["decode-only"]
        if not base:
            continue
        b_cpu = statistics.median(x["cpu"] for x in base) / n
        b_fps = statistics.median(n / x["wall"] for x in base)
        for tool, rs in runs.items():
            if not rs:
                continue
            cpu = statistics.median(x["cpu"] for x in rs) / n
            fps = statistics.median(n / x["wall"] for x in rs)
            rows.append({"clip": label, "frames": n, "tool": tool, "cpu_ms": 1000 * cpu, "fps": fps,
                         "cpu_ratio": cpu / b_cpu, "fps_ratio": fps / b_fps,
                         "rss_mb": max(x["rss"] for x in rs) / 2**20, "events": evs.get(tool, ""),
                         "growth_mb": max(x["growth"] for x in rs) / 2**20})
    return rows


# --- live runs ------------------------------------------------------------------------

MOTION_CONF = """daemon off
setup_mode off
log_level 4
target_dir {out}
netcam_url {url}
framerate 30
width 640
height 480
picture_output off
movie_output {movie}
movie_codec mp4
webcontrol_port 0
stream_port 0
"""


def start_mjpeg(work: Path, sampling: str = "420") -> tuple[subprocess.Popen, str]:
    server = REPO / "tests" / "mjpeg_server.py"
    proc = subprocess.Popen([PY, str(server), "--port", "0", "--fps", "30", "--size", "640x480", "--mode", "motion",
                             "--sampling", sampling],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    line = proc.stdout.readline().split()
    if len(line) < 2 or line[0] != "listening":
        proc.kill()
        raise RuntimeError("mjpeg_server did not start")
    return proc, f"http://127.0.0.1:{line[1]}/"


def live_cpu(cmd: list[str], warmup: float, window: float, cwd: str | None = None) -> float:
    """CPU seconds per 1000 frames at 30 fps, over `window` seconds after `warmup`."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited early ({proc.returncode})")
        c0, t0 = proc_cpu(proc.pid), time.perf_counter()
        time.sleep(window)
        c1, t1 = proc_cpu(proc.pid), time.perf_counter()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return (c1 - c0) / ((t1 - t0) * 30.0) * 1000.0


def live_table(work: Path, rounds: int, window: float, only: list[str] | None = None,
               sampling: str = "420", live_file: Path | None = None) -> list[dict]:
    live_clip = live_file or work / "live-640x480-30fps.mp4"
    wanted = lambda label: not only or any(w.lower() in label.lower() for w in only)  # noqa: E731
    if wanted("file 640x480@30") and not live_clip.exists():
        print(f"generating {live_clip.name} ...", flush=True)
        make_clip(live_clip, 640, 480, max(60.0, window + 30.0), fps=30.0)
    noclip = work / "live.yaml"
    noclip.write_text("events:\n  clip: false\n")
    rate15 = work / "live-fps15.yaml"
    rate15.write_text("detection:\n  fps: 15\n")
    rows = []
    server, url = start_mjpeg(work, sampling)
    try:
        sources = {"file 640x480@30": (str(live_clip), f"file://{live_clip}"),
                   "MJPEG/HTTP 640x480@30": (url, url)}
        for label, (mw_src, motion_src) in sources.items():
            if not wanted(label):
                continue
            out = Path(tempfile.mkdtemp(prefix="mw-live-", dir=work))
            conf, conf_rec = out / "motion.conf", out / "motion-rec.conf"
            conf.write_text(MOTION_CONF.format(out=out, url=motion_src, movie="off"))
            conf_rec.write_text(MOTION_CONF.format(out=out, url=motion_src, movie="on"))
            tools = {
                "motionwatch run (defaults)": MW + ["run", "--source", mw_src, "--recordings", str(out / "mwd"), "-q"],
                "motionwatch run, clips off": MW + ["run", "--source", mw_src, "--recordings", str(out / "mw"),
                                                    "--config", str(noclip), "-q"],
                "motionwatch run (defaults + detection.fps 15)": MW + [
                    "run", "--source", mw_src, "--recordings", str(out / "mw15"), "--config", str(rate15), "-q"],
                "motion": ["/usr/bin/motion", "-n", "-c", str(conf)],
                "motion, movie_output on": ["/usr/bin/motion", "-n", "-c", str(conf_rec)],
            }
            runs: dict[str, list[float]] = {t: [] for t in tools}
            for r in range(rounds):
                for tool in (tools if r % 2 == 0 else reversed(list(tools))):
                    if tool.startswith("motion") and not tool.startswith("motionwatch") \
                            and not Path("/usr/bin/motion").exists():
                        continue
                    try:
                        v = live_cpu(tools[tool], 4.0, window, cwd=str(REPO))
                    except RuntimeError as e:
                        print(f"  {tool} on {label}: {e}", flush=True)
                        continue
                    runs[tool].append(v)
                    print(f"  {label:22s} round {r + 1}: {tool:16s} {v:5.2f} CPU s / 1000 frames", flush=True)
            probe = in_process_probe(mw_src, min(window, 15.0))
            for tool, vs in runs.items():
                if vs:
                    med = statistics.median(vs)
                    # Recording on is compared with motion recording on, recording off with off.
                    peer = runs["motion, movie_output on" if "defaults" in tool or "movie" in tool else "motion"]
                    base = statistics.median(peer) if peer else None
                    rows.append({"source": label, "tool": tool, "cpu_per_1000": med,
                                 "ratio": med / base if base else None,
                                 **(probe if tool == "motionwatch run, clips off" else {})})
            shutil.rmtree(out, ignore_errors=True)
    finally:
        server.stdin.close()
        server.terminate()
        server.wait(timeout=10)
    return rows


def peak_rss(cmd: list[str], seconds: float, cwd: str | None = None, env: dict | None = None) -> int:
    """Peak RSS in bytes of `cmd` run for `seconds`, then stopped with SIGTERM."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = RssSampler(proc.pid)
    sampler.start()
    time.sleep(seconds)
    proc.terminate()
    proc.wait(30)
    sampler.done.set()
    return sampler.peak


def memory_row(work: Path, seconds: float, clip: Path | None = None) -> dict:
    """Peak RSS of `run` (defaults) on a live 1080p25 H.264 camera served as MPEG-TS over
    HTTP: the generated clip, or `clip` (an MP4 of your camera's, H.264 or HEVC) looped."""
    from ts_server import TsServer, remux_to_ts
    mp4 = clip or work / "live-1920x1080-25fps.mp4"
    if not mp4.exists():
        print(f"generating {mp4.name} ...", flush=True)
        make_clip(mp4, 1920, 1080, 20.0, fps=25.0)
    length = (stream_facts(mp4).duration_s or 20.0) if clip else 20.0
    ts = remux_to_ts(mp4, work / f"memory-{mp4.stem}.ts" if clip else None)
    server = TsServer(ts, length, loops=max(1, round(seconds / length)))
    out = Path(tempfile.mkdtemp(prefix="mw-mem-", dir=work))
    try:
        peak = peak_rss(MW + ["run", "--source", server.url, "--recordings", str(out / "rec"), "-q"],
                        seconds, cwd=str(REPO))
        events = len(list((out / "rec").rglob("event.json")))
        clips = len(list((out / "rec").rglob("clip-*.mp4")))
        return {"peak_mb": peak / 2**20, "events": events, "clips": clips, "seconds": seconds,
                "camera": f"{picture_size(mp4)} {mp4.name}" if clip else "1080p25 H.264"}
    finally:
        server.close()
        shutil.rmtree(out, ignore_errors=True)


PROBE = """
import json, sys, threading, time
from dataclasses import replace
from motionwatch.config import load_config, CameraConfig
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sinks import SinkRunner
cfg = load_config(None)
cfg = replace(cfg, events=replace(cfg.events, clip=False), recordings=replace(cfg.recordings, path=sys.argv[3]))
cam = replace(CameraConfig(), name="probe", source=sys.argv[1])
ages = []
stop = threading.Event()
loop = CameraLoop(cam, cfg, SinkRunner([]), stop, on_frame=lambda f, d: ages.append(time.time() - f.wall))
loop.open()
threading.Timer(float(sys.argv[2]), stop.set).start()
st = loop.run()
ages = sorted(ages[30:]) or [0.0]
print(json.dumps({"age_ms_median": 1000 * ages[len(ages) // 2], "age_ms_p99": 1000 * ages[int(len(ages) * 0.99)],
                  "frames": st.frames, "dropped": st.dropped, "stalls": st.stalls}))
"""


def in_process_probe(source: str, seconds: float) -> dict:
    """Frame age at decision (capture time to detection result), drops and stalls of the capture loop."""
    with tempfile.TemporaryDirectory() as rec:
        r = subprocess.run([PY, "-c", PROBE, source, str(seconds), rec], capture_output=True, text=True,
                           cwd=str(REPO), timeout=seconds + 60)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"  probe on {source} failed: {r.stderr.strip()[-300:]}", flush=True)
        return {}


# --- report --------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import av
    import cv2
    return (f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, OpenCV {cv2.__version__}, "
            f"PyAV {av.__version__}, "
            f"load average at start {os.getloadavg()[0]:.1f}")


def report(scan_rows: list[dict], live_rows: list[dict], header: str, memory: dict | None = None) -> str:
    lines = [header, "", "| clip | tool | CPU ms/frame | × decode CPU | frames/s | × decode fps | peak RSS "
             "| RSS growth | events |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in scan_rows:
        lines.append(f"| {r['clip']} | {r['tool']} | {r['cpu_ms']:.2f} | {r['cpu_ratio']:.2f} | {r['fps']:.0f} | "
                     f"{r['fps_ratio']:.2f} | {r['rss_mb']:.0f} MB | {r['growth_mb']:+.0f} MB | {r['events']} |")
    by = {(r["clip"], r["tool"]): r for r in scan_rows}
    peers = [("dvr-scan (defaults)", "motionwatch scan"), ("dvr-scan -b CNT", "motionwatch scan"),
             ("dvr-scan -df 4", "motionwatch scan")]
    extra = []
    for clip in dict.fromkeys(r["clip"] for r in scan_rows):
        for peer, mine in peers:
            if (clip, peer) in by and (clip, mine) in by:
                off = by.get((clip, mine + ", clips off"))   # not measured when --tools left it out
                extra.append(f"| {clip} | {peer} | "
                             f"{by[(clip, peer)]['cpu_ms'] / by[(clip, mine)]['cpu_ms']:.2f}× | "
                             + (f"{by[(clip, peer)]['cpu_ms'] / off['cpu_ms']:.2f}× |" if off else "|"))
    if extra:
        lines += ["", "| clip | peer | peer CPU ÷ motionwatch scan | ÷ motionwatch scan, clips off |",
                  "|---|---|---:|---:|"]
        lines += extra
    if live_rows:
        lines += ["", "| live source | tool | CPU s / 1000 frames | × motion | frame age median / p99 | dropped | stalls |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in live_rows:
            ratio = f"{r['ratio']:.2f}" if r.get("ratio") else "-"
            age = (f"{r['age_ms_median']:.1f} / {r['age_ms_p99']:.1f} ms" if "age_ms_median" in r else "-")
            lines.append(f"| {r['source']} | {r['tool']} | {r['cpu_per_1000']:.2f} | {ratio} | {age} | "
                         f"{r.get('dropped', '-')} | {r.get('stalls', '-')} |")
    if memory:
        lines += ["", f"Live {memory['camera']} camera (MPEG-TS over HTTP, {memory['seconds']:g} s, defaults: clips on, "
                  f"2 s pre-roll): peak RSS {memory['peak_mb']:.0f} MB; {memory['events']} event(s), "
                  f"{memory['clips']} clip file(s)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "motionwatch-peers"),
                    help="folder for generated clips, DVR-Scan's venv and outputs (kept between runs)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement (median reported)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the generated clips")
    ap.add_argument("--live-window", type=float, default=20.0, help="seconds of steady live run measured")
    ap.add_argument("--quick", action="store_true", help="short clips, one round: to try the script")
    ap.add_argument("--skip-dvr", action="store_true")
    ap.add_argument("--skip-scan", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--only", nargs="+", metavar="WORD", help="scan only the clips whose label has one of these words")
    ap.add_argument("--clips", nargs="+", type=Path, metavar="FILE", default=[],
                    help="also scan these video files (your own camera recordings); --only their name "
                         "scans only them")
    ap.add_argument("--baseline-ref", metavar="REF", help="also scan with the tree at this git ref (before/after)")
    ap.add_argument("--tools", nargs="+", metavar="NAME",
                    help="scan only with these tools, named as the table names them (and decode-only)")
    ap.add_argument("--live-file", type=Path, metavar="FILE",
                    help="live: watch this 640x480@30 video file instead of the generated one "
                         "(your own camera's recording: no B-frames, real noise)")
    ap.add_argument("--live-only", nargs="+", metavar="WORD",
                    help="live: only the sources whose label has one of these words (file, MJPEG)")
    ap.add_argument("--mjpeg-sampling", choices=("420", "422", "grey"), default="420",
                    help="the MJPEG camera's chroma sampling (most USB webcams send 4:2:2; grey: night mode)")
    ap.add_argument("--memory-seconds", type=float, default=40.0)
    ap.add_argument("--memory-clip", type=Path, metavar="MP4",
                    help="serve this MP4 (H.264 or HEVC, e.g. your camera's) as the live camera of the memory row")
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.live_window = 1, 10.0, 6.0
    missing = [str(c) for c in a.clips if not c.is_file()]
    if missing:
        ap.error(f"--clips: no such file: {', '.join(missing)}")
    a.clips = [c.resolve() for c in a.clips]
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    # As pip does for a normal install: an editable checkout run with
    # PYTHONDONTWRITEBYTECODE set would otherwise recompile the package per process.
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "motionwatch")], check=True)
    header = f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}; " \
             f"medians of {a.rounds} interleaved round(s)."
    print(header, flush=True)
    dvr = None if a.skip_dvr or a.skip_scan else dvr_scan_bin(work)
    scan_rows = [] if a.skip_scan else scan_table(work, a.rounds, a.seconds, dvr, a.only,
                                                      a.baseline_ref, a.tools, a.clips)
    live_rows = [] if a.skip_live else live_table(work, a.rounds, a.live_window, a.live_only, a.mjpeg_sampling,
                                                  a.live_file)
    memory = None if a.skip_memory else memory_row(work, a.memory_seconds, a.memory_clip)
    text = report(scan_rows, live_rows, header, memory)
    print()
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
