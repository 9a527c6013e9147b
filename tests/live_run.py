"""A real `motionwatch run` in the background for the reliability tests: start it,
wait for what it logs, look at its CPU time, open files and threads, signal it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

TICK = os.sysconf("SC_CLK_TCK")


def write_config(path: Path, recordings: Path, cameras: list[dict], **sections) -> Path:
    """A config with fast timings so faults show up in seconds, not minutes."""
    cfg = {
        "cameras": cameras,
        "detection": {"warmup_seconds": 1.0},
        "events": {"gap_seconds": 1.0, "post_roll_seconds": 0.5, "pre_roll_seconds": 0.5},
        "recordings": {"path": str(recordings), "min_free_gb": 0.0},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(cfg))
    return path


class RunProcess:
    """`python -m motionwatch run ARGS` with its log in a file the test can search."""

    def __init__(self, tmp: Path, *args: str):
        self.log_path = tmp / "run.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "motionwatch", "run", *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, text=True)
        self.mark = 0   # log offset that `wait_for` searches from

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def since_mark(self) -> str:
        return self.log[self.mark:]

    def set_mark(self) -> None:
        self.mark = len(self.log)

    def wait_for(self, pattern: str, timeout: float = 60.0, count: int = 1) -> str:
        """Wait until the log after the mark matches `pattern` `count` times; return that text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.since_mark()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"motionwatch exited ({self.proc.returncode}) before {pattern!r}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the log within {timeout:g} s:\n{self.log}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def run_until_an_event_ends(tmp_path: Path, url: str, close, first: str | None = None, **events) -> Path:
    """A real `run` on one camera ("gate") at `url` until an event has ended (after
    `first` appeared in the log, when given); `close` stops the server. Returns the recordings."""
    rec = tmp_path / "rec"
    cfg = write_config(tmp_path / "c.yaml", rec, [{"name": "gate", "source": url, "timeout_seconds": 5.0}],
                       events=events)
    run = RunProcess(tmp_path, "--config", str(cfg))
    try:
        if first is not None:
            run.wait_for(first, timeout=60)
        run.wait_for(r"gate: event \w+ ended", timeout=60)
    finally:
        code = run.stop()
        close()
    assert code == 0 and "Traceback" not in run.log, run.log
    return rec
