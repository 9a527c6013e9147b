"""`scan`'s progress bar on a real terminal (a pseudo-terminal): log lines are
printed above the bar, never onto its line; off a terminal there is no bar."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from conftest import mw

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR)\s")


def _scan_on_a_terminal(video: Path, cwd: Path) -> str:
    """Run `motionwatch scan` with stderr on a 120-column pty; return what it wrote there."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "motionwatch", "scan", str(video)], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child)
    os.close(child)
    out = b""
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:   # EIO: the child closed its end
            break
        if not data:
            break
        out += data
    os.close(main)
    assert proc.wait(timeout=120) == 0
    return out.decode("utf-8", "replace")


def _screen_lines(raw: str) -> list[str]:
    """The lines a terminal shows: a carriage return moves back to column 0 and
    later characters overwrite earlier ones."""
    shown = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        cells: list[str] = []
        col = 0
        for ch in line:
            if ch == "\r":
                col = 0
                continue
            if col < len(cells):
                cells[col] = ch
            else:
                cells.append(ch)
            col += 1
        shown.append("".join(cells).rstrip())
    return shown


def test_log_lines_never_land_on_the_progress_bar_line(tmp_path: Path, two_visits_video):
    video, _ = two_visits_video
    lines = _screen_lines(_scan_on_a_terminal(video, tmp_path))
    logs = [line for line in lines if " INFO " in line]
    bars = [line for line in lines if "frames" in line and line not in logs]
    assert bars, "a bar was drawn on the terminal"
    assert any("motion: event" in line for line in logs), lines
    for line in logs:
        assert LOG_LINE.match(line) and "%|" not in line, f"log line mixed with the bar: {line!r}"
    assert "100%" in bars[-1], bars[-1]


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path, two_visits_video):
    video, _ = two_visits_video
    proc = mw("scan", str(video), cwd=tmp_path, check=True)
    assert "frames/s" not in proc.stderr and "\r" not in proc.stderr
    assert "motion: event" in proc.stderr
