"""A live MPEG-TS stream over HTTP on loopback, as IP cameras and restreamers serve
them, for the stream tests and the memory benchmark: a threaded server sends a
TS file's bytes paced at the file's own length to every client."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path


class TsServer:
    """Serves one MPEG-TS file as a live stream: every client gets it from the start,
    paced so it lasts its own `seconds` (`loops` times over), then the connection
    closes (the camera ended)."""

    def __init__(self, ts: Path, seconds: float, loops: int = 1):
        data = ts.read_bytes() * loops
        seconds *= loops

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                chunk = 188 * 40
                pace = seconds / max(1, len(data) / chunk)
                t0 = time.monotonic()
                try:
                    for k, i in enumerate(range(0, len(data), chunk)):
                        delay = t0 + k * pace - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        self.wfile.write(data[i:i + chunk])
                except OSError:
                    pass   # the client went away

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.ts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def remux_to_ts(mp4: Path, ts: Path | None = None) -> Path:
    """The MP4's video as MPEG-TS at `ts` (default: beside it), made once (PyAV, no
    ffmpeg program)."""
    ts = ts or mp4.with_suffix(".ts")
    if not ts.exists():
        import av
        with av.open(str(mp4)) as src, av.open(str(ts), "w", format="mpegts") as dst:
            out = dst.add_stream_from_template(src.streams.video[0])
            for pkt in src.demux(video=0):
                if pkt.size:
                    pkt.stream = out
                    dst.mux(pkt)
    return ts
