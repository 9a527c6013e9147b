"""A small MJPEG-over-HTTP camera for the reliability tests, run as its own process.

It serves a generated room (motionwatch.sources.scene) as `multipart/x-mixed-replace`
JPEG frames, like the MJPEG endpoint of a cheap IP camera, and takes commands on
stdin, one a line, so a test can break it the ways real cameras break:

  motion / still     a person keeps crossing the room / the room is empty
  standing           a person stands still in the middle of the room
  stall              keep every socket open but send nothing (a hung camera)
  serve              send frames again after `stall`
  refuse             close the listening socket and drop clients (connection refused)
  size WxH           switch the picture size (a camera reconfigured mid-stream)
  damage N           from now on every Nth frame has part of its data lost, as a USB
                     webcam's MJPEG does when the bus drops packets (0: none)
  quit               exit

Killing the process is the "server died" fault; starting it again on the same
--port brings the camera back. It prints `listening PORT` once ready and
`ok COMMAND` after each command, so a test can wait for both.

    python tests/mjpeg_server.py --port 0 --fps 10 --size 320x240 --mode still

With `--auth USER:PASS` it asks for HTTP Basic auth, as most cameras do, and
answers a missing or wrong login with 401.

Tests drive it through `ServerProcess` below.
"""

from __future__ import annotations

import argparse
import base64
import os
import select
import socket
import subprocess
import sys
import threading
import time

import cv2

from motionwatch.sources.scene import Scene, SceneRenderer, Walker

BOUNDARY = b"mwframe"
MODES = ("motion", "still", "standing")
# "grey": one-component JPEGs, as some cameras send in night mode.
SAMPLING = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
            "grey": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420}
LOOP_S = 4.0   # one person crossing per LOOP_S seconds while in `motion`


class Camera:
    """Pre-renders a loop of JPEG frames per (size, mode) so serving costs no CPU."""

    def __init__(self, fps: float, size: tuple[int, int], mode: str, auth: str | None = None,
                 sampling: str = "420"):
        self.fps = fps
        # JPEG chroma sampling: OpenCV's 4:2:0, 4:2:2 as most USB webcams send, or grey.
        self.params = [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[sampling]]
        self.grey = sampling == "grey"
        self.auth = auth
        self.size = size
        self.mode = mode
        self.state = "serve"          # serve | stall | refuse
        self.lock = threading.Condition()
        self.seq = 0
        self.damage_every = 0
        self.jpeg = b""
        self._cache: dict[tuple, list[bytes]] = {}

    def frames(self) -> list[bytes]:
        key = (self.size, self.mode)
        if key not in self._cache:
            w, h = self.size
            walkers = {"motion": (Walker(0.0, LOOP_S * 0.9, height=0.6),),
                       "standing": (Walker(0.0, LOOP_S * 2, height=0.6, x_from=0.5, stop_at_s=0.0),),
                       }.get(self.mode, ())
            scene = Scene(width=w, height=h, fps=self.fps, duration_s=LOOP_S, seed=7, noise=3.0,
                          walkers=walkers)
            r = SceneRenderer(scene)
            self._cache[key] = [cv2.imencode(".jpg", self._picture(r.render(i)), self.params)[1].tobytes()
                                for i in range(scene.frames)]
        return self._cache[key]

    def _picture(self, bgr):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if self.grey else bgr

    def tick_forever(self) -> None:
        """Publish the next frame at the camera's rate (only while serving)."""
        i = 0
        next_t = time.monotonic()
        while True:
            next_t += 1.0 / self.fps
            with self.lock:
                if self.state == "serve":
                    loop = self.frames()
                    self.jpeg = loop[i % len(loop)]
                    if self.damage_every and i % self.damage_every == self.damage_every - 1:
                        self.jpeg = lose_data(self.jpeg)
                    self.seq += 1
                    i += 1
                    self.lock.notify_all()
            time.sleep(max(0.0, next_t - time.monotonic()))


def lose_data(jpeg: bytes) -> bytes:
    """The JPEG with a sixth of its coded data lost from the middle and its end
    marker kept: what a USB webcam's frame looks like after the bus dropped packets
    (libjpeg: "Corrupt JPEG data: premature end of data segment")."""
    start = jpeg.find(b"\xff\xda")
    mid = (start + len(jpeg)) // 2
    return jpeg[:mid] + jpeg[mid + (len(jpeg) - start) // 6:]


def serve_client(conn: socket.socket, cam: Camera) -> None:
    try:
        conn.settimeout(5.0)
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 8192:
            chunk = conn.recv(1024)
            if not chunk:
                return
            req += chunk
        if cam.auth is not None and not _authorized(req, cam.auth):
            conn.sendall(b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"camera\"\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        conn.sendall(b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\n"
                     b"Content-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY + b"\r\n\r\n")
        seen = 0
        while True:
            with cam.lock:
                # While stalled the socket stays open and silent, as a hung camera's does.
                while cam.seq == seen or cam.state != "serve":
                    if cam.state == "refuse":
                        return
                    cam.lock.wait(0.5)
                seen, jpeg = cam.seq, cam.jpeg
            conn.settimeout(30.0)
            conn.sendall(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
    except OSError:
        pass  # the client went away
    finally:
        conn.close()


def _authorized(request: bytes, auth: str) -> bool:
    want = b"basic " + base64.b64encode(auth.encode())
    return any(line.lower().startswith(b"authorization:") and line.split(b":", 1)[1].strip().lower() == want.lower()
               for line in request.split(b"\r\n"))


class Listener:
    def __init__(self, port: int, cam: Camera):
        self.port = port
        self.cam = cam
        self.sock: socket.socket | None = None

    def start(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(8)
        self.port = s.getsockname()[1]
        self.sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self) -> None:
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=serve_client, args=(conn, self.cam), daemon=True).start()


def command(line: str, cam: Camera, listener: Listener) -> bool:
    words = line.split()
    if not words:
        return True
    cmd = words[0]
    with cam.lock:
        if cmd in MODES:
            cam.mode = cmd
        elif cmd == "size" and len(words) == 2:
            w, h = (int(v) for v in words[1].lower().split("x"))
            cam.size = (w, h)
        elif cmd == "damage" and len(words) == 2:
            cam.damage_every = int(words[1])
        elif cmd in ("stall", "serve"):
            if cam.state == "refuse" and cmd == "serve":
                listener.start()
            cam.state = cmd
        elif cmd == "refuse":
            cam.state = "refuse"
            listener.stop()
        elif cmd == "quit":
            return False
        else:
            print(f"error unknown command {line.strip()!r}", flush=True)
            return True
        cam.frames()  # render the new loop now, not on the serving path
        cam.lock.notify_all()
    print(f"ok {cmd}", flush=True)
    return True


class ServerProcess:
    """The server as a child process a test can command, kill and start again on the same port."""

    def __init__(self, fps: float = 10.0, size: str = "320x240", mode: str = "still", port: int = 0,
                 auth: str | None = None, sampling: str = "420"):
        self.fps, self.size, self.mode, self.port, self.auth = fps, size, mode, port, auth
        self.sampling = sampling
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self, mode: str | None = None) -> "ServerProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(self.port), "--fps", str(self.fps), "--size", self.size,
             "--mode", mode or self.mode, "--sampling", self.sampling] + (["--auth", self.auth] if self.auth else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.port = int(self._line("listening").split()[1])
        return self

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        self._line(f"ok {cmd.split()[0]}")

    def kill(self) -> None:
        """The camera dies: the process is killed, its sockets reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        self.proc = None

    def _line(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        out = self.proc.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = out.readline()
            if not line:
                raise RuntimeError(f"mjpeg server exited (code {self.proc.wait()}) before {prefix!r}")
            if line.startswith(prefix):
                return line
        raise TimeoutError(f"mjpeg server did not say {prefix!r} within {timeout:g} s")

    def __enter__(self) -> "ServerProcess":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--mode", choices=MODES, default="motion", help="what the room shows at start")
    ap.add_argument("--auth", metavar="USER:PASS", help="ask for HTTP Basic auth with this login")
    ap.add_argument("--sampling", choices=sorted(SAMPLING), default="420", help="JPEG chroma sampling")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    cam = Camera(a.fps, (w, h), a.mode, a.auth, a.sampling)
    cam.frames()
    listener = Listener(a.port, cam)
    listener.start()
    threading.Thread(target=cam.tick_forever, daemon=True).start()
    print(f"listening {listener.port}", flush=True)
    for line in sys.stdin:
        if not command(line, cam, listener):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
