"""Retention on recordings folders filled past their limits: the oldest events
go whole, kept ones stay, each deletion is logged, nothing outside the root is
touched. Limits are enforced by the real CLI at start (`scan` of a quiet video)
and by the background thread while running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from motionwatch.config import RecordingsConfig
from motionwatch.index.retention import Retention, RetentionThread
from motionwatch.index.database import EventIndex
from motionwatch.sources.scene import Scene, write_video

from conftest import events_json, mw, wait_until

MB = 1_000_000


@pytest.fixture(scope="module")
def quiet_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quiet") / "quiet.mp4"
    return Path(write_video(Scene(width=160, height=120, fps=10, duration_s=1, noise=1.0), str(path)))


def make_event(root: Path, when: datetime, size: int = MB, camera: str = "yard", kept: bool = False,
               event_id: str | None = None) -> Path:
    """A finished event folder as the recorder leaves it: event.json plus media."""
    event_id = event_id or f"e{int(when.timestamp())}{camera[:3]}"
    folder = root / camera / when.strftime("%Y-%m-%d") / f"{when.strftime('%H%M%S')}-{event_id}"
    folder.mkdir(parents=True)
    (folder / "clip-001.mp4").write_bytes(os.urandom(size))
    (folder / "snapshot.jpg").write_bytes(os.urandom(2000))
    rel = lambda n: str((folder / n).relative_to(root))  # noqa: E731
    iso = when.astimezone().isoformat(timespec="milliseconds")
    rec = {"id": event_id, "camera": camera, "start": iso, "end": iso, "start_offset_s": 0.0,
           "end_offset_s": 1.0, "start_frame": 0, "end_frame": 10, "peak_fraction": 0.05,
           "frames_with_motion": 10, "snapshot": rel("snapshot.jpg"), "clip": rel("clip-001.mp4"),
           "clip_parts": [rel("clip-001.mp4")], "boxes": [], "kept": kept}
    (folder / "event.json").write_text(json.dumps(rec))
    return folder


def fill(root: Path, days: list[float], size: int = MB) -> list[Path]:
    now = datetime.now().replace(microsecond=0)
    return [make_event(root, now - timedelta(days=d), size) for d in days]


def enforce(quiet_video: Path, root: Path, tmp_path: Path, **limits) -> subprocess.CompletedProcess:
    cfg = tmp_path / "limits.yaml"
    cfg.write_text("recordings:\n" + "".join(f"  {k}: {v:f}\n" for k, v in limits.items()))
    return mw("scan", str(quiet_video), "--config", str(cfg), "--recordings", str(root), check=True)


def test_size_limit_deletes_oldest_unkept_events_whole(quiet_video, recordings, tmp_path):
    folders = fill(recordings, [8, 7, 6, 5, 4, 3, 2, 1])        # 8 x 1 MB, oldest first
    mw("events", "--reindex", "--recordings", str(recordings), check=True)
    oldest_id = folders[0].name.split("-", 1)[1]
    mw("events", "keep", oldest_id, "--recordings", str(recordings), check=True)
    proc = enforce(quiet_video, recordings, tmp_path, max_size_gb=0.0045, min_free_gb=0)
    gone = [f for f in folders if not f.exists()]
    assert gone == folders[1:5]                                  # the 4 oldest unkept
    assert all(f.exists() and (f / "clip-001.mp4").exists() for f in [folders[0], *folders[5:]])
    for f in gone:
        assert f"retention: deleted event {f.relative_to(recordings)}" in proc.stderr
        assert not f.parent.exists() or any(f.parent.iterdir())   # emptied date folders go too
    ids = {e["id"] for e in events_json(recordings)}
    assert ids == {f.name.split("-", 1)[1] for f in [folders[0], *folders[5:]]}
    assert not list(recordings.rglob(".deleting-*"))


def test_age_limit_spares_kept_events(quiet_video, recordings, tmp_path):
    folders = fill(recordings, [40, 35, 31, 20, 1])
    rec = json.loads((folders[1] / "event.json").read_text())
    rec["kept"] = True
    (folders[1] / "event.json").write_text(json.dumps(rec))
    proc = enforce(quiet_video, recordings, tmp_path, max_age_days=30, min_free_gb=0)
    assert [f.exists() for f in folders] == [False, True, False, True, True]
    assert proc.stderr.count("older than max_age_days") == 2


def test_nothing_outside_the_root_is_touched(quiet_video, recordings, tmp_path):
    outside = tmp_path / "elsewhere"
    precious = fill(outside, [100, 90])                       # looks like old events
    fill(recordings, [100])
    (recordings / "linked").symlink_to(outside / "yard")                       # a camera folder
    day = recordings / "yard" / (datetime.now() - timedelta(days=100)).strftime("%Y-%m-%d")
    (day / "000000-linkedevent").symlink_to(precious[1], target_is_directory=True)  # an event folder
    proc = enforce(quiet_video, recordings, tmp_path, max_age_days=1, max_size_gb=0.000001, min_free_gb=0)
    assert all((p / "event.json").exists() and (p / "clip-001.mp4").exists() for p in precious)
    assert (day / "000000-linkedevent").is_symlink()
    assert "linkedevent" not in proc.stderr and "linked/" not in proc.stderr


def test_incomplete_folders_age_out_but_one_being_written_stays(quiet_video, recordings, tmp_path):
    old, busy = fill(recordings, [10, 0.001])
    for f in (old, busy):
        (f / "event.json").unlink()            # a crash mid-event / an event still recording
    t = time.time() - 20 * 86400
    for p in [old, *old.iterdir()]:
        os.utime(p, (t, t))
    enforce(quiet_video, recordings, tmp_path, max_size_gb=0.000001, min_free_gb=0)
    assert not old.exists() and busy.exists()


def test_index_follows_the_folders(quiet_video, recordings, tmp_path):
    a, b, c = fill(recordings, [3, 2, 1])
    mw("events", "--reindex", "--recordings", str(recordings), check=True)
    shutil.rmtree(a)                                    # removed by hand
    d = make_event(recordings, datetime.now() - timedelta(hours=1))   # copied in by hand
    enforce(quiet_video, recordings, tmp_path, min_free_gb=0)
    assert {e["id"] for e in events_json(recordings)} == {f.name.split("-", 1)[1] for f in (b, c, d)}


@pytest.fixture
def small_disk(tmpfs):
    """A real 24 MB filesystem (tmpfs), so free space is exact; needs root."""
    return tmpfs(24)


def test_min_free_space_on_a_small_disk(quiet_video, small_disk, tmp_path):
    root = small_disk / "recordings"
    folders = fill(root, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], size=2 * MB)   # ~20 of 24 MB
    proc = enforce(quiet_video, root, tmp_path, min_free_gb=0, min_free_percent=45)
    free = shutil.disk_usage(root).free
    want = 0.45 * shutil.disk_usage(root).total
    assert free >= want
    kept = [f.exists() for f in folders]
    n = kept.count(False)
    assert kept == [False] * n + [True] * (10 - n) and 2 <= n <= 6     # oldest first, no more than needed
    assert free - 2.2 * MB < want                                       # one fewer would not have done
    assert proc.stderr.count("disk free space under min_free") == n


def test_default_min_free_gb_on_a_small_disk_keeps_a_tenth_free(quiet_video, small_disk):
    """The default min_free_gb (1 GB) on a disk far smaller than that: retention keeps
    a tenth of the disk free and deletes only what that needs, not every event."""
    root = small_disk / "recordings"
    folders = fill(root, list(range(12, 0, -1)), size=2 * MB)   # 24 of 25 MB (24 MiB): under a tenth free
    proc = mw("scan", str(quiet_video), "--recordings", str(root), check=True)
    total = shutil.disk_usage(root).total
    assert shutil.disk_usage(root).free >= 0.10 * total
    assert [f.exists() for f in folders] == [False] + [True] * 11
    assert proc.stderr.count("disk free space under min_free") == 1
    assert "leave recordings only" not in proc.stderr


def test_limits_that_leave_no_room_are_warned_about_at_start(quiet_video, small_disk, tmp_path):
    root = small_disk / "recordings"
    fill(root, [2, 1], size=2 * MB)
    proc = enforce(quiet_video, root, tmp_path, min_free_percent=95)
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln and "leave recordings only" in ln]
    assert len(warnings) == 1 and "min_free_percent" in warnings[0], proc.stderr


def test_background_thread_enforces_while_running(recordings):
    fill(recordings, [1])
    cfg = replace(RecordingsConfig(path=str(recordings)), max_age_days=2, min_free_gb=0,
                  retention_interval_seconds=10)   # the shortest interval a config allows
    stop = threading.Event()
    index = EventIndex(recordings)
    index.rebuild()
    RetentionThread(Retention(recordings, cfg), stop).start()
    try:
        late = fill(recordings, [5])[0]               # appears while running
        index.add(json.loads((late / "event.json").read_text()), late)
        wait_until(lambda: not late.exists() and len(index.query()) <= 1, timeout=40)
        assert not late.exists()
        assert len(index.query()) == 1     # removed from the index by the thread, not just the disk
    finally:
        stop.set()
        index.close()
