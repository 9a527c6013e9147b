"""A real Dask cluster on loopback for tests and the benchmark: `dask scheduler`
and `dask worker` processes (no nanny, so a killed worker stays dead)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    def __init__(self, workers: int, log_dir: Path):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.log_dir = Path(log_dir)
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.n = workers

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        proc = subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> "LoopbackCluster":
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                    "--no-dashboard", "--no-show")
        for i in range(self.n):
            self.workers.append(self._start(f"worker{i}", "worker", self.address, "--nthreads", "1",
                                            "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                                            "--memory-limit", "0", "--name", f"w{i}"))
        self.wait_for_workers(self.n)
        return self

    def wait_for_workers(self, n: int, timeout: float = 60.0) -> None:
        from distributed import Client
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout=5) as c:
                    c.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
