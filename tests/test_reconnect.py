"""A network camera that dies, stalls and refuses connections, against a real
`motionwatch run`: a real MJPEG-over-HTTP server process on loopback
(tests/mjpeg_server.py) is killed, restarted, stalled and made to refuse, and
the tests assert on what motionwatch logged, the CPU it used while waiting,
its threads and open files, and the events it recorded after each return."""

from __future__ import annotations

import re
import time

import pytest

from conftest import events_json, wait_until
from live_run import RunProcess, write_config
from mjpeg_server import ServerProcess

STARTED = r"motion: event \w+ started"
ENDED = r"event \w+ (?:ended|saved)"
LOST = r"door: camera lost"
FOUND = r"door: camera found again"
# DEBUG (-v): logged at the first frame that could start an event, so a reconnect or
# size change that wrongly looks like motion has logged its event before this line.
WARM = r"door: warm-up done"
RETRY = r"door: still lost"


def record_one_event(run: RunProcess, cam: ServerProcess) -> None:
    """Someone walks through and leaves; the event must start and end."""
    run.set_mark()
    cam.send("motion")
    run.wait_for(STARTED)
    cam.send("still")
    run.wait_for(ENDED)


def test_camera_killed_stalled_refused_comes_back_each_time(tmp_path):
    cam = ServerProcess(mode="still").start()
    rec = tmp_path / "rec"
    cfg = write_config(tmp_path / "c.yaml", rec, [{"name": "door", "source": cam.url, "timeout_seconds": 1.0}])
    run = RunProcess(tmp_path, "--config", str(cfg), "-v")
    try:
        run.wait_for(r"door: watching stream")
        run.wait_for(WARM)
        record_one_event(run, cam)
        fds, threads = run.open_fds(), run.threads()

        # 1. The server dies: lost at once (the socket closes), retried without burning CPU.
        run.set_mark()
        cam.kill()
        run.wait_for(LOST)
        # CPU over one whole backoff wait (from one retry to the next, about 2 s), not a sleep.
        run.wait_for(RETRY)
        cpu0 = run.cpu_seconds()
        run.wait_for(RETRY, count=2)
        assert run.cpu_seconds() - cpu0 < 0.4, "waiting for a dead camera must not spin the CPU"
        assert not re.search(FOUND, run.since_mark())
        # It comes back with someone standing in the room who was not there before
        # the loss: a fresh warm-up learns them as background, so no event.
        cam.start(mode="standing")
        run.wait_for(FOUND)
        run.wait_for(WARM)
        assert not re.search(STARTED, run.since_mark()), "the reconnect itself must not be an event"
        record_one_event(run, cam)

        # 2. The server stalls: socket open, no data. Lost after the 1 s timeout and
        # never "found" while it sends nothing, though it still accepts connections.
        run.set_mark()
        cam.send("stall")
        run.wait_for(LOST)
        run.wait_for(r"door: still lost \(.*\)", count=2)
        assert not re.search(FOUND, run.since_mark())
        cam.send("serve")
        run.wait_for(FOUND)
        run.wait_for(WARM)
        record_one_event(run, cam)

        # 3. Connections are refused for a while.
        run.set_mark()
        cam.send("refuse")
        run.wait_for(LOST)
        run.wait_for(r"door: still lost \(.*cannot open stream")
        cam.send("serve")
        run.wait_for(FOUND)
        run.wait_for(WARM)
        record_one_event(run, cam)

        # Three losses later: no threads or open files piled up.
        assert run.threads() <= threads + 1
        assert run.open_fds() <= fds + 2
        assert run.proc.poll() is None, "motionwatch must never exit because a camera went away"
        assert run.stop() == 0
    finally:
        run.close()
        cam.kill()
    log = run.log
    assert len(re.findall(LOST, log)) == 3 and len(re.findall(FOUND, log)) == 3
    assert "Traceback" not in log
    evs = events_json(rec)
    assert len(evs) == len(re.findall(STARTED, log)) == 4
    assert all(e["snapshot"] and (rec / e["snapshot"]).is_file() for e in evs)


def test_camera_down_at_start_is_an_error_naming_the_source(tmp_path):
    """One camera that cannot be opened when `run` starts is the user's to fix: exit 1."""
    with ServerProcess() as cam:
        url = cam.url
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "rec", [{"name": "door", "source": url}])
    run = RunProcess(tmp_path, "--config", str(cfg))
    try:
        code = run.proc.wait(60)
    finally:
        run.close()
    assert code == 1
    assert "cannot open stream" in run.log and url in run.log
    assert "Traceback" not in run.log


@pytest.mark.parametrize("size", ["480x270"])
def test_picture_size_change_mid_stream(tmp_path, size):
    """The camera switches resolution. Read directly (the MJPEG source) and through
    a pipe (ffmpeg copying the JPEGs) the new size arrives as is and each detector
    re-initialises and warms up again: no crash, no event from the switch, and
    motion afterwards is still recorded."""
    with ServerProcess(mode="still") as cam:
        piped = f"pipe:ffmpeg -nostdin -loglevel error -f mpjpeg -i {cam.url} -c copy -f mjpeg -"
        cams = [{"name": "direct", "source": cam.url, "timeout_seconds": 2.0},
                {"name": "piped", "source": piped, "timeout_seconds": 2.0}]
        cfg = write_config(tmp_path / "c.yaml", tmp_path / "rec", cams)
        run = RunProcess(tmp_path, "--config", str(cfg), "-v")
        try:
            run.wait_for(r"(direct|piped): warm-up done", count=2)
            run.set_mark()
            cam.send(f"size {size}")
            run.wait_for(r"(direct|piped): picture size changed from 320x240 to " + size, count=2)
            run.wait_for(r"(direct|piped): warm-up done", count=2)
            assert not re.search(STARTED, run.log), "a size change must not be an event"
            run.set_mark()
            cam.send("motion")
            run.wait_for(r"direct: motion: event")
            run.wait_for(r"piped: motion: event")
            assert run.stop() == 0
        finally:
            run.close()
    assert "camera lost" not in run.log and "Traceback" not in run.log


def test_status_and_callbacks_follow_the_camera(tmp_path):
    """In-process view of the same path: what the status page and hooks see."""
    import threading
    from dataclasses import replace

    from motionwatch.config import Config
    from motionwatch.pipeline.camera import CameraLoop
    from motionwatch.sinks import SinkRunner

    with ServerProcess(mode="still") as cam:
        base = Config()
        cfg = replace(base, recordings=replace(base.recordings, path=str(tmp_path / "rec")))
        camera = replace(cfg.cameras[0], name="door", source=cam.url, timeout_seconds=1.0)
        states: list[tuple[str, bool]] = []
        stop = threading.Event()
        runner = SinkRunner([])
        loop = CameraLoop(camera, cfg, runner, stop, on_state=lambda kind, st: states.append((kind, st.connected)))
        loop.open()
        assert not loop.status.connected, "open is not connected: only a frame is"
        t = threading.Thread(target=loop.run_supervised, daemon=True)
        t.start()
        try:
            wait_until(lambda: loop.status.connected, 60, "the first frame")
            cam.send("stall")
            wait_until(lambda: states, 60, "camera_lost")
            # The server still accepts connections but sends nothing: never "connected".
            for _ in range(20):
                assert not loop.status.connected
                time.sleep(0.1)
            # Why it is lost names the silence: the loop's read timed out ("no frame"),
            # the reader's socket did ("no data"), or a retry found no answer.
            assert any(w in loop.status.last_error for w in ("no frame", "no data", "no answer")), \
                loop.status.last_error
            cam.send("serve")
            wait_until(lambda: loop.status.connected, 60, "the camera found again")
            assert states == [("camera_lost", False), ("camera_found", True)]
            assert loop.status.reconnects == 1
        finally:
            stop.set()
            t.join(15)
            runner.close()
        assert not t.is_alive()
