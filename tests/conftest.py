"""Shared fixtures: generated videos with known motion, a clean recordings folder,
and a helper that runs the real `motionwatch` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motionwatch.sources.scene import Light, Scene, Walker, write_video
from support.footage import FOOTAGE


# CI sets this: there the footage is always laid beside the clone, so a missing clip
# means a broken setup, and a quiet skip would hide every real-footage check.
REQUIRE_FOOTAGE = os.environ.get("MOTIONWATCH_REQUIRE_FOOTAGE") == "1"


# A scan decodes a file on worker processes only when it is long (sources.parallel);
# this lets the tests' short clips take that path.
PARALLEL_ANY_LENGTH = {"MOTIONWATCH_PARALLEL_MIN_WORK": "0"}


def has_encoder(name: str) -> bool:
    """Whether the ffmpeg program here can write with encoder `name` (libxvid, libtheora...)."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines())


def footage(rel: str) -> Path:
    """A real clip from ../shared/footage; skip the test when it is absent, or fail
    where MOTIONWATCH_REQUIRE_FOOTAGE=1 (CI)."""
    p = FOOTAGE / rel
    if not p.exists():
        if REQUIRE_FOOTAGE:
            pytest.fail(f"real footage {rel} not found under {FOOTAGE} (MOTIONWATCH_REQUIRE_FOOTAGE=1)")
        pytest.skip(f"real footage {rel} not available")
    return p


def decode_plain(path) -> list:
    """Every frame of a video file in BGR, as a plain OpenCV read gives them."""
    import cv2
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def mw(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None,
       check: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m motionwatch ARGS` as a user would; returns the finished process."""
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "motionwatch", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"motionwatch {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def interrupt_when(args: list[str], log_path: Path, ready, sig: int, cwd: Path | None = None,
                   timeout: float = 60) -> tuple[int, str]:
    """Run `python -m motionwatch ARGS` with its output in `log_path`, send it `sig`
    once `ready(output so far)` is true, and return its exit code and output."""
    with open(log_path, "w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "motionwatch", *args], cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not ready(log_path.read_text()):
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.01)
            proc.send_signal(sig)
            code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, log_path.read_text()


def wait_until(pred, timeout: float = 20.0, what: str | None = None):
    """Poll `pred` until it gives something truthy and return that; on timeout
    return False, or fail the test naming `what` when it is given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    if what is not None:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return False


def events_json(recordings: Path) -> list[dict]:
    proc = mw("events", "--json", "--recordings", str(recordings), check=True)
    return json.loads(proc.stdout)


def same_events(seq_root: Path, par_root: Path) -> list[dict]:
    """The events of two scans are the same: count, frames, motion counted, snapshot
    and clip bytes; the sequential scan's, sorted."""
    seq = sorted(events_json(seq_root), key=lambda e: e["start_frame"])
    par = sorted(events_json(par_root), key=lambda e: e["start_frame"])
    assert len(seq) == len(par)
    for s, p in zip(seq, par):
        assert (s["start_frame"], s["end_frame"]) == (p["start_frame"], p["end_frame"])
        assert (s["frames_with_motion"], s["peak_fraction"]) == (p["frames_with_motion"], p["peak_fraction"])
        assert (seq_root / s["snapshot"]).read_bytes() == (par_root / p["snapshot"]).read_bytes()
        assert [(seq_root / c).read_bytes() for c in s["clip_parts"]] == \
               [(par_root / c).read_bytes() for c in p["clip_parts"]]
    return seq


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    return tmp_path / "recordings"


@pytest.fixture
def tmpfs(tmp_path: Path):
    """`tmpfs(size_mb)` mounts a real filesystem of that size under tmp_path (free
    space is exact and it can be filled to the last byte); skips without root.
    Everything it mounted is unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size_mb: int) -> Path:
        mnt = tmp_path / ("disk" if not mounted else f"disk{len(mounted)}")
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mnt)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_to_the_last_byte(disk: Path) -> Path:
    """Fill a (small, real) filesystem completely with one file; returns it, to unlink
    when the test gives the space back."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:   # the last blocks, smaller than a whole write
            while f.write(b"\0" * 512):
                pass
        except OSError:
            pass
    return filler


# Two people crossing a noisy room 12 s apart, and a light switched on in between.
TWO_VISITS = Scene(width=640, height=480, fps=15, duration_s=30, seed=3, noise=5.0,
                   walkers=(Walker(4.0, 5.0), Walker(17.0, 5.0, height=0.45, shade=70,
                                                       x_from=1.15, x_to=-0.15)),
                   lights=(Light(12.5, 1.3),))


@pytest.fixture(scope="session")
def two_visits_video(tmp_path_factory) -> tuple[Path, Scene]:
    path = tmp_path_factory.mktemp("videos") / "two_visits.mp4"
    write_video(TWO_VISITS, str(path))
    return path, TWO_VISITS


@pytest.fixture(scope="session")
def static_noisy_video(tmp_path_factory) -> Path:
    scene = Scene(width=640, height=480, fps=15, duration_s=15, seed=5, noise=9.0)
    path = tmp_path_factory.mktemp("videos") / "static_noisy.mp4"
    return Path(write_video(scene, str(path)))


def count_sleeps(source) -> list[int]:
    """Count the capture loop's sleeps in a live source's `read()` (each wait on its
    condition is one sleep and one wake-up); the count is the list's one item."""
    sleeps = [0]
    wait = source._cond.wait

    def counted_wait(timeout=None) -> bool:
        sleeps[0] += 1
        return wait(timeout)
    source._cond.wait = counted_wait
    return sleeps
