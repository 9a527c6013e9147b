"""The capture loop: one camera's source → detector → tracker → sink queue.

It never waits on disk or network (sinks run on their own thread), survives a
live source that drops out (reconnect with capped exponential backoff and a
fresh warm-up), and shuts down cleanly, finishing any open event.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import cv2

from motionwatch.config import CameraConfig, Config
from motionwatch.detect import MotionDetector
from motionwatch.errors import ConfigError, SourceError
from motionwatch.events import EPS, ClipPackets, EventEnded, EventStarted, EventTracker
from motionwatch.media.probe import COPY_CODECS
from motionwatch.pipeline.lighting_log import LightingLog
from motionwatch.detect.masks import watch_mask
from motionwatch.model import Detection, Frame, detection_size, detection_width, iso
from motionwatch.sources import FrameSource, SourceOptions, open_source

log = logging.getLogger("motionwatch")

# Detection works on ~320 px images, where waking OpenCV's worker threads costs
# more than they save (docs/performance.md); FFmpeg's decoder threads are
# separate and unaffected.
OPENCV_THREADS = 1
# The clip_codec settings that copy the codecs media.probe.COPY_CODECS names. HEVC is
# among them, although Chrome and Firefox play it only where the machine decodes it
# (the review page then offers the download): most HEVC cameras are 1080p and up, where
# encoding the clip instead cost 4x the scan's decode and more than a Pi has
# (docs/performance.md, 2026-12-05 12:26).
COPYING_SETTINGS = frozenset({"auto", "copy"})

# Why an event ends when the picture size changes (a camera reconfigured mid-stream).
SIZE_CHANGED = "size changed"
# Damaged pictures passed over are told at most once in this many seconds of source time.
DAMAGE_SAY_EVERY_S = 60.0
# While an event is open its packets go to the clip every this many frames:
# fewer queue signals than one per frame, and the sink holds about a GOP.
COPY_BATCH = 8

# A live source's (arrival time, has a picture) of frame `index`, while it knows them:
# seconds since its first frame, and False for a frame left undecoded.
Arrived = Callable[[int], "tuple[float, bool] | None"]

BACKOFF_START = 1.0
BACKOFF_CAP = 30.0



def analysis_step(source_fps: float, limit: float, every: int = 1) -> int:
    """Source frames from one analysed frame to the next with detection.fps `limit`
    (0: every frame) and `scan --detect-every` `every`.

    `_due` analyses a frame once 1/limit seconds have passed since the last one,
    so a 25 fps source at limit 10 is analysed every third frame. With `every`
    too, only every `every`-th frame can be that frame."""
    step = math.ceil(source_fps / limit - EPS) if limit and limit < source_fps else 1
    return every * math.ceil(step / every)


def analysis_fps(source_fps: float, limit: float, every: int = 1) -> float:
    """The rate frames are really analysed at (a 25 fps source at limit 10: 8.3 a
    second), which the detector's time constants must be converted with."""
    return source_fps / analysis_step(source_fps, limit, every)


def camera_stages(cfg: Config, cam: CameraConfig, size: tuple[int, int], fps: float,
                  clip: bool | None = None, clip_fps: float | None = None, rotation: int = 0
                  ) -> tuple[MotionDetector, EventTracker]:
    """The detector (with the camera's mask) and the event tracker for one camera
    at one picture size (upright; `rotation`: the source's display turn): the
    capture loop, `tune` and the evaluation all use these."""
    det_cfg = cfg.camera_detection(cam)
    width = detection_width(size, det_cfg.width, rotation)
    if width != det_cfg.width:
        det_cfg = replace(det_cfg, width=width)
    base = Path(cfg.source_file).parent if cfg.source_file else None
    watch = watch_mask(cam, size, detection_size(size[0], size[1], det_cfg.width), base)
    detector = MotionDetector(det_cfg, size, fps, watch)
    tracker = EventTracker(cam.name, cfg.events, det_cfg.trigger_fraction, det_cfg.min_frames,
                           fps, clip=clip, clip_fps=clip_fps)
    return detector, tracker

@dataclass
class CameraStatus:
    """What the status page and metrics show about one camera."""

    name: str
    source: str
    connected: bool = False
    since: float = field(default_factory=time.time)
    frames: int = 0
    analysed: int = 0
    dropped: int = 0
    fps: float = 0.0
    fraction: float = 0.0
    events: int = 0
    last_event: str | None = None
    reconnects: int = 0
    in_event: bool = False
    last_error: str | None = None   # why the camera was last lost
    stalls: int = 0                 # frames the loop took longer than a frame interval over


class CameraLoop:
    """Runs one camera until `stop` is set or (for files) the source ends."""

    def __init__(self, cam: CameraConfig, cfg: Config, sinks, stop: threading.Event,
                 scan: bool = False, start_wall: float | None = None,
                 on_frame: Callable[[Frame, Detection], None] | None = None,
                 on_state: Callable[[str, CameraStatus], None] | None = None):
        self.cam = cam
        self.cfg = cfg
        self.det_cfg = cfg.camera_detection(cam)
        self.sinks = sinks
        self.stop = stop
        self.scan = scan
        self.start_wall = start_wall
        self.on_frame = on_frame
        self.on_state = on_state
        self.status = CameraStatus(cam.name, cam.source)
        cv2.setNumThreads(OPENCV_THREADS)
        self.source: FrameSource | None = None
        self.detector: MotionDetector | None = None
        self.tracker: EventTracker | None = None
        self._size: tuple[int, int] | None = None
        self._copy_seq = -1     # the last ring packet handed to the open event's stream-copy clip
        self._copy_facts = None  # the stream facts (picture size) of that clip's packets
        self._copy_first = 0     # the ring's clock at that event's first picture
        self._next_detect_ts = 0.0
        self._detected_index = 0   # the index of the last analysed frame, for _detect_step
        self._detect_step = 0      # source frames between analysed ones at detection.fps (0: by time only)
        self._owed = False         # the last frame passed its turn on: this one is analysed (_due)
        self._damage_said = -DAMAGE_SAY_EVERY_S   # source time of the last damaged-picture line
        # A live source's reader thread runs the schedule ahead (_schedule): it must
        # see the last frame processed and the schedule after that frame together.
        self._schedule_lock = threading.Lock()
        # detection.fps as seconds between analysed frames (0: analyse every frame).
        self._detect_interval = 1.0 / self.det_cfg.fps if self.det_cfg.fps else 0.0
        self._stall_s = 0.1     # a frame interval of the current source, set per source in _setup
        self._fps_window: list[float] = []
        self.detect_every = 1   # `scan --detect-every N`: analyse every Nth frame, read them all
        self.decoder_threads = 0   # `scan --jobs`: FFmpeg threads this scan may decode on (0: the source's choice)
        self.decode_jobs = 0       # `scan --jobs` of one long file: worker processes decoding it (sources.parallel)
        self.decode_cluster: str | None = None   # ... on a Dask cluster's workers instead (`scan --cluster`)
        # A file's frames that will not be analysed and that no picture refers to are
        # not decoded (sources.undecoded); off: every frame is (tests compare the two).
        self.skip_undecoded = True
        # A due disposable frame may pass its turn to the next (sources.undecoded); off:
        # the schedule's own frames are analysed (tests compare the two).
        self.pass_turns = True
        self._last_index = -1      # the index of the last frame processed, for _wanted
        self._backoff = BACKOFF_START
        self._up_since = 0.0   # monotonic time of the last (re)connection
        self._was_lost = False  # so the next frame announces "camera_found"
        self.failure: ConfigError | None = None   # why `run` stopped this camera for good
        self.lighting_log = LightingLog()
        self._ready_frames = 0  # analysed frames since the detector's warm-up ended
        self.bad_frames = 0     # due JPEGs that did not decode (skipped)

    # -- lifecycle ----------------------------------------------------------------

    def open(self) -> FrameSource:
        """Open the source once; errors here are the user's to fix (exit 1).

        The camera counts as connected only once a frame arrives, never on open."""
        self.source = open_source(self.cam.source, self.source_options())
        # The schedule needs only the source's rate: a source that plans ahead
        # (_wanted_range) asks before the first frame sets the loop up.
        self._detect_step = self._frames_per_analysis()
        ev = self.cfg.events
        if ev.clip and ev.clip_codec == "copy" and not self.source.copying:
            if self.source.coding in COPY_CODECS:
                what = "its packets carry no timestamps (a raw stream)"
            elif self.source.coding:
                what = f"its video is {self.source.coding}"
            else:
                what = f"a {self.source.kind} has no packets"
            log.info("%s: clip_codec copy: %s, which an MP4 clip cannot hold as it is; encoding them instead",
                     self.cam.name, what)
        return self.source

    def announce_lost(self) -> None:
        """For a camera that could not be opened at start and is retried: listeners
        hear camera_lost now, and camera_found with its first frame."""
        self._was_lost = True
        if self.on_state is not None:
            self.on_state("camera_lost", self.status)

    def source_options(self) -> SourceOptions:
        ev = self.cfg.events
        # Clips are the source's own packets when its codec allows (the source decides
        # from `copy_codecs`); auto encodes when clip_width asks for narrower clips.
        # Encoded clips are made from the packets too, so the pre-roll stays compressed.
        # `scan` as well: encoding its decoded frames instead saves the second decode
        # (a quarter more CPU for re-encoded clips) but x264 falls behind the scan and
        # the frames pile up (a 1080p scan with clip_codec h264 peaked at 816 MB against
        # 276 MB; docs/performance.md), and a Pi must not run out of memory.
        copy = ev.clip and ev.clip_codec in COPYING_SETTINGS
        return SourceOptions(
            scan=self.scan, start_wall=self.start_wall, timeout=self.cam.timeout_seconds,
            cancel=self.stop, detect_width=self.det_cfg.width, gray_on_demand=True,
            packet_seconds=ev.pre_roll_seconds, encode_packets=ev.clip,
            copy_codecs=COPY_CODECS if copy else frozenset(),
            copy_max_width=ev.clip_width if ev.clip_codec == "auto" else 0,
            fast_decode=self.det_cfg.fast_decode, decoder_threads=self.decoder_threads,
            wanted=self._wanted if self.skip_undecoded else None, analysed=self._analysed, passing=self._passing,
            wanted_range=self._wanted_range if self.skip_undecoded else None, decode_jobs=self.decode_jobs,
            decode_cluster=self.decode_cluster)

    def run(self) -> CameraStatus:
        if self.source is None:
            self.open()
        try:
            while not self.stop.is_set():
                frame = self.source.read(timeout=self.cam.timeout_seconds)
                if frame is None:
                    if self.stop.is_set():
                        break
                    if not self.source.live:
                        self._flush("source ended")
                        break
                    self._lost()
                    if not self._reconnect():
                        break
                    continue
                if not self.status.connected:
                    self._connected()
                began = time.perf_counter()
                self._process(frame)
                self._count_stall(time.perf_counter() - began)
            self._flush("shutdown")  # nothing left to flush when the source ended or was lost
        finally:
            self.status.dropped = self.source.stats().dropped if self.source else 0
            if self.source is not None:
                self.source.close()
        return self.status

    def run_supervised(self) -> CameraStatus:
        """`run`, restarted with backoff after an unexpected error when the source is live:
        a camera that is watched for months must not stop over one bad frame or driver hiccup."""
        delay = BACKOFF_START
        while True:
            try:
                return self.run()
            except ConfigError:
                # The config, not the camera: every restart would fail the same way.
                raise
            except Exception as e:
                if self.source is not None and not self.source.live:
                    raise
                log.exception("%s: capture loop failed; restarting in %.0f s", self.cam.name, delay)
                try:
                    self._flush("capture error")  # an open event is still saved
                except Exception:
                    log.exception("%s: could not finish the open event", self.cam.name)
                self.status.connected, self.status.last_error = False, f"{type(e).__name__}: {e}"
                self._was_lost = True
                if self.on_state is not None:
                    self.on_state("camera_lost", self.status)
            if self.stop.wait(delay):
                return self.status
            delay = min(delay * 2, BACKOFF_CAP)
            self.source, self._size, self.detector, self.tracker = None, None, None, None

    # -- per frame ----------------------------------------------------------------

    def _due(self, index: int, ts: float) -> bool:
        """Whether this frame is analysed (detection.fps, `scan --detect-every`); moves the schedule on."""
        if self._owed:   # the frame before passed its turn on; the schedule stays as it set it
            self._owed = False
            return True
        if not self._is_due(index, ts, self._next_detect_ts, self._detected_index):
            return False
        if self._detect_interval:
            self._next_detect_ts = ts + self._detect_interval
            self._detected_index = index
        return True

    def _schedule_ts(self, frame: Frame) -> float:
        """The time `_due` schedules a frame by: a live frame's arrival, a file frame's
        index / fps. A file's frames carry their own timestamps (media.clock), which in
        a variable-rate file differ from that; analysing by count keeps which frames
        are analysed what `_analysed` predicts ahead of the loop for the decoder."""
        fps = self.source.fps if self.source is not None and not self.source.live else 0
        return frame.index / fps if fps else frame.ts

    def _is_due(self, index: int, ts: float, next_ts: float, detected: int) -> bool:
        """`_due`'s rule for a schedule at `next_ts` whose last analysed frame was `detected`."""
        if index % self.detect_every:
            return False
        # EPS: 0.1 + 0.1 + 0.1 > 0.3 in floats; without it every third interval at
        # 30 fps in 10 would wait a frame longer. A live source's `ts` is its arrival
        # time: a stream that delivers a burst (an HLS segment, a camera catching up
        # after a stall) would have most of it skipped by time alone, so the frame
        # count at the source's own rate also makes a frame due, as a file's frame
        # times would.
        return ts >= next_ts - EPS or 0 < self._detect_step <= index - detected

    def _process(self, frame: Frame) -> None:
        st = self.status
        st.frames += 1
        # The detector is built for the frame's size in source pixels, what boxes
        # and masks refer to (a JpegFrame knows it from the header, undecoded).
        size = frame.size
        if size != self._size:
            self._setup(size)
        with self._schedule_lock:
            self._last_index = frame.index
            schedule = self._next_detect_ts, self._detected_index
            due = self._due(frame.index, self._schedule_ts(frame))
            if due and frame.passes_turn and self._passing():
                # A disposable picture whose next frame is decoded anyway: that one is
                # analysed instead, a frame later, and the schedule keeps to this one's time.
                self._owed, due = True, False
        if due:
            # A frame the source left undecoded is decoded after all; if it cannot be,
            # it is as if it was never due, so the next frame is.
            decoded = frame.with_picture()
            if decoded is None:
                with self._schedule_lock:
                    self._next_detect_ts, self._detected_index = schedule
                due = False
            else:
                frame = decoded
        pic = self._picture(frame) if due and not frame.damaged else None
        if due and frame.damaged:
            # Damage the decoder patched up would look like motion (media.damage; a
            # camera's damaged JPEG is known once decoded: media.jpeg_check): the
            # frame is recorded but not analysed. The schedule goes on as if it was (the
            # frames due next are the ones the source was told of, decoded ahead).
            self._say_damaged(frame)
        elif due and pic is None:
            return
        if pic is None:
            # Analyse at most detection.fps frames a second; the others still go
            # to the pre-roll and the clip so clips keep the source's frame rate.
            for signal in self.tracker.carry(frame):
                self._emit(signal)
            return
        det = self.detector.update(pic)
        st.analysed += 1
        st.fraction = det.fraction
        self._tick_fps(frame.ts)
        started = False
        for signal in self.tracker.feed(frame, det):
            started |= isinstance(signal, EventStarted)
            self._emit(signal)
        self._say_warm(det)
        self._say_lighting(self.lighting_log.feed(frame.ts, self.detector.gain, det.lighting_change, started))
        if self.tracker.open is not None and self._copy_seq >= 0 and frame.index % COPY_BATCH == 0:
            self._hand_packets(self.tracker.open)
        st.in_event = self.tracker.active
        if self.on_frame is not None:
            self.on_frame(frame, det)

    def _passing(self) -> bool:
        """Whether a due frame that passes its turn on (sources.undecoded) may: not when
        every frame is analysed (nor with `--detect-every`, which names the frames), nor
        while decoded frames are kept for clips (they are decoded anyway). In `run` too,
        since frames reach the loop in batches (LIVE_BATCH_S): the frame after a paced
        file's batch comes with the next batch, not at a wake-up of its own."""
        return self.pass_turns and self._detect_step >= 2 and self.detect_every == 1 and not (
            self.tracker is not None and self.tracker.clip)

    def _wanted(self, index: int, ts: float | None = None, arrived: Arrived | None = None) -> bool:
        """Whether frame `index`'s picture will be needed, asked by the source ahead of
        the loop (sources.undecoded): when it will be analysed (`_analysed`), before the
        first frame set the loop up, and while the tracker keeps decoded frames for clips."""
        if self.tracker is not None and self.tracker.clip:
            return True
        return self._analysed(index, ts, arrived)

    def _analysed(self, index: int, ts: float | None = None, arrived: Arrived | None = None) -> bool:
        """Whether frame `index` will be analysed, asked by the source ahead of the loop
        (a frame that will not be can wait for the next one that will, instead of waking
        the loop): the schedule `_due` keeps, run on (on a copy) from the last frame
        processed (`_schedule`). True before the first frame set the loop up, or when
        the source states no rate."""
        fps = self.source.fps if self.source is not None else 0
        if self.tracker is None or not fps:
            return True
        due = True
        for _, due in self._schedule(index + 1, fps, ts, arrived):
            pass
        return due

    def _wanted_range(self, first: int, stop: int) -> frozenset | None:
        """The indices in [first, stop) of a file's frames that will be analysed, asked
        ahead of the loop by a source that decodes in other processes; None: all."""
        fps = self.source.fps if self.source is not None else 0
        if (self.tracker is not None and self.tracker.clip) or not fps:
            return None
        return frozenset(i for i, due in self._schedule(stop, fps) if due and i >= first)

    def _schedule(self, stop: int, fps: float, ts: float | None = None, arrived: Arrived | None = None):
        """(index, due) for the frames after the last one processed up to `stop`, by the
        schedule `_due` keeps, run on a copy. A file's frame times are index / fps. A
        live frame's time is its arrival: `arrived(i)` where the source still knows it
        (frames handed out or waiting), else a frame interval apart up to `ts`, the
        time the last one is asked for. Frames that come together (an HLS segment, a
        camera catching up) are scheduled as the loop will, not as if spread out."""
        with self._schedule_lock:
            next_ts, detected = self._next_detect_ts, self._detected_index
            first, owed = self._last_index + 1, self._owed
        last = stop - 1
        if owed and first < stop:   # the frame before passed its turn to this one
            yield first, True
            first += 1
        for i in range(first, stop):
            known = arrived(i) if arrived is not None else None
            if known is None:
                t, pictured = (i / fps if ts is None else ts - (last - i) / fps), True
            else:
                t, pictured = known
            due = self._is_due(i, t, next_ts, detected)
            if due and pictured and self._detect_interval:
                next_ts, detected = t + self._detect_interval, i
            # A due live frame without a picture passes its turn on, as in _process.
            yield i, due and pictured

    def _picture(self, frame: Frame):
        """What the detector looks at (`Frame.detect_picture`); None for a picture that
        does not decode (a damaged JPEG), which is skipped and counted."""
        pic = frame.detect_picture(self.tracker.clip and self.tracker.active)
        if pic is None and not frame.damaged:
            self.bad_frames += 1
            if self.bad_frames == 1:
                log.warning("%s: skipping a frame that does not decode (more are not logged)", self.cam.name)
        return pic

    def _say_damaged(self, frame: Frame) -> None:
        """A line when damaged pictures are passed over (at most one a minute: a bad link
        may damage many)."""
        if frame.ts - self._damage_said >= DAMAGE_SAY_EVERY_S or frame.ts < self._damage_said:
            self._damage_said = frame.ts
            log.warning("%s: damaged video at frame %d (bit errors the decoder patched up, or a picture it "
                        "could not decode); not analysing up to the next keyframe", self.cam.name, frame.index)

    def _setup(self, size: tuple[int, int]) -> None:
        """(Re)build detector and tracker for a frame size (new source or a size change)."""
        if self._size is not None:
            log.warning("%s: picture size changed from %dx%d to %dx%d; re-learning the background",
                        self.cam.name, *self._size, *size)
            self._flush(SIZE_CHANGED)
        self._size = size
        self._ready_frames = 0
        self._stall_s = 1.0 / self._source_fps()
        self._detect_step = self._frames_per_analysis()
        copying = self.source is not None and self.source.packets is not None
        self.detector, self.tracker = camera_stages(
            self.cfg, self.cam, size, self._analysis_fps(),
            clip=False if copying else None, clip_fps=self.source.fps if self.source else None,
            rotation=self.source.rotation if self.source else 0)
        self.detector.luma_levels = self.source.luma_levels if self.source else None

    def _count_stall(self, seconds: float) -> None:
        """A frame that kept the loop busy longer than a frame interval (live: the
        camera's next frame had to wait or was dropped) counts as a stall."""
        if seconds > self._stall_s and self.status.frames > 1:
            self.status.stalls += 1

    def _source_fps(self) -> float:
        """The source's frame rate, or 10 when it does not say (pipes, some cameras)."""
        return self.source.fps if self.source and self.source.fps else 10.0

    def _frames_per_analysis(self) -> int:
        """Source frames per analysed one at detection.fps, when the source states its
        rate (0: none stated, or every frame analysed: schedule by time only)."""
        fps = self.source.fps if self.source else 0
        if not (fps and self._detect_interval):
            return 0
        return analysis_step(fps, self.det_cfg.fps, self.detect_every)

    def _analysis_fps(self) -> float:
        return analysis_fps(self._source_fps(), self.det_cfg.fps, self.detect_every)

    def _tick_fps(self, ts: float) -> None:
        w = self._fps_window
        w.append(ts)
        if len(w) > 30:
            del w[0]
        if len(w) >= 2 and w[-1] > w[0]:
            self.status.fps = (len(w) - 1) / (w[-1] - w[0])

    def _emit(self, signal) -> None:
        st = self.status
        state = None   # what on_state hears about this signal; frames and clip parts are not news
        if isinstance(signal, EventStarted):
            ev = signal.event
            log.info("%s: motion: event %s started at %s (frame %d, %.1f%% changed)", ev.camera, ev.id,
                     iso(ev.first.wall)[11:19], ev.first.index, 100 * ev.peak)
            state = "event_start"
        elif isinstance(signal, EventEnded):
            st.events += 1
            st.last_event = signal.record.end
            state = "event_end"
            self._hand_packets(signal.event, end=signal.reason)
        self.sinks.put(signal)
        if isinstance(signal, EventStarted):
            self._hand_packets(signal.event)
        if state is not None and self.on_state is not None:
            self.on_state(state, st)

    def _say_warm(self, det) -> None:
        """Say (DEBUG) when warm-up is over: at the first frame that could start an
        event (the min_frames-th ready frame), so anything the fresh background
        missed, such as a reconnect's jump, has shown as an event before this line."""
        if not det.ready:
            return
        self._ready_frames += 1
        if self._ready_frames == self.tracker.min_frames:
            log.debug("%s: warm-up done (%d frames analysed); watching for motion",
                      self.cam.name, self.detector.frames)

    def _say_lighting(self, message: str | None) -> None:
        """A lighting change the detector compensated: worth a line, so a user sees it was ignored."""
        if message:
            log.info("%s: %s", self.cam.name, message)

    def _hand_packets(self, ev, end: str | None = None) -> None:
        """Give the open event's stream-copy clip the ring's new packets: at the start
        from the keyframe before the pre-roll, at the end (`end`: why it ended) up to
        past the post-roll. Packets are few and small, so the sink queue never drops them."""
        ring = self.source.packets if self.source is not None else None
        first, last = getattr(ev.first, "pts", None), getattr(ev.last_motion, "pts", None)
        try:
            if ring is None or first is None or last is None:
                return
            tb = ring.time_base
            if self._copy_seq < 0:
                packets = ring.since(first, int(self.cfg.events.pre_roll_seconds / tb))
                if not packets:
                    return
                self._copy_first = ring.clock_at(first)
                self._copy_facts = next((p.template for p in reversed(packets) if p.pts == first),
                                        packets[-1].template)
            else:
                packets = ring.after(self._copy_seq)
            if packets:
                self._copy_seq = packets[-1].seq
                # What the clip has is the sink's now: the ring keeps only what is still
                # to hand over, so a long event costs no more memory than a short one.
                ring.pin(self._copy_seq + 1)
                # A picture size change ends an event, so its clip is of one size: the
                # pre-roll starts at the keyframe that brought it (the ring tags packets
                # from there on), the post-roll stops before the next one.
                packets = [p for p in packets if p.template is self._copy_facts]
            upto = ring.clock_at(last)
            stop = None if end is None else upto + int(self.cfg.events.post_roll_seconds / tb)
            # The stream's packets of this size are whole at its end and at a size change.
            self.sinks.put(ClipPackets(ev, packets, self.source.template, tb, self._copy_first, upto, stop,
                                       at_eof=end in ("source ended", SIZE_CHANGED), copy=self.source.copying))
        finally:
            if end is not None:   # the next event starts a new clip, from a trimmed ring
                if ring is not None:
                    ring.pin(None)
                self._copy_seq, self._copy_facts = -1, None

    def _flush(self, reason: str) -> None:
        self._say_lighting(self.lighting_log.finish())
        if self.tracker is not None:
            for signal in self.tracker.flush(reason):
                self._emit(signal)

    # -- connection ---------------------------------------------------------------

    def _connected(self) -> None:
        """A frame arrived: only now is the camera connected (and, after a loss, found)."""
        st = self.status
        st.connected, st.since = True, time.time()
        self._up_since = time.monotonic()
        if self._was_lost:
            self._was_lost = False
            if self.on_state is not None:
                self.on_state("camera_found", st)

    def _lost(self) -> None:
        """No frame within the timeout, or the stream ended: end any event, say so, let go."""
        st = self.status
        self._flush("camera lost")
        src = self.source
        stats = src.stats()
        error = stats.error
        if stats.ended:
            why = "the stream ended" + (f": {error}" if error else "")
        else:
            why = f"no frame for {self.cam.timeout_seconds:g} s"
        was_up = st.connected
        st.connected, st.since, st.last_error = False, time.time(), why
        self._was_lost = True
        log.warning("%s: camera lost: %s (%s)", self.cam.name, why, src.describe())
        if self.on_state is not None:
            self.on_state("camera_lost", st)
        src.close()
        # A camera that stayed up for twice its timeout starts over at 1 s; one that
        # keeps dropping right after coming back is retried ever more slowly.
        if was_up and time.monotonic() - self._up_since >= 2 * self.cam.timeout_seconds:
            self._backoff = BACKOFF_START
        elif was_up:
            self._backoff = min(self._backoff * 2, BACKOFF_CAP)

    def _reconnect(self) -> bool:
        """Retry with exponential backoff (capped at 30 s) until frames return or we stop.

        Waiting is sleeping on the stop flag, so a dead camera costs no CPU."""
        delay = self._backoff
        tries = 0
        lost_at = self.status.since
        while not self.stop.wait(delay):
            tries += 1
            why = self._try_open()
            if why is None:
                self._backoff = delay
                log.warning("%s: camera found again after %d tr%s (lost for %.0f s); re-learning the background",
                            self.cam.name, tries, "y" if tries == 1 else "ies", time.time() - lost_at)
                return True
            delay = min(delay * 2, BACKOFF_CAP)
            self.status.last_error = why
            log.info("%s: still lost (%s); next try in %.0f s", self.cam.name, why, delay)
        return False

    def _try_open(self) -> str | None:
        """Open the source and wait for a frame; None on success, else why not."""
        try:
            self.source.open()
        except SourceError as e:
            return str(e)
        frame = self.source.read(timeout=self.cam.timeout_seconds)
        if frame is None:
            self.source.close()
            if self.stop.is_set():
                return "stopping"
            return f"connected but no frame within {self.cam.timeout_seconds:g} s"
        # Fresh detector and tracker: the background is re-learned (warm-up), so the
        # jump between the last frame before the loss and this one is not an event.
        self._size = None
        self.detector = self.tracker = None
        # Counted before the camera shows as connected, so the status page never
        # shows it back without the reconnect (seen under load).
        self.status.reconnects += 1
        self._connected()
        self._process(frame)
        return None
