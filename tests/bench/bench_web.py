"""Web UI figures on this machine (a script, not a test: prints numbers, as
ratios against a baseline measured in the same run).

1. Stack choice, Starlette on uvicorn vs aiohttp (needs `pip install aiohttp`;
   skipped without it), each in its own process:
   - import time and RSS of the stack, against a bare `python -c pass`;
   - requests/s of the gallery API (/api/events over a 10,000-event index, the
     same api.events_page in both), 8 keep-alive clients;
   - live MJPEG to 20 viewers while a capture loop (the demo camera, the real
     detector, LiveCamera.push) runs: share of camera frames analysed with and
     without viewers, frames each viewer got, process CPU.
2. The product itself: `motionwatch serve` requests/s (all middleware on), and
   `motionwatch run --source demo --web` with 0, 10, 20 MJPEG clients.
3. Capture-side cost of LiveCamera.push with and without a viewer.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_web.py
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2]))
sys.path.insert(0, str(HERE.parents[1]))
from motionwatch.model import Detection, Frame  # noqa: E402
from motionwatch.review.live import LiveCamera  # noqa: E402

STACKS = ("starlette", "aiohttp")
IMPORTS = {"baseline": "pass",
           "starlette": "import starlette.applications, starlette.responses, starlette.routing, uvicorn, "
                        "uvicorn.protocols.http.h11_impl",
           "aiohttp": "import aiohttp.web"}


# --- helpers ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()


def have_aiohttp() -> bool:
    try:
        import aiohttp  # noqa: F401
        return True
    except ImportError:
        return False


# --- 1a. import time and RSS ---------------------------------------------------------------

def import_cost(stack: str, rounds: int = 5) -> tuple[float, float]:
    # VmRSS, not ru_maxrss: a child's maxrss starts from its parent's at fork.
    code = ("import time; t = time.perf_counter(); " + IMPORTS[stack] + "; t = time.perf_counter() - t; "
            "print(t, next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')))")
    got = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
           for _ in range(rounds)]
    return statistics.median(float(t) for t, _ in got) * 1000, statistics.median(int(r) for _, r in got) / 1024


# --- 1b. the two stacks serving the same gallery API and the same live camera ---------------------

def serve_stack(stack: str, port: int, root: str | None) -> None:
    """Child process: a minimal app on `stack` with /api/events over `root`, and
    /live.mjpg + /stats fed by a demo capture loop when root is None."""
    from motionwatch.review import api
    rec = api.Recordings(Path(root)) if root else None
    cam = LiveCamera("demo", 0.002, 5.0) if root is None else None
    counts = {"analysed": 0, "dropped": 0}
    if cam is not None:
        threading.Thread(target=capture_loop, args=(cam, counts), daemon=True).start()

    async def parts():
        async for jpeg in cam.frames(False):
            yield b"--f\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"

    if stack == "starlette":
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route

        def events(request: Request):
            return JSONResponse(api.events_page(rec, dict(request.query_params)))

        async def live(request: Request):
            return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=f")

        async def stats(request: Request):
            return JSONResponse(counts)

        app = Starlette(routes=[Route("/api/events", events), Route("/live.mjpg", live), Route("/stats", stats)])
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, http="h11",
                    loop="asyncio", lifespan="off")
    else:
        from aiohttp import web

        async def events(request):
            data = await asyncio.get_running_loop().run_in_executor(None, api.events_page, rec,
                                                                    dict(request.query))
            return web.json_response(data)

        async def live(request):
            resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=f"})
            await resp.prepare(request)
            async for part in parts():
                await resp.write(part)
            return resp

        async def stats(request):
            return web.json_response(counts)

        app = web.Application()
        app.add_routes([web.get("/api/events", events), web.get("/live.mjpg", live), web.get("/stats", stats)])
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def capture_loop(cam: LiveCamera, counts: dict) -> None:
    """The demo camera through the real detector into LiveCamera.push, as a CameraLoop does."""
    from motionwatch.config import DetectionConfig
    from motionwatch.detect import MotionDetector
    from motionwatch.sources import DemoSource
    src = DemoSource()
    src.open()
    det = None
    while True:
        frame = src.read()
        if frame is None:
            continue
        if det is None:
            det = MotionDetector(DetectionConfig(), frame.size, 15.0)
        cam.push(frame, det.update(frame.image, frame.gray))
        counts["analysed"] += 1
        counts["dropped"] = src.dropped


def load(url: str, seconds: float, clients: int = 8) -> float:
    """Requests/s of GETs on keep-alive connections."""
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    done = [0] * clients
    end = time.monotonic() + seconds

    def client(i: int) -> None:
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.monotonic() < end:
            c.request("GET", path)
            c.getresponse().read()
            done[i] += 1
        c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def gallery_rps(stack: str, root: Path, seconds: float = 6.0) -> float:
    port = free_port()
    p = spawn("--serve", stack, str(port), str(root))
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/api/events?limit=60&offset=5000"
        load(url, 1.0)   # warm up
        return load(url, seconds)
    finally:
        stop(p)


def mjpeg_client(url: str, seconds: float, out: list) -> None:
    frames = 0
    deadline = time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=10) as r:
        while time.monotonic() < deadline:
            line = r.readline()
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
                r.readline()
                r.read(n)
                frames += 1
    out.append(frames)


def kept(counts0: dict, counts1: dict) -> float:
    a, d = counts1["analysed"] - counts0["analysed"], counts1["dropped"] - counts0["dropped"]
    return a / max(1, a + d)


def live_load(stack: str, viewers: int = 20, seconds: float = 8.0) -> dict:
    port = free_port()
    p = spawn("--serve", stack, str(port))
    stats = f"http://127.0.0.1:{port}/stats"
    try:
        wait_port(port)
        time.sleep(2)
        c0, t0, s0 = cpu_seconds(p.pid), time.monotonic(), json.loads(urllib.request.urlopen(stats).read())
        time.sleep(seconds)
        s1 = json.loads(urllib.request.urlopen(stats).read())
        idle_cpu = (cpu_seconds(p.pid) - c0) / (time.monotonic() - t0)
        got: list = []
        threads = [threading.Thread(target=mjpeg_client, args=(f"http://127.0.0.1:{port}/live.mjpg", seconds, got))
                   for _ in range(viewers)]
        c1, t1 = cpu_seconds(p.pid), time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s2 = json.loads(urllib.request.urlopen(stats).read())
        busy_cpu = (cpu_seconds(p.pid) - c1) / (time.monotonic() - t1)
        return {"kept_idle": round(kept(s0, s1), 3), "kept_20": round(kept(s1, s2), 3),
                "cpu_idle_pct": round(100 * idle_cpu), "cpu_20_pct": round(100 * busy_cpu),
                "frames_per_viewer_per_s": round(statistics.mean(got) / seconds, 2) if got else None,
                "rss_mb": round(rss_mb(p.pid), 1)}
    finally:
        stop(p)


# --- 2. the product ------------------------------------------------------------------------------

def product_rps(root: Path, seconds: float = 6.0) -> float:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "motionwatch", "serve", "--recordings", str(root), "--port",
                          str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/api/events?limit=60&offset=5000"
        load(url, 1.0)
        return load(url, seconds)
    finally:
        stop(p)


def run_with_clients(clients: int, seconds: float = 10.0) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.Popen([sys.executable, "-m", "motionwatch", "run", "--source", "demo", "--web",
                              f"127.0.0.1:{port}", "--recordings", str(Path(tmp) / "rec"), "-q"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            time.sleep(3)
            live = f"http://127.0.0.1:{port}/api/live"
            st0 = json.loads(urllib.request.urlopen(live).read())["cameras"][0]
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
            st1 = json.loads(urllib.request.urlopen(live).read())["cameras"][0]
            return {"clients": clients, "cpu_percent": round(100 * cpu), "fps": st1["fps"],
                    "kept_share": round(kept(st0, st1), 3), "rss_mb": round(rss_mb(p.pid), 1),
                    "frames_per_client_per_s": round(sum(got) / max(1, len(got)) / seconds, 2) if got else None}
        finally:
            stop(p)


# --- 3. capture-side cost ---------------------------------------------------------------------------

def push_cost(w: int, h: int, watched: bool, n: int = 300) -> float:
    cam = LiveCamera("b", 0.004, 5.0)
    img = np.random.randint(0, 255, (h, w, 3), np.uint8)
    mask = np.zeros((h * 320 // w, 320), np.uint8)
    det = Detection(0.01, [(1, 2, 3, 4)], mask)
    done = threading.Event()

    async def watch():
        async for _ in cam.frames(True, max_wait=0.5):
            if done.is_set():
                return

    viewer = threading.Thread(target=lambda: asyncio.run(watch()), daemon=True) if watched else None
    if viewer:
        viewer.start()
        time.sleep(0.3)
    spent = 0.0
    for i in range(n):
        f = Frame(img, i, i / 15, time.time())
        t0 = time.perf_counter()
        cam.push(f, det)
        spent += time.perf_counter() - t0
        time.sleep(1 / 60)  # frames arrive over time, as from a camera
    done.set()
    cam.close()
    return 1e6 * spent / n


def main() -> None:
    from test_web_http import make_big_index
    print(f"machine: {os.cpu_count()} cores, {' '.join(os.uname()[2:4])}, Python {sys.version.split()[0]}")
    stacks = [s for s in STACKS if s != "aiohttp" or have_aiohttp()]
    if len(stacks) < len(STACKS):
        print("aiohttp is not installed: the stack comparison shows Starlette only")
    base_ms, base_mb = import_cost("baseline")
    print(f"python -c pass: {base_mb:.1f} MB RSS")
    for s in stacks:
        ms, mb = import_cost(s)
        print(f"import {s}: +{ms:.0f} ms, +{mb - base_mb:.1f} MB RSS ({mb / base_mb:.2f}x the bare interpreter)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "big"
        make_big_index(root)
        rps = {s: gallery_rps(s, root) for s in stacks}
        for s in stacks:
            print(f"gallery API on {s}: {rps[s]:.0f} req/s ({rps[s] / rps['starlette']:.2f}x starlette)")
        full = product_rps(root)
        print(f"motionwatch serve (all middleware): {full:.0f} req/s ({full / rps['starlette']:.2f}x bare starlette)")
    for s in stacks:
        print(f"live, 20 MJPEG viewers on {s}:", live_load(s))
    for n in (0, 10, 20):
        print("motionwatch run --source demo --web:", run_with_clients(n))
    for w, h in ((640, 480), (1280, 720)):
        print(f"push() {w}x{h}: {push_cost(w, h, False):.1f} us/frame unwatched, "
              f"{push_cost(w, h, True):.1f} us/frame watched (copy at live_fps only)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_stack(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        main()
