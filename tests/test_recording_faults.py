"""Write failures in the middle of an event: a read-only event folder, a full
disk, a removed folder, and SIGKILL. Each time: one clear error, detection goes
on, nothing half-written is presented as an event, and recording resumes when
writing works again."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from motionwatch.config import EventsConfig, RecordingsConfig
from motionwatch.events import EventTracker
from motionwatch.model import Detection, Frame
from motionwatch.sinks.recorder import Recorder
from motionwatch.index.database import EventIndex
from motionwatch.sources.scene import Scene, SceneRenderer, Walker, write_video

from conftest import events_json, fill_to_the_last_byte, wait_until

needs_ffmpeg = pytest.mark.skipif(False, reason="clips are encoded in process")

# Two short visits, 10 fps: the first event ends near 4.5 s, the second starts near 7.5 s.
TWO = Scene(width=320, height=240, fps=10, duration_s=12, seed=8, noise=3.0,
            walkers=(Walker(1.0, 2.0, height=0.7, x_from=0.1, x_to=0.9),
                     Walker(7.5, 2.0, height=0.7, x_from=0.9, x_to=0.1)))
FAST = "events:\n  gap_seconds: 1.5\n  pre_roll_seconds: 1.0\n  post_roll_seconds: 1.0\n"


def assert_nothing_half_written(root: Path) -> None:
    """Every visible file is whole, and every event.json points only at whole files."""
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith(".") and not p.name.startswith("events.db"):
            assert p.stat().st_size > 0, p
            if p.suffix == ".jpg":
                assert cv2.imread(str(p)) is not None, p
            if p.suffix == ".mp4":
                cap = cv2.VideoCapture(str(p))
                assert cap.isOpened() and cap.read()[0], p
                cap.release()
    for ej in root.rglob("event.json"):
        rec = json.loads(ej.read_text())
        for key in ("snapshot", "thumbnail"):
            assert (root / rec[key]).is_file()
        assert all((root / c).is_file() for c in rec.get("clip_parts", []))


def events_in(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("event.json"))]


def event_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*/*") if p.is_dir() and not p.name.startswith("."))


# --- a live run (paced file) in a real subprocess ------------------------------------

def start_run(video: Path, root: Path, cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "motionwatch", "run", "--source", str(video),
                             "--camera", "door", "--config", str(cfg), "--recordings", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def make_read_only(folder: Path) -> str:
    """Root ignores permission bits, so as root the folder becomes a read-only bind
    mount of itself (a real read-only filesystem: EROFS); otherwise chmod 555."""
    if os.geteuid() == 0:
        if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            return "Read-only file system"
        pytest.skip("running as root without mount permission: cannot make a folder read-only")
    os.chmod(folder, 0o555)
    return "Permission denied"


def make_writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["umount", str(folder)], check=False)
    else:
        os.chmod(folder, 0o755)


@needs_ffmpeg
def test_event_folder_made_read_only_mid_event(tmp_path):
    video = Path(write_video(TWO, str(tmp_path / "two.mp4")))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(FAST)
    root = tmp_path / "recordings"
    proc = start_run(video, root, cfg)
    first = None
    try:
        first = wait_until(lambda: next(iter(event_folders(root)), None), timeout=30, what="the first event")
        wait_until(lambda: list(first.glob(".tmp-clip-*")), timeout=30, what="its clip")
        reason = make_read_only(first)                         # mid-event
        wait_until(lambda: len(event_folders(root)) >= 2, timeout=30, what="the second event")
        make_writable(first)                                   # writable again
        first = None
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if first is not None:
            make_writable(first)
    assert proc.returncode == 0, err
    errors = [ln for ln in err.splitlines() if " ERROR " in ln]
    assert len(errors) == 1 and "cannot write event" in errors[0] and reason in errors[0]
    assert "works again" in err and "written after all" in err
    assert "Traceback" not in err
    evs = events_in(root)
    assert len(evs) == 2                       # the second recorded normally, the first completed late
    assert all(len(e["clip_parts"]) == 1 for e in evs)
    assert_nothing_half_written(root)
    assert not list(root.rglob(".tmp-*"))


@needs_ffmpeg
def test_sigkill_mid_event_leaves_nothing_that_looks_whole(tmp_path):
    video = Path(write_video(TWO, str(tmp_path / "two.mp4")))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(FAST + "  snapshot: both\n")
    root = tmp_path / "recordings"
    proc = start_run(video, root, cfg)
    first = wait_until(lambda: next(iter(event_folders(root)), None), timeout=30, what="the first event")
    wait_until(lambda: list(first.glob(".tmp-clip-*")), timeout=30, what="its clip")
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # The encoder sees its input end and exits; it must not linger.
    wait_until(lambda: not any(str(first) in _cmdline(p) for p in Path("/proc").glob("[0-9]*")),
               timeout=20, what="ffmpeg to exit")
    assert not (first / "event.json").exists()           # not presented as an event
    visible = sorted(p.name for p in first.iterdir() if not p.name.startswith("."))
    assert visible == ["first.jpg"]                      # the moment it began, whole
    assert_nothing_half_written(root)
    assert events_json(root) == []


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --- the recorder driven in process -------------------------------------------------

class Drive:
    """Feeds rendered frames with chosen motion through the real tracker into the
    real recorder (the sink thread's work, done here so the test controls timing)."""

    def __init__(self, root: Path, **events):
        self.scene = Scene(width=320, height=240, fps=10, duration_s=200, seed=2, noise=3.0)
        self.renderer = SceneRenderer(self.scene)
        cfg = EventsConfig(gap_seconds=1.0, pre_roll_seconds=1.0, post_roll_seconds=1.0, **events)
        self.index = EventIndex(root)
        self.recorder = Recorder(RecordingsConfig(path=str(root)), cfg, self.index)
        self.tracker = EventTracker("cam", cfg, 0.01, 2, 10, clip_fps=10)
        self.i = 0

    def frames(self, n: int, motion: bool) -> None:
        for _ in range(n):
            img = self.renderer.render(self.i)
            if motion:   # a moving block, so clips have real change in them
                x = (self.i * 7) % 260
                img[100:180, x:x + 50] = (30, 40, 200)
            f = Frame(img, self.i, self.i / 10, 1_700_000_000 + self.i / 10)
            det = Detection(0.05 if motion else 0.0, [(x, 100, 50, 80)] if motion else [], None)
            for s in self.tracker.feed(f, det):
                self.recorder.handle(s)
            self.i += 1

    def close(self) -> None:
        for s in self.tracker.flush("shutdown"):
            self.recorder.handle(s)
        self.recorder.close()
        self.index.close()


@pytest.fixture
def small_disk(tmpfs):
    """A real 12 MB filesystem (tmpfs) that can be filled; needs root."""
    return tmpfs(12)


@needs_ffmpeg
def test_disk_full_mid_event_then_space_again(small_disk, caplog):
    root = small_disk / "recordings"
    d = Drive(root)
    caplog.set_level(logging.INFO)
    d.frames(20, False)
    d.frames(20, True)                        # event 1 running, clip part 1 being written
    filler = fill_to_the_last_byte(small_disk)
    fed = 0
    while not any(r.levelno >= logging.ERROR for r in caplog.records):   # the encoder hits the wall
        assert fed < 100, "the full disk was never noticed"
        d.frames(1, True)
        fed += 1
        time.sleep(0.05)
    filler.unlink()                           # space again
    d.frames(130, True)                       # the clip resumes as a new part (tried every 10 s)
    d.frames(30, False)                       # event 1 ends
    d.frames(20, True)                        # event 2: normal
    d.frames(30, False)
    d.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
    assert any("works again" in r.getMessage() for r in caplog.records)
    evs = events_in(root)
    assert len(evs) == 2
    one, two = sorted(evs, key=lambda e: e["start_frame"])
    assert [Path(p).name for p in one["clip_parts"]] == ["clip-002.mp4"]   # part 1 was lost
    assert one["clip"] == one["clip_parts"][0]
    assert [Path(p).name for p in two["clip_parts"]] == ["clip-001.mp4"]
    assert_nothing_half_written(root)
    assert not list(root.rglob(".tmp-*"))


@needs_ffmpeg
def test_event_folder_removed_mid_event(tmp_path, caplog):
    root = tmp_path / "recordings"
    d = Drive(root, snapshot="first")
    caplog.set_level(logging.INFO)
    d.frames(15, False)
    d.frames(10, True)
    (folder,) = event_folders(root)
    shutil.rmtree(folder)                     # someone cleans up by hand
    d.frames(10, True)
    d.frames(20, False)
    d.frames(10, True)                        # the next event is recorded normally
    d.frames(20, False)
    d.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "clip incomplete" in errors[0]
    one, two = sorted(events_in(root), key=lambda e: e["start_frame"])
    assert one["clip"] is None and one["clip_parts"] == []            # lost with the folder
    assert (root / one["snapshot"]).is_file()                         # rewritten from memory
    assert two["clip"] is not None
    assert_nothing_half_written(root)


@needs_ffmpeg
def test_disk_full_for_several_events_is_called_disk_full_and_never_works_again_early(small_disk, caplog):
    """Three events while the disk stays full: every error says the disk is full
    (ffmpeg's own words do not), and "works again" is said only once space is back."""
    root = small_disk / "recordings"
    d = Drive(root)
    caplog.set_level(logging.INFO)
    d.frames(20, False)
    filler = fill_to_the_last_byte(small_disk)
    for _ in range(3):
        d.frames(20, True)
        d.frames(30, False)
    while_full = list(caplog.records)
    errors = [r.getMessage() for r in while_full if r.levelno >= logging.ERROR]
    assert errors and all("disk full" in m for m in errors), errors
    works_again = lambda records: [r for r in records if r.getMessage().startswith("writing to")]  # noqa: E731
    assert not works_again(while_full)
    filler.unlink()
    d.frames(20, True)
    d.frames(30, False)
    d.close()
    assert len(works_again(caplog.records)) == 1
    assert_nothing_half_written(root)
