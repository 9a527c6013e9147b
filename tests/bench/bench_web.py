"""Web UI figures on this machine (a script, not a test: prints numbers).

1. Capture-side cost of the live broadcaster per frame (LiveCamera.push) with
   nobody watching and with a viewer, at 640x480 and 1280x720.
2. `motionwatch run --source demo` with web enabled and 0, 1, 5 and 10 MJPEG
   clients: process CPU, analysed fps, dropped frames and frames each client got.
3. /api/events page times over a generated 10,000-event index.

    .venv/bin/python tests/bench/bench_web.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from motionwatch.model import Detection, Frame  # noqa: E402
from motionwatch.web.live import LiveCamera  # noqa: E402


def push_cost(w: int, h: int, watched: bool, n: int = 300) -> float:
    cam = LiveCamera("b", 0.004, 5.0)
    img = np.random.randint(0, 255, (h, w, 3), np.uint8)
    mask = np.zeros((h * 320 // w, 320), np.uint8)
    det = Detection(0.01, [(1, 2, 3, 4)], mask)
    stop = threading.Event()
    if watched:
        t = threading.Thread(target=lambda: [None for _ in cam.stream(True, stop)], daemon=True)
        t.start()
        time.sleep(0.3)
    spent = 0.0
    for i in range(n):
        f = Frame(img, i, i / 15, time.time())
        t0 = time.perf_counter()
        cam.push(f, det)
        spent += time.perf_counter() - t0
        time.sleep(1 / 60)  # frames arrive over time, as from a camera
    stop.set()
    cam.close()
    return 1e6 * spent / n


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mjpeg_client(url: str, seconds: float, out: list) -> None:
    frames = 0
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=10) as r:
        while time.monotonic() < deadline:
            line = r.readline()
            if line.startswith(b"Content-Length:"):
                n = int(line.split(b":")[1])
                r.readline()
                r.read(n)
                frames += 1
    out.append(frames)


def run_with_clients(clients: int, seconds: float = 12.0) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "web.yaml"
        cfg.write_text(f"web:\n  enabled: true\n  port: {port}\n  live_fps: 5\n")
        p = subprocess.Popen([sys.executable, "-m", "motionwatch", "run", "--source", "demo", "--config", str(cfg),
                              "--recordings", str(Path(tmp) / "rec"), "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(4)
            c0, t0 = cpu_seconds(p.pid), time.monotonic()
            got: list = []
            threads = [threading.Thread(target=mjpeg_client, args=(f"http://127.0.0.1:{port}/live/demo.mjpg"
                                                                   + ("?overlay=1" if i % 2 else ""), seconds, got))
                       for i in range(clients)]
            for t in threads:
                t.start()
            if not threads:
                time.sleep(seconds)
            for t in threads:
                t.join()
            cpu = (cpu_seconds(p.pid) - c0) / (time.monotonic() - t0)
            st = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/live").read())["cameras"][0]
            return {"clients": clients, "cpu_percent": round(100 * cpu), "fps": st["fps"], "dropped": st["dropped"],
                    "frames_per_client_per_s": round(sum(got) / max(1, len(got)) / seconds, 2) if got else None}
        finally:
            p.terminate()
            p.wait(timeout=20)


def paging() -> list[tuple[int, float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_web_http import make_big_index
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "big"
        make_big_index(root)
        port = free_port()
        p = subprocess.Popen([sys.executable, "-m", "motionwatch", "serve", "--recordings", str(root), "--port",
                              str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)
            for offset in (0, 5000, 9940):
                url = f"http://127.0.0.1:{port}/api/events?limit=60&offset={offset}"
                urllib.request.urlopen(url).read()
                t0 = time.perf_counter()
                for _ in range(20):
                    urllib.request.urlopen(url).read()
                out.append((offset, 1000 * (time.perf_counter() - t0) / 20))
        finally:
            p.terminate()
            p.wait(timeout=20)
    return out


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, {' '.join(os.uname()[2:4])}")
    for w, h in ((640, 480), (1280, 720)):
        print(f"push() {w}x{h}: {push_cost(w, h, False):.1f} us/frame unwatched, "
              f"{push_cost(w, h, True):.1f} us/frame watched (copy at live_fps only)")
    for n in (0, 1, 5, 10, 20):
        print("run --source demo (640x480, 15 fps) with web:", run_with_clients(n))
    for offset, ms in paging():
        print(f"/api/events limit=60 offset={offset} over 10,000 events: {ms:.1f} ms")


if __name__ == "__main__":
    main()
