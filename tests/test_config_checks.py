"""One validation path: every config `run` refuses, `check-config` refuses first,
with the same one line and exit 2; and what a user can type that must never
hang or print a traceback."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import mw

BLOCK_PAHO = "block-paho"   # a folder on PYTHONPATH whose `paho` cannot be imported


def _black_png(d: Path) -> str:
    cv2.imwrite(str(d / "black.png"), np.zeros((48, 64), np.uint8))
    return "black.png"


def _fifo(d: Path, name: str) -> str:
    os.mkfifo(d / name)
    return name


def _file(d: Path, name: str) -> str:
    (d / name).write_text("a file, not a folder\n")
    return name


# (id, config text made from the folder it is written in, what the one line must name)
INVALID = [
    ("mask-image-missing", lambda d: "cameras:\n  - {name: door, source: demo, mask_image: nosuch.png}\n",
     ["cameras[door].mask_image", "'nosuch.png'", "not a file"]),
    ("mask-image-all-black", lambda d: f"cameras:\n  - {{name: door, source: demo, mask_image: {_black_png(d)}}}\n",
     ["cameras[door].mask_image", "whole picture"]),
    ("web-open-without-password", lambda d: "web: {enabled: true, host: 0.0.0.0, password_env: null}\n",
     ["web.host", "'0.0.0.0'", "password"]),
    ("webhook-ftp", lambda d: "webhooks:\n  - url: ftp://x\n",
     ["webhooks[0].url", "'ftp://x'", "http:// or https://"]),
    ("webhook-without-url", lambda d: "webhooks:\n  - snapshot: true\n", ["webhooks[0]", "no url"]),
    ("mqtt-without-paho", lambda d: "mqtt: {enabled: true}\n",
     ["paho-mqtt is not installed", "pip install '.[mqtt]'"]),
    ("mqtt-bad-ca-file", lambda d: "mqtt: {enabled: true, tls: true, ca_file: /nonexistent/ca.pem}\n",
     ["mqtt.ca_file", "/nonexistent/ca.pem"]),
    ("camera-named-like-the-index", lambda d: "cameras:\n  - {name: events.db, source: demo}\n",
     ["cameras[0].name", "'events.db'", "not starting with 'events.db'"]),
    ("camera-named-like-an-index-side-file", lambda d: "cameras:\n  - {name: EVENTS.DB-wal, source: demo}\n",
     ["cameras[0].name", "EVENTS.DB-wal"]),
    ("hook-program-missing", lambda d: "hooks: {on_event_end: [no-such-notifier, --fast]}\n",
     ["hooks.on_event_end", "'no-such-notifier'", "not a program that can be run"]),
    ("hook-not-executable", lambda d: f"hooks: {{on_camera_lost: [./{_file(d, 'alert.sh')}]}}\n",
     ["hooks.on_camera_lost", "'./alert.sh'"]),
    ("nul-in-recordings-path", lambda d: 'recordings: {path: "rec\\0x"}\n', ["recordings.path", "NUL"]),
    ("recordings-under-a-file", lambda d: f"recordings: {{path: {_file(d, 'notes.txt')}/recordings}}\n",
     ["recordings.path", "notes.txt is not a folder"]),
    ("recordings-is-a-file", lambda d: f"recordings: {{path: {_file(d, 'rec.txt')}}}\n",
     ["recordings.path", "'rec.txt' is not a folder"]),
    ("source-is-a-fifo", lambda d: f"cameras:\n  - {{name: f, source: {_fifo(d, 'cam.mp4')}}}\n",
     ["cameras[0].source", "'cam.mp4' is a FIFO"]),
    ("pipe-without-command", lambda d: "cameras:\n  - {name: p, source: 'pipe:'}\n",
     ["cameras[0].source", "needs a command"]),
    ("pipe-unsplittable", lambda d: "cameras:\n  - {name: p, source: 'pipe:ffmpeg \"-i'}\n",
     ["cameras[0].source", "cannot split"]),
    ("picamera-bad-spec", lambda d: "cameras:\n  - {name: p, source: 'picamera2:x:y'}\n",
     ["cameras[0].source", "not a Pi camera spec"]),
    ("camera-index-out-of-range", lambda d: "cameras:\n  - {name: c, source: 123456}\n",
     ["cameras[0].source", "out of range"]),
]


def _env_for(case_id: str, folder: Path) -> dict:
    if case_id != "mqtt-without-paho":
        return {"MOTIONWATCH_WEB_PASSWORD": ""}
    # paho-mqtt is installed here; a package of that name that fails to import hides it.
    blocker = folder / BLOCK_PAHO / "paho"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    return {"PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("case_id, make, expected", INVALID, ids=[c[0] for c in INVALID])
def test_check_config_and_run_refuse_alike(tmp_path: Path, case_id, make, expected):
    cfg = tmp_path / "motionwatch.yaml"
    cfg.write_text(make(tmp_path))
    env = _env_for(case_id, tmp_path)
    # Relative paths, run from the config's folder, as a user would.
    checked = mw("check-config", "--config", "motionwatch.yaml", cwd=tmp_path, env=env, timeout=30)
    t0 = time.monotonic()
    ran = mw("run", "--config", "motionwatch.yaml", "--duration", "20", cwd=tmp_path, env=env, timeout=60)
    for proc in (checked, ran):
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        for part in expected:
            assert part in proc.stderr, proc.stderr
    assert checked.stderr == ran.stderr
    assert time.monotonic() - t0 < 15, "run refused at start, not at --duration"
    assert not (tmp_path / "recordings").exists(), "nothing is created for a refused config"


def test_default_config_passes_both(tmp_path: Path):
    proc = mw("check-config", cwd=tmp_path, check=True)
    assert "built-in defaults: OK" in proc.stdout
    assert not (tmp_path / "recordings").exists(), "check-config creates nothing"


def test_a_config_error_inside_the_capture_loop_is_not_restarted_for_ever(tmp_path: Path):
    """A polygon that covers the whole picture can only be judged once the
    picture size is known; `run` must stop with that one line and exit 2 instead
    of restarting the capture loop until --duration and exiting 0."""
    cfg = tmp_path / "motionwatch.yaml"
    cfg.write_text("cameras:\n  - name: demo\n    source: demo\n"
                   "    mask: [[[0, 0], [10000, 0], [10000, 10000], [0, 10000]]]\n")
    t0 = time.monotonic()
    proc = mw("run", "--config", "motionwatch.yaml", "--duration", "30", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - t0 < 20
    assert "Traceback" not in proc.stderr and "restarting" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "motionwatch: error: cameras[demo].mask: masks the whole picture; "
        "allowed: masks that leave some area to watch")


def _laughs(levels: int = 9) -> str:
    """Nested YAML aliases: 9 levels of 9 make 387 million strings when expanded."""
    lines = ['  - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    prev = "a"
    for name in "bcdefghijk"[:levels - 1]:
        lines.append(f"  - &{name} [{', '.join(['*' + prev] * 9)}]\n")
        prev = name
    return "cameras:\n  - name: x\n    mask:\n" + "".join("    " + line for line in lines)


@pytest.mark.parametrize("make, command, expected", [
    (lambda d: "/dev/zero", "check-config", ["/dev/zero", "not a regular file"]),
    (lambda d: str(d / _fifo(d, "config.yaml")), "check-config", ["config.yaml", "not a regular file"]),
    (lambda d: (d / "big.yaml").write_text("#" * (2 << 20)) and str(d / "big.yaml"), "check-config",
     ["big.yaml", "larger than 1 MiB"]),
    (lambda d: (d / "long.yaml").write_text("cameras: [{name: x, mask: [" + "[1, 2], " * 110_000 + "]}]\n")
     and str(d / "long.yaml"), "check-config", ["long.yaml", "more than 100000 keys and list items"]),
    (lambda d: (d / "laughs.yaml").write_text(_laughs()) and str(d / "laughs.yaml"), "check-config",
     ["laughs.yaml", "cameras[0].mask"]),
    (lambda d: (d / "laughs.yaml").write_text(_laughs()) and str(d / "laughs.yaml"), "run",
     ["laughs.yaml", "cameras[0].mask"]),
])
def test_odd_config_files_are_one_line_without_hanging(tmp_path: Path, make, command, expected):
    extra = ["--duration", "5"] if command == "run" else []
    proc = mw(command, "--config", make(tmp_path), *extra, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for part in expected:
        assert part in proc.stderr


@pytest.mark.parametrize("args, expected", [
    (["run", "--duration", "nan"], "--duration: nan is out of range"),
    (["run", "--duration", "inf"], "--duration: inf is out of range"),
    (["run", "--duration", "-3"], "--duration: -3 is out of range"),
    (["tune", "demo", "--seconds", "nan"], "--seconds: nan is out of range"),
    (["scan", "FIFO.mp4"], "scan: 'FIFO.mp4' is a FIFO"),
    (["tune", "FIFO.mp4"], "tune: 'FIFO.mp4' is a FIFO"),
    (["run", "--source", "FIFO.mp4", "--duration", "5"], "--source: 'FIFO.mp4' is a FIFO"),
    (["check-config", "--preview", "FIFO.mp4", "out.png"], "--preview: 'FIFO.mp4' is a FIFO"),
    (["check-config", "--recordings", "rec\x01x"], "--recordings: 'rec\\x01x' is not allowed"),
    (["run", "--source", "demo", "--camera", "events.db", "--duration", "5"], "--camera: 'events.db' is not allowed"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path: Path, args, expected):
    _fifo(tmp_path, "FIFO.mp4")
    proc = mw(*args, cwd=tmp_path, timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"motionwatch: error: {expected}"), proc.stderr
    assert not (tmp_path / "recordings").exists()


def test_scan_start_time_at_the_end_of_the_calendar_is_refused(tmp_path: Path, two_visits_video):
    video, _ = two_visits_video
    proc = mw("scan", str(video), "--start-time", "9999-12-31T23:59:59", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == ("motionwatch: error: --start-time: '9999-12-31T23:59:59' is out of range; "
                                   "allowed: an ISO 8601 time from 1970-01-02 to 9998-12-31, "
                                   "such as 2026-11-25T08:30:00")
    assert not (tmp_path / "recordings").exists()


def test_shared_options_work_before_the_command(tmp_path: Path, two_visits_video):
    video, _ = two_visits_video
    mw("scan", str(video), "--no-progress", cwd=tmp_path, check=True)
    before = mw("--recordings", "recordings", "events", "--json", cwd=tmp_path, check=True)
    after = mw("events", "--json", "--recordings", "recordings", cwd=tmp_path, check=True)
    assert before.stdout == after.stdout and '"camera": "two_visits"' in before.stdout
    # --debug before the command shows the traceback of a bad config, as after it.
    (tmp_path / "bad.yaml").write_text("detection: {blur: 4}\n")
    proc = mw("--debug", "--config", "bad.yaml", "check-config", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
    proc = mw("-q", "events", cwd=tmp_path)
    assert proc.returncode == 0 and "two_visits" in proc.stdout


def test_a_read_only_recordings_disk_is_refused_by_both(tmp_path: Path, tmpfs):
    """What a service sandbox (ProtectSystem=strict) or a USB disk mounted
    read-only does to a recordings path: found at start by both commands."""
    disk = tmpfs(4)
    if subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    (tmp_path / "motionwatch.yaml").write_text(f"recordings: {{path: {disk}/recordings}}\n")
    checked = mw("check-config", "--config", "motionwatch.yaml", cwd=tmp_path, timeout=30)
    ran = mw("run", "--config", "motionwatch.yaml", "--duration", "20", cwd=tmp_path, timeout=60)
    for proc in (checked, ran):
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert checked.stderr == ran.stderr
    assert f"recordings.path: '{disk}/recordings': permission denied (in {disk}, where it would be made)" \
        in ran.stderr
