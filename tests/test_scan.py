"""`motionwatch scan` end to end on generated videos with known motion."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from motionwatch.model import EVENT_FIELDS

from conftest import events_json, mw


def test_two_visits_are_two_events_at_the_right_times(two_visits_video, recordings):
    video, scene = two_visits_video
    proc = mw("scan", str(video), "--recordings", str(recordings), check=True)
    assert "2 event(s)" in proc.stdout
    events = sorted(events_json(recordings), key=lambda e: e["start_frame"])
    assert len(events) == 2
    for ev, (t0, t1) in zip(events, scene.truth()):
        # The person enters from outside the picture: allow the time to walk in.
        assert t0 <= ev["start_offset_s"] <= t0 + 1.0
        assert t1 - 1.5 <= ev["end_offset_s"] <= t1 + 0.5
        assert ev["start_frame"] == round(ev["start_offset_s"] * scene.fps)
        assert ev["camera"] == "two_visits"
        assert 0 < ev["peak_fraction"] < 0.5


def test_event_files_and_json_contract(two_visits_video, recordings):
    video, scene = two_visits_video
    mw("scan", str(video), "--recordings", str(recordings), check=True)
    events = events_json(recordings)
    for ev in events:
        assert set(EVENT_FIELDS) <= set(ev)
        folder = recordings / Path(ev["snapshot"]).parent
        # <camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/
        assert folder.name.endswith("-" + ev["id"]) and folder.parent.parent.name == ev["camera"]
        on_disk = json.loads((folder / "event.json").read_text())
        assert {k: on_disk[k] for k in EVENT_FIELDS} == {k: ev[k] for k in EVENT_FIELDS}
        snap = cv2.imread(str(recordings / ev["snapshot"]))
        assert snap.shape[:2] == (scene.height, scene.width)   # full source resolution
        x, y, w, h = ev["boxes"][0]
        assert 0 <= x < scene.width and 0 <= y < scene.height and w > 10 and h > 40
        # Clips are on by default (events.clip); tests/test_clips.py checks their contents.
        assert ev["clip"] == ev["clip_parts"][0] and (recordings / ev["clip"]).is_file()
        assert ev["start"] < ev["end"] and ev["start"][-6] in "+-"   # ISO 8601 with offset
    leftovers = [p for p in recordings.rglob(".tmp-*")]
    assert leftovers == []


def test_static_noisy_scene_gives_no_event(static_noisy_video, recordings):
    proc = mw("scan", str(static_noisy_video), "--recordings", str(recordings), check=True)
    assert "0 event(s)" in proc.stdout
    assert events_json(recordings) == []


def test_masked_area_is_ignored(two_visits_video, recordings, tmp_path):
    video, scene = two_visits_video
    cfg = tmp_path / "mask.yaml"
    w, h = scene.width, scene.height
    # Ignore everything below the top eighth of the picture, where both people walk.
    cfg.write_text(f"cameras:\n  - name: masked\n    source: demo\n"
                   f"    mask: [[[0, {h // 8}], [{w}, {h // 8}], [{w}, {h}], [0, {h}]]]\n")
    mw("scan", str(video), "--config", str(cfg), "--camera", "masked", "--recordings", str(recordings), check=True)
    assert events_json(recordings) == []


def test_events_filters_and_limit(two_visits_video, recordings):
    video, _ = two_visits_video
    mw("scan", str(video), "--recordings", str(recordings), "--camera", "porch", check=True)
    mw("scan", str(video), "--recordings", str(recordings), "--camera", "yard", check=True)
    assert len(events_json(recordings)) == 4
    proc = mw("events", "--json", "--recordings", str(recordings), "--camera", "yard", check=True)
    assert {e["camera"] for e in json.loads(proc.stdout)} == {"yard"}
    proc = mw("events", "--json", "--recordings", str(recordings), "--limit", "1", check=True)
    assert len(json.loads(proc.stdout)) == 1
    proc = mw("events", "--recordings", str(recordings), check=True)
    assert "porch" in proc.stdout and "yard" in proc.stdout
    proc = mw("events", "--recordings", str(recordings), "--since", "yesterday")
    assert proc.returncode == 2 and "--since" in proc.stderr


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: (d / "notes.mp4").write_text("not a video at all") and d / "notes.mp4", "not a video"),
])
def test_bad_source_exits_1_naming_it(tmp_path, recordings, make, message):
    path = make(tmp_path)
    proc = mw("scan", str(path), "--recordings", str(recordings))
    assert proc.returncode == 1
    assert str(path) in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unopenable_camera_exits_1(recordings):
    proc = mw("run", "--source", "/dev/video99", "--recordings", str(recordings), "--duration", "2")
    assert proc.returncode == 1
    assert "/dev/video99" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_input_does_not_touch_existing_recordings(two_visits_video, recordings, tmp_path):
    video, _ = two_visits_video
    mw("scan", str(video), "--recordings", str(recordings), check=True)
    before = sorted(p.relative_to(recordings) for p in recordings.rglob("*") if p.is_file())
    bad = tmp_path / "bad.yaml"
    bad.write_text("events: {gap_seconds: -5}\n")
    assert mw("scan", str(video), "--config", str(bad), "--recordings", str(recordings)).returncode == 2
    assert mw("scan", str(tmp_path / "nope.avi"), "--recordings", str(recordings)).returncode == 1
    after = sorted(p.relative_to(recordings) for p in recordings.rglob("*") if p.is_file())
    assert before == after and len(events_json(recordings)) == 2
