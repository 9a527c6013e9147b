"""Starting tests/rtsp_server.py (a real RTSP camera on loopback) from the tests and
the benches, and the JPEG file an RTSP JPEG camera serves. Plain Python: the server
itself runs under the system Python, where python3-gi lives."""

from __future__ import annotations

import subprocess
from pathlib import Path

RTSP_PYTHON = "/usr/bin/python3"   # GStreamer's RTSP server is reached through Debian's python3-gi
SERVER = Path(__file__).resolve().parent / "rtsp_server.py"


def rtsp_server_runs() -> bool:
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    try:
        return subprocess.run([RTSP_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start_rtsp(source: Path, port: int = 0, codec: str = "h264", udp_only: bool = False,
               rtp_timestamp_offset: int | None = None) -> tuple[subprocess.Popen, int]:
    """tests/rtsp_server.py serving `source`; (process, port) once it listens."""
    proc = subprocess.Popen([RTSP_PYTHON, str(SERVER), "--file", str(source), "--port", str(port), "--codec", codec,
                             *(["--udp-only"] if udp_only else []),
                             *(["--rtp-timestamp-offset", str(rtp_timestamp_offset)]
                               if rtp_timestamp_offset is not None else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().split()
    if line[:1] != ["listening"]:
        proc.kill()
        raise RuntimeError(f"the RTSP server did not start: {line}")
    return proc, int(line[1])


def stop_rtsp(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)


def jpeg_mov(video: Path, mov: Path) -> Path:
    """`video` as a MOV of JPEGs with the standard Huffman tables, what an RTSP JPEG
    camera sends (RFC 2435 carries no tables of its own)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-c:v", "mjpeg", "-huffman", "default",
                    "-q:v", "4", "-pix_fmt", "yuvj420p", "-an", "-f", "mov", str(mov)], check=True)
    return mov
