"""SIGTERM / SIGINT sent to a real `motionwatch run` subprocess while an event is
open: the event is finished (end time, snapshot, clip, event.json, index row) and
the process exits 0; a second signal exits at once without harming finished files.
The camera is a real MJPEG-over-HTTP server on loopback with someone walking."""

from __future__ import annotations

import json
import signal
import time

import cv2
import pytest

from conftest import events_json, interrupt_when
from live_run import RunProcess, write_config
from mjpeg_server import ServerProcess
from motionwatch.model import EVENT_FIELDS
from motionwatch.sources.scene import Scene, Walker, write_video

STARTED = r"motion: event \w+ started"
SAVED = r"event \w+ (?:ended|saved)"


def start_run(tmp_path, cam: ServerProcess, **sections) -> RunProcess:
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "rec",
                       [{"name": "door", "source": cam.url, "timeout_seconds": 2.0}], events={"clip": True},
                       **sections)
    run = RunProcess(tmp_path, "--config", str(cfg))
    run.wait_for(r"door: watching stream")
    return run


def assert_whole_event(rec, ev: dict) -> None:
    assert set(EVENT_FIELDS) <= set(ev)
    assert ev["end"] >= ev["start"] and ev["end_frame"] >= ev["start_frame"]
    snap = cv2.imread(str(rec / ev["snapshot"]))
    assert snap is not None and snap.shape[:2] == (240, 320)
    folder = (rec / ev["snapshot"]).parent
    assert json.loads((folder / "event.json").read_text())["id"] == ev["id"]
    assert ev["clip"], "clips are on, so the open event's clip must be closed and kept"
    cap = cv2.VideoCapture(str(rec / ev["clip"]))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n >= 5, f"clip {ev['clip']} has {n} frames"
    assert not list(folder.glob("*.tmp*")) and not list(folder.glob(".*tmp*"))


@pytest.mark.parametrize("sig", [signal.SIGTERM])   # SIGINT: same handler, see the next test
def test_signal_mid_event_finishes_the_event_and_exits_0(tmp_path, sig):
    with ServerProcess(mode="still") as cam:
        run = start_run(tmp_path, cam)
        try:
            time.sleep(1.5)  # warm-up
            cam.send("motion")
            run.wait_for(STARTED)
            time.sleep(1.0)  # mid-event: the person is still walking
            assert "saved" not in run.log and "ended" not in run.log
            t0 = time.monotonic()
            run.signal(sig)
            code = run.proc.wait(30)
            took = time.monotonic() - t0
        finally:
            run.close()
    print(f"{signal.Signals(sig).name} to exit: {took:.2f} s")
    assert code == 0, run.log
    assert "Traceback" not in run.log
    evs = events_json(tmp_path / "rec")
    assert len(evs) == 1
    assert_whole_event(tmp_path / "rec", evs[0])


def test_second_signal_exits_at_once_and_finished_events_stay_whole(tmp_path):
    rec = tmp_path / "rec"
    with ServerProcess(mode="still") as cam:
        # An end-of-event hook that takes its time keeps the first shutdown busy, so
        # the second Ctrl-C surely lands while it is still finishing.
        run = start_run(tmp_path, cam, hooks={"on_event_end": ["sleep", "6"]})
        try:
            time.sleep(1.5)
            cam.send("motion")
            run.wait_for(STARTED)
            cam.send("still")
            run.wait_for(SAVED)
            finished = {p: p.read_bytes() for p in rec.rglob("*") if p.is_file() and p.suffix != ".db"
                        and not p.name.startswith("events.db")}
            run.set_mark()
            cam.send("motion")
            run.wait_for(STARTED)
            run.signal(signal.SIGINT)
            run.wait_for(r"SIGINT received")   # a user pressing Ctrl-C twice
            run.signal(signal.SIGINT)
            code = run.proc.wait(30)
        finally:
            run.close()
    assert code == 1
    assert "second signal, exiting now" in run.log
    for path, data in finished.items():
        assert path.read_bytes() == data, f"{path} changed after the second signal"
    evs = events_json(rec)
    first = [e for e in evs if (rec / e["snapshot"]).parent in {p.parent for p in finished}]
    assert len(first) == 1
    assert_whole_event(rec, first[0])


def test_sigterm_during_scan_saves_the_open_event(tmp_path):
    """A batch job stopped mid-scan keeps what it found, the open event included."""
    scene = Scene(width=320, height=240, fps=15, duration_s=60, seed=2, noise=3.0,
                  walkers=(Walker(2.0, 57.0, height=0.6, x_from=-0.1, x_to=1.1),))
    video = write_video(scene, str(tmp_path / "long.mp4"))
    rec = tmp_path / "rec"
    code, out = interrupt_when(["scan", video, "--recordings", str(rec), "--no-progress"], tmp_path / "scan.log",
                               lambda text: "started" in text, signal.SIGTERM)
    assert code == 0, out
    assert "interrupted; events found so far are saved" in out and "Traceback" not in out
    evs = events_json(rec)
    assert len(evs) == 1 and evs[0]["end_offset_s"] < 58.0   # ended by the signal, not the file
    assert (rec / evs[0]["snapshot"]).is_file()
