"""Hooks: real commands run by a real `motionwatch run` and by the Hooks sink,
with the event JSON on stdin, MOTIONWATCH_* variables, no shell, a time limit
that kills the whole process group, and a bounded queue."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from conftest import events_json, mw, wait_until
from motionwatch.config import HooksConfig
from motionwatch.pipeline.camera import CameraStatus
from motionwatch.sinks.notify import hooks as hooks_mod
from motionwatch.sinks.notify.hooks import Hooks

RECORD = """\
import json, os, sys
out = sys.argv[1]
rec = json.load(sys.stdin)
env = {k: v for k, v in os.environ.items() if k.startswith("MOTIONWATCH_")}
with open(out, "a") as f:
    f.write(json.dumps({"argv": sys.argv[2:], "env": env, "stdin": rec}) + "\\n")
"""


def calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_event_hooks_get_json_on_stdin_and_env_and_no_shell(tmp_path, recordings):
    script = tmp_path / "record.py"
    script.write_text(RECORD)
    out = tmp_path / "calls.jsonl"
    trap = tmp_path / "pwned"
    nasty = f"$(touch {trap}); `touch {trap}` && echo hi > {trap}"
    cmd = [sys.executable, str(script), str(out), nasty]
    cfg = tmp_path / "mw.yaml"
    cfg.write_text(json.dumps({"events": {"gap_seconds": 1.0, "post_roll_seconds": 0.5},
                               "hooks": {"on_event_start": cmd, "on_event_end": cmd}}))
    proc = mw("run", "--source", "demo", "--camera", "lobby", "--config", str(cfg),
              "--recordings", str(recordings), "--duration", "7")
    assert proc.returncode == 0, proc.stderr
    events = events_json(recordings)
    assert events
    got = calls(out)
    assert [c["env"]["MOTIONWATCH_HOOK"] for c in got] == ["event_start", "event_end"] * len(events)
    # Arguments arrive exactly as written: nothing was run by a shell.
    assert all(c["argv"] == [nasty] for c in got)
    assert not trap.exists()

    ev = events[-1]
    start, end = [c for c in got if c["stdin"]["id"] == ev["id"]]
    assert start["stdin"]["state"] == "start" and end["stdin"]["state"] == "end"
    for key in ("id", "camera", "start", "end", "peak_fraction", "snapshot", "boxes", "start_frame"):
        assert end["stdin"][key] == ev[key], key
    env = end["env"]
    assert env["MOTIONWATCH_EVENT_ID"] == ev["id"]
    assert env["MOTIONWATCH_CAMERA"] == "lobby"
    assert env["MOTIONWATCH_START"] == ev["start"] and env["MOTIONWATCH_END"] == ev["end"]
    assert float(env["MOTIONWATCH_PEAK"]) == round(ev["peak_fraction"], 5)
    snap = Path(env["MOTIONWATCH_SNAPSHOT"])
    assert snap.is_absolute() and snap.read_bytes() == (recordings / ev["snapshot"]).read_bytes()
    assert (Path(env["MOTIONWATCH_FOLDER"]) / "event.json").is_file()
    assert start["env"]["MOTIONWATCH_EVENT_ID"] == ev["id"]


def status(name: str = "porch") -> CameraStatus:
    return CameraStatus(name, "rtsp://admin:hunter2@10.0.0.5/live")


def test_a_hook_over_its_time_limit_is_killed_with_its_children(tmp_path, caplog):
    pidfile = tmp_path / "child.pid"
    # The hook starts a grandchild and waits; the timeout must end both.
    hook = ["/bin/sh", "-c", f'sleep 60 & echo $! > "{pidfile}"; wait']
    h = Hooks(HooksConfig(on_camera_lost=tuple(hook), timeout_seconds=0.5), tmp_path)
    with caplog.at_level(logging.INFO):
        h.camera_state("camera_lost", status())
        assert wait_until(lambda: h.worker.done == 1)
        h.close()
    assert "still running after 0.5 s; killed" in caplog.text
    child = int(pidfile.read_text())
    assert wait_until(lambda: not _alive(child), 5), "the hook's child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped by init is a zombie: dead for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_camera_hooks_get_status_and_redacted_source(tmp_path):
    script = tmp_path / "record.py"
    script.write_text(RECORD)
    out = tmp_path / "calls.jsonl"
    cmd = (sys.executable, str(script), str(out))
    h = Hooks(HooksConfig(on_camera_lost=cmd, on_camera_found=cmd), tmp_path)
    st = status()
    h.camera_state("camera_lost", st)
    st.connected = True
    h.camera_state("camera_found", st)
    h.camera_state("event_start", st)      # events come through handle(), not here
    h.close()
    got = calls(out)
    assert [c["env"]["MOTIONWATCH_HOOK"] for c in got] == ["camera_lost", "camera_found"]
    assert got[0]["env"]["MOTIONWATCH_CAMERA"] == "porch"
    assert got[0]["env"]["MOTIONWATCH_SOURCE"] == "rtsp://admin:***@10.0.0.5/live"
    assert "hunter2" not in json.dumps(got)
    assert got[1]["stdin"]["connected"] is True


def test_failures_are_logged_not_raised(tmp_path, caplog):
    h = Hooks(HooksConfig(on_camera_lost=("/bin/sh", "-c", "echo boom >&2; exit 3"),
                          on_camera_found=(str(tmp_path / "no-such-hook"),)), tmp_path)
    with caplog.at_level(logging.INFO):
        h.camera_state("camera_lost", status())
        h.camera_state("camera_found", status())
        h.close()
    assert "exited with code 3: boom" in caplog.text
    assert "cannot run" in caplog.text and "no-such-hook" in caplog.text
    assert h.failed == 2


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(hooks_mod, "QUEUE_SIZE", 3)
    h = Hooks(HooksConfig(on_camera_lost=("/bin/sleep", "0.5"), timeout_seconds=5), tmp_path)
    with caplog.at_level(logging.WARNING):
        for _ in range(12):
            h.camera_state("camera_lost", status())   # returns at once even when full
        dropped = h.worker.dropped
        h.close()
    assert 12 - 3 - 1 <= dropped <= 12 - 3
    assert h.worker.done == 12 - dropped
    assert "queue full" in caplog.text
