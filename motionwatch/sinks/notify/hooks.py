"""Hooks: run the user's commands when an event starts or ends and when a camera
is lost or found.

A hook is a list of arguments run without a shell, so event data can never be
interpreted as shell syntax: the event's JSON arrives on stdin and the main
facts in MOTIONWATCH_* environment variables. Hooks run one at a time, in
order, on their own thread; one still running after `hooks.timeout_seconds`
is killed with its whole process group. Failures are logged, never raised.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from pathlib import Path

from motionwatch.config import HooksConfig
from motionwatch.events import EventEnded, EventStarted
from motionwatch.model import iso
from motionwatch.sinks.worker import Worker, event_record
from motionwatch.sinks.runner import Sink
from motionwatch.config.source_spec import redact

log = logging.getLogger("motionwatch.hooks")

QUEUE_SIZE = 64


class Hooks(Sink):
    name = "hooks"

    def __init__(self, cfg: HooksConfig, root: Path):
        self.cfg = cfg
        self.root = Path(root).absolute()
        self.ran = 0
        self.failed = 0
        self.worker = Worker("hooks", self._run, maxsize=QUEUE_SIZE)

    # -- what triggers a hook -------------------------------------------------------

    def handle(self, signal) -> None:
        if isinstance(signal, EventStarted) and self.cfg.on_event_start:
            self._submit("event_start", self.cfg.on_event_start, event_record(signal, self.root))
        elif isinstance(signal, EventEnded) and self.cfg.on_event_end:
            self._submit("event_end", self.cfg.on_event_end, event_record(signal, self.root))

    def camera_state(self, kind: str, status) -> None:
        """`CameraLoop.on_state` callback; runs on the capture thread, so it only queues."""
        cmd = {"camera_lost": self.cfg.on_camera_lost, "camera_found": self.cfg.on_camera_found}.get(kind)
        if cmd:
            self._submit(kind, cmd, camera_record(kind, status))

    def _submit(self, hook: str, cmd: tuple[str, ...], record: dict) -> None:
        self.worker.submit((hook, list(cmd), record))

    # -- running one ------------------------------------------------------------------

    def _run(self, job) -> None:
        hook, argv, record = job
        env = {**os.environ, **hook_env(hook, record, self.root)}
        data = json.dumps(record, indent=2).encode()
        try:
            # Own session, so a timeout kills the hook and anything it started.
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as e:
            self.failed += 1
            log.error("hook %s: cannot run %s: %s", hook, argv[0], e.strerror or e)
            return
        try:
            out, err = proc.communicate(data, timeout=self.cfg.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a grandchild escaped the group and holds the pipes
                pass
            self.failed += 1
            log.error("hook %s: %s still running after %g s; killed", hook, argv[0], self.cfg.timeout_seconds)
            return
        self.ran += 1
        if proc.returncode != 0:
            self.failed += 1
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            log.error("hook %s: %s exited with code %d: %s", hook, argv[0], proc.returncode, tail[0])
        else:
            log.debug("hook %s: %s done%s", hook, argv[0], f": {out[:200]!r}" if out else "")

    def close(self) -> None:
        # Let queued hooks finish, but never wait longer than one hook may run.
        if not self.worker.close(timeout=self.cfg.timeout_seconds + 5):
            log.warning("hooks: gave up waiting for queued hooks at shutdown")


def camera_record(kind: str, status) -> dict:
    """What a camera_lost/camera_found hook receives on stdin."""
    return {"state": kind, "camera": status.name, "source": redact(status.source),
            "connected": status.connected, "since": iso(status.since), "reconnects": status.reconnects,
            "frames": status.frames, "events": status.events}


def hook_env(hook: str, rec: dict, root: Path) -> dict[str, str]:
    """The MOTIONWATCH_* variables: absolute paths, plain strings, empty when unknown."""
    def path(rel) -> str:
        return str(root / rel) if rel else ""
    env = {
        "MOTIONWATCH_HOOK": hook,
        "MOTIONWATCH_CAMERA": rec.get("camera", ""),
        "MOTIONWATCH_RECORDINGS": str(root),
    }
    if hook.startswith("event_"):
        env.update({
            "MOTIONWATCH_EVENT_ID": rec["id"],
            "MOTIONWATCH_START": rec["start"],
            "MOTIONWATCH_END": rec["end"],
            "MOTIONWATCH_PEAK": f"{rec['peak_fraction']:.5f}",
            "MOTIONWATCH_SNAPSHOT": path(rec.get("snapshot")),
            "MOTIONWATCH_CLIP": path(rec.get("clip")),
            "MOTIONWATCH_FOLDER": path(rec.get("folder")),
            "MOTIONWATCH_REASON": rec.get("reason", ""),
        })
    else:
        env.update({"MOTIONWATCH_SOURCE": rec["source"], "MOTIONWATCH_SINCE": rec["since"]})
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
