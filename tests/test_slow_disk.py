"""Saving cannot keep up (a slow or hung disk): clip frames are dropped and
counted, capture never waits, the queue stays bounded, and once the disk
answers again the event is still written whole.

The "disk" is a sink that blocks until the test releases it, placed before the
real recorder: no real disk can be made to hang on demand here. Everything
else is real: the demo camera's reader thread, the capture loop, detector,
tracker, sink runner, recorder and clip writer."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from motionwatch.config import Config
from motionwatch.events import EventFrame
from motionwatch.pipeline.camera import CameraLoop
from motionwatch.sinks import SinkRunner
from motionwatch.sinks.recorder import Recorder
from motionwatch.sinks.runner import Sink
from motionwatch.sources import DemoSource
from motionwatch.index.database import EventIndex
from motionwatch.sources.scene import demo_scene

from conftest import wait_until


class HungDisk(Sink):
    name = "hung disk"

    def __init__(self):
        self.release = threading.Event()
        self.blocked = threading.Event()

    def handle(self, signal) -> None:
        self.blocked.set()
        self.release.wait(60)


def test_hung_disk_drops_clip_frames_never_capture(tmp_path):
    base = Config()
    cfg = replace(base, recordings=replace(base.recordings, path=str(tmp_path / "rec"), min_free_gb=0.0),
                  events=replace(base.events, clip=True, gap_seconds=30.0),
                  detection=replace(base.detection, warmup_seconds=0.3, width=160, fps=0.0))   # every frame: the test counts analysed ones
    cam = replace(cfg.cameras[0], name="demo", source="demo:3")
    # The demo room at 60 frames a second of a 15 fps scene: people arrive within a second.
    src = DemoSource("demo:3", fps=60.0, paced=True)
    src.scene = demo_scene(seed=3, fps=15.0, width=320, height=240)
    src.size = (320, 240)
    disk = HungDisk()
    runner = SinkRunner([disk, Recorder(cfg.recordings, cfg.events, EventIndex(tmp_path / "rec"))], max_frames=40)
    stop = threading.Event()
    loop = CameraLoop(cam, cfg, runner, stop)
    src.cancel = stop
    src.open()
    loop.source = src
    peak = [0]
    frames = {"n": 0}

    def watch(frame, det):
        frames["n"] += 1
        with runner._cond:
            peak[0] = max(peak[0], runner._frames)
    loop.on_frame = watch
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    try:
        wait_until(lambda: loop.status.in_event, 60, "the event to start")    # the event started, so did the hang
        assert disk.blocked.wait(30)
        n0 = frames["n"]
        wait_until(lambda: runner.dropped >= 20, 60, "clip frames to be dropped")    # the queue filled and frames are dropped...
        assert frames["n"] - n0 >= 20               # ...while capture and detection went on
        assert loop.status.connected and t.is_alive()
        assert peak[0] <= runner.max_frames         # bounded: never more waiting than allowed
    finally:
        disk.release.set()                          # the disk answers again
        stop.set()
        t.join(30)
    assert runner.close(60)
    assert not t.is_alive()
    assert runner.dropped >= 20
    events = list((tmp_path / "rec").rglob("event.json"))
    assert len(events) == 1
    ev = json.loads(events[0].read_text())
    assert ev["end"] > ev["start"] and (tmp_path / "rec" / ev["snapshot"]).is_file()
    assert ev["clip"] and (tmp_path / "rec" / ev["clip"]).is_file()   # a clip with what could be kept
    assert not any(isinstance(s, EventFrame) for s in runner._q)
