"""`run`'s lifetime: each camera built once with its sinks, retention, the
capture threads and any extra service (the web UI), started and stopped in order.

An extra service comes as a factory that is given the camera loops and returns
something started with a `close()`, so pipeline never imports the review layer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol, Sequence

from motionwatch.config import Config
from motionwatch.config.source_spec import source_kind
from motionwatch.errors import ConfigError, SourceError
from motionwatch.index.database import EventIndex
from motionwatch.index.retention import RetentionThread, prepare_recordings
from motionwatch.pipeline.camera import BACKOFF_CAP, BACKOFF_START, CameraLoop
from motionwatch.sinks import Sink, SinkRunner
from motionwatch.sinks.notify.build import integration_sinks, state_listener
from motionwatch.sinks.recorder import Recorder

log = logging.getLogger("motionwatch")

# After a stop, how long `run` waits for capture loops to hand over their open events.
SHUTDOWN_JOIN_S = 3.0


class Service(Protocol):
    def close(self) -> None: ...


ServiceFactory = Callable[[list[CameraLoop]], Service]


def build_sinks(cfg: Config, index: EventIndex, scan: bool = False,
                notifiers: Sequence[Sink] | None = None) -> SinkRunner:
    """The recorder and the notifiers (`integration_sinks` unless given)."""
    # The recorder (snapshots, clips, event.json) first: the notifiers then see
    # event.json written (EventEnded.saved). A scan waits for the clip encoder
    # instead of dropping frames: nothing is live, and a short queue is enough.
    notifiers = integration_sinks(cfg) if notifiers is None else notifiers
    return SinkRunner([Recorder(cfg.recordings, cfg.events, index), *notifiers],
                      max_frames=30 if scan else 120, wait_for_room=scan)


class Runtime:
    """The cameras of a checked config, recording until `stop` is set."""

    def __init__(self, cfg: Config, stop: threading.Event, services: Sequence[ServiceFactory] = ()):
        self.cfg = cfg
        self.stop = stop
        self._factories = services
        self.services: list[Service] = []
        self.loops: list[CameraLoop] = []
        self.sinks: SinkRunner | None = None
        self._threads: list[threading.Thread] = []
        self._reported: set[CameraLoop] = set()
        self._lock = threading.Lock()
        self._running = 0   # camera threads not yet ended

    def start(self) -> None:
        """Open what `run` needs; on any failure close what was opened and raise."""
        index, retention = prepare_recordings(self.cfg.recordings)
        RetentionThread(retention, self.stop).start()
        self.sinks = build_sinks(self.cfg, index)
        on_state = state_listener(self.sinks.sinks)
        self.loops = [CameraLoop(cam, self.cfg, self.sinks, self.stop, on_state=on_state)
                      for cam in self.cfg.cameras]
        try:
            for make in self._factories:
                self.services.append(make(self.loops))
            late = open_cameras(self.loops, self.cfg)
        except BaseException:
            for loop in self.loops:
                if loop.source is not None:
                    loop.source.close()
            self._close_all()
            raise
        for loop in late:
            loop.announce_lost()
        self.loops = [loop for loop in self.loops if loop.source is not None or loop in late]
        self._threads = [threading.Thread(target=self._camera, args=(loop,), name=f"camera-{loop.cam.name}",
                                          daemon=True) for loop in self.loops]
        self._running = len(self._threads)
        for t in self._threads:
            t.start()

    def _camera(self, loop: CameraLoop) -> None:
        """One camera's thread: its failure is told as it stops; the last one to end
        ends the run (wait() sleeps until then: a poll five times a second was 2 % of a
        live camera's CPU)."""
        try:
            guarded(loop)
        finally:
            self.report_failures()
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self.stop.set()

    def wait(self, duration: float | None) -> None:
        """Until `duration` seconds passed, `stop` is set or every camera has ended."""
        if self._threads:
            self.stop.wait(duration or None)

    def close(self) -> int:
        """Stop everything and say how many events were recorded; raises the config
        error that stopped every camera (exit 2, as at start)."""
        self.stop.set()
        # Capture loops notice the stop within a fraction of a second and hand their open
        # events to the sinks; one stuck opening a dead camera holds no event, so it is not
        # waited for long (the threads are daemons).
        join_deadline = time.monotonic() + SHUTDOWN_JOIN_S
        for t in self._threads:
            t.join(timeout=max(0.0, join_deadline - time.monotonic()))
        self._close_all()
        total = sum(loop.status.events for loop in self.loops)
        log.info("stopped: %d event(s) recorded", total)
        failed = [loop.failure for loop in self.loops if loop.failure is not None]
        if failed and len(failed) == len(self.loops):
            raise failed[0]
        self.report_failures()
        return total

    def _close_all(self) -> None:
        if self.sinks is not None:
            self.sinks.close()
            if self.sinks.dropped:
                log.warning("%d clip frame(s) were dropped because saving could not keep up (slow disk?)",
                            self.sinks.dropped)
        for service in self.services:
            service.close()

    def report_failures(self) -> None:
        """Say once that a camera stopped over its config while others went on."""
        with self._lock:
            new = [loop for loop in self.loops if loop.failure is not None and loop not in self._reported]
            self._reported.update(new)
        for loop in new:
            log.error("%s: stopped: %s; the other cameras go on", loop.cam.name, loop.failure)


def open_cameras(loops: list[CameraLoop], cfg: Config) -> list[CameraLoop]:
    """Open every camera; return the live ones to retry in the background.

    With one camera, or when none opens, that is the user's error (exit 1).
    With several, a camera that cannot open yet (a network camera still
    booting after a power cut) must not keep the others from recording: it is
    retried with backoff; a video file that cannot open is left out."""
    failed = []
    for loop in loops:
        try:
            loop.open()
        except SourceError as e:
            if len(loops) == 1:
                raise
            failed.append((loop, e))
            continue
        log.info("%s: watching %s (%s fps); recording to %s", loop.cam.name, loop.source.describe(),
                 f"{round(loop.source.fps, 2):g}" if loop.source.fps else "?", cfg.recordings.path)
    if len(failed) == len(loops):
        raise SourceError("no camera could be opened: " + "; ".join(f"{lp.cam.name}: {e}" for lp, e in failed))
    late = []
    for loop, e in failed:
        if source_kind(loop.cam.source) == "file":
            log.error("%s: %s; this camera is left out, the others run", loop.cam.name, e)
        else:
            log.error("%s: %s; the others run, this one is retried in the background", loop.cam.name, e)
            late.append(loop)
    return late


def open_late(loop: CameraLoop, stop: threading.Event) -> bool:
    """Keep trying to open a camera that failed at start; True once it is open."""
    delay = BACKOFF_START
    while not stop.wait(delay):
        try:
            loop.open()
        except SourceError as e:
            delay = min(delay * 2, BACKOFF_CAP)
            log.info("%s: still cannot open (%s); next try in %.0f s", loop.cam.name, e, delay)
            continue
        # camera_found is announced by the loop with the first frame (it counts as lost).
        log.warning("%s: camera opened: watching %s", loop.cam.name, loop.source.describe())
        return True
    return False


def guarded(loop: CameraLoop) -> None:
    """Run one camera; whatever happens to it, the other cameras go on."""
    try:
        if loop.source is None and not open_late(loop, loop.stop):
            return
        loop.run_supervised()
    except ConfigError as e:   # Runtime reports it; a restart would fail the same way
        loop.failure = e
    except Exception:
        log.exception("%s: capture loop failed; the other cameras go on", loop.cam.name)
        if loop.on_state is not None:
            loop.status.connected = False
            loop.on_state("camera_lost", loop.status)
