"""`scan --cluster` on a real Dask cluster on loopback (a scheduler and two
worker processes started here); one worker is killed at a random moment of
the scan, and the events still equal a local scan's: none lost, none doubled,
and the event hooks run once for each event, though Dask ran a task twice."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")

from dask_support import LoopbackCluster  # noqa: E402
from motionwatch.sources.scene import Scene, Walker, write_h264  # noqa: E402

from conftest import PARALLEL_ANY_LENGTH, events_json, mw, same_events  # noqa: E402

SCENE = Scene(width=640, height=480, fps=15, duration_s=30, seed=8, noise=3.0,
              walkers=(Walker(3.0, 5.0), Walker(18.0, 6.0, shade=70, x_from=1.15, x_to=-0.15)))
FILES = ["cam1/a.mp4", "cam1/b.mp4", "cam2/c.mp4", "cam2/d.mp4", "cam2/e.mp4"]


def comparable(rec) -> list[tuple]:
    return sorted((e["camera"], e["start_frame"], e["end_frame"], (rec / e["snapshot"]).read_bytes())
                  for e in events_json(rec))


def wait_until_busy(address: str, name: str, scan: subprocess.Popen) -> None:
    """Until the scheduler says worker `name` is running one of the scan's tasks."""
    from distributed import Client
    with Client(address, timeout=10) as c:
        addr = next(a for a, w in c.scheduler_info()["workers"].items() if w["name"] == name)
        deadline = time.monotonic() + 120
        while not c.processing().get(addr):
            assert scan.poll() is None and time.monotonic() < deadline, "the scan never ran on the worker"
            time.sleep(0.05)


def scan_killing_a_worker(tmp_path, args: list[str], pause: float) -> tuple[int, str, subprocess.Popen]:
    """`scan ARGS --cluster` into `remote` on a loopback cluster of two workers, one
    killed `pause` s after it began running one of the scan's tasks: (exit code, output,
    the killed worker)."""
    with LoopbackCluster(2, tmp_path) as cluster:
        out = open(tmp_path / "scan.log", "w+")
        scan = subprocess.Popen([sys.executable, "-m", "motionwatch", "scan", *args, "--cluster", cluster.address,
                                 "--recordings", "remote", "--no-progress"],
                                cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **PARALLEL_ANY_LENGTH})
        try:
            victim = cluster.workers[0]
            wait_until_busy(cluster.address, "w0", scan)
            time.sleep(pause)
            assert scan.poll() is None, (tmp_path / "scan.log").read_text()   # killed mid-run
            victim.kill()
            code = scan.wait(300)
        finally:
            if scan.poll() is None:
                scan.kill()
            out.close()
    return code, (tmp_path / "scan.log").read_text(), victim


def test_cluster_scan_with_a_worker_killed_equals_local_scan(tmp_path):
    clip = tmp_path / "clip.mp4"
    write_h264(SCENE, clip, 600_000, 30)
    for name in FILES:
        (tmp_path / "archive" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(clip, tmp_path / "archive" / name)
    mw("scan", "archive", "--jobs", "1", "--recordings", "local", "--no-progress", cwd=tmp_path, check=True)
    local = comparable(tmp_path / "local")
    assert len(local) == 2 * len(FILES)

    (tmp_path / "hook.py").write_text(HOOK)
    hook = [sys.executable, str(tmp_path / "hook.py"), str(tmp_path / "hooks.jsonl")]
    (tmp_path / "hooks.yaml").write_text(json.dumps({"hooks": {"on_event_start": hook, "on_event_end": hook}}))
    code, log, victim = scan_killing_a_worker(tmp_path, ["archive", "--config", "hooks.yaml"],
                                              random.uniform(0.0, 1.0))   # a random moment of its task
    assert victim.returncode is not None
    assert code == 0, log
    assert "Traceback" not in log
    assert comparable(tmp_path / "remote") == local
    assert len(list((tmp_path / "remote").rglob("event.json"))) == len(local)
    calls = [json.loads(line) for line in (tmp_path / "hooks.jsonl").read_text().splitlines()]
    assert sorted((c["id"], c["state"]) for c in calls) == \
        sorted((e["id"], state) for e in events_json(tmp_path / "remote") for state in ("start", "end"))


# 60 s of 10 fps: chunks enough for the workers (any length is split here: PARALLEL_ANY_LENGTH).
LONG = Scene(width=320, height=240, fps=10, duration_s=60, seed=9, noise=3.0,
             walkers=(Walker(5.0, 6.0), Walker(24.0, 7.0, shade=70, x_from=1.15, x_to=-0.15), Walker(45.0, 6.0)))


def test_a_lone_long_file_is_decoded_by_the_cluster_with_a_worker_killed_and_equals_local_scan(tmp_path):
    """The file is detected in the scanning process, its chunks decoded on the
    cluster; the chunk the killed worker had is run again by Dask."""
    write_h264(LONG, tmp_path / "long.mp4", 300_000, 20)
    mw("scan", "long.mp4", "--jobs", "1", "--recordings", "local", cwd=tmp_path, check=True)
    code, log, _ = scan_killing_a_worker(tmp_path, ["long.mp4"], 0.0)   # while it decodes a chunk
    assert code == 0 and "Traceback" not in log, log
    assert "decoding on the cluster's workers" in log
    assert len(same_events(tmp_path / "local", tmp_path / "remote")) == len(LONG.walkers)


# Appends each call (which event, start or end) to the file it is given.
HOOK = """\
import json, sys
rec = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"id": rec["id"], "state": rec["state"]}) + "\\n")
"""
