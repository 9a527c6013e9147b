"""Config loading: the commented default file, and bad configs as a user meets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from motionwatch.config import Config, load_config, parse_config, to_plain
from motionwatch.errors import ConfigError

from conftest import mw

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "config" / "motionwatch.yaml"


def test_commented_default_file_equals_builtin_defaults():
    cfg = load_config(DEFAULT_FILE)
    assert to_plain(cfg) == to_plain(Config())


@pytest.mark.parametrize("text, expected", [
    ("detection:\n  pixel_treshold: 20\n",
     ["bad.yaml:2", "detection.pixel_treshold", "unknown key", "did you mean 'pixel_threshold'"]),
    ("detection:\n  trigger_fraction: 1.5\n",
     ["bad.yaml:2", "detection.trigger_fraction", "1.5", "out of range", "0.0001..1"]),
    ("detection:\n  pixel_threshold: lots\n",
     ["detection.pixel_threshold", "'lots'", '"auto" or "otsu"']),
    ("events:\n  gap_seconds: soon\n", ["events.gap_seconds", "'soon'", "wrong type", "a number"]),
    ("cameras:\n  - name: a\n    source: 0\n    mask: [[1, 2]]\n", ["cameras[0].mask", "polygons"]),
    ("cameras:\n  - name: a\n  - name: a\n", ["cameras[1].name", "used twice"]),
    ("detection: [1, 2\n", ["bad.yaml", "not valid YAML"]),
    ("cameras:\n  - name: a\n    detection: {blur: 4}\n",
     ["bad.yaml:3", "cameras[0].detection.blur", "4 is even", "an odd integer 1..31"]),
    ("recordings:\n  max_size_gb: -1\n", ["bad.yaml:2", "recordings.max_size_gb", "out of range", "(GB)"]),
])
def test_bad_config_exits_2_with_one_clear_line(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = mw("check-config", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for part in expected:
        assert part in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detection:\n  blur: 4\n")
    proc = mw("check-config", str(bad), "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_missing_config_file_is_a_config_error(tmp_path):
    proc = mw("run", "--config", str(tmp_path / "nope.yaml"), "--duration", "1")
    assert proc.returncode == 2
    assert "nope.yaml" in proc.stderr and "not found" in proc.stderr


def test_check_config_prints_effective_settings(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("detection:\n  trigger_fraction: 0.02\ncameras:\n  - name: door\n    source: 0\n")
    proc = mw("check-config", str(good), check=True)
    assert "OK" in proc.stdout
    assert "trigger_fraction: 0.02" in proc.stdout
    assert "name: door" in proc.stdout
    assert "pixel_threshold: auto" in proc.stdout  # defaults are shown too


def test_camera_overrides_merge_with_globals():
    cfg = parse_config("detection: {min_frames: 5}\ncameras:\n  - name: yard\n    detection: {trigger_fraction: 0.02}\n")
    det = cfg.camera_detection(cfg.cameras[0])
    assert det.trigger_fraction == 0.02 and det.min_frames == 5


def test_bad_argument_is_exit_2_one_line():
    proc = mw("run", "--duration", "abc")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--duration" in proc.stderr


@pytest.mark.parametrize("args", [["run", "--source", "", "--duration", "1"], ["tune", " "],
                                  ["check-config", "--source", " "]])
def test_a_blank_source_flag_is_one_line_exit_2(tmp_path, args):
    """A config derived from a flag is validated like a file: one line, no traceback."""
    proc = mw(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "source" in proc.stderr.lower() and "allowed: " in proc.stderr
    assert not (tmp_path / "recordings").exists()


def test_a_config_derived_in_code_is_checked_like_a_file():
    """`replace(cam, source=...)` as the commands do with flags: a bad value is the same
    one-line ConfigError (exit 2 at the CLI), not a pydantic traceback."""
    from dataclasses import replace
    cam = Config().cameras[0]
    with pytest.raises(ConfigError, match=r"^source: ' ' is not allowed; allowed: a camera index \(0\)"):
        replace(cam, source=" ")
    with pytest.raises(ConfigError, match=r"^timeout_seconds: 0\.1 is out of range; allowed: a number 0\.5\.\.600"):
        replace(cam, timeout_seconds=0.1)


def test_unknown_override_key_in_camera_detection():
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.detection\.treshold"):
        parse_config("cameras:\n  - name: x\n    detection: {treshold: 3}\n")


def test_check_config_hides_passwords(tmp_path):
    good = tmp_path / "secret.yaml"
    good.write_text("web: {password: hunter2}\nmqtt: {password: s3cret}\n"
                    "cameras:\n  - name: door\n    source: rtsp://admin:opensesame@cam.local/s1\n")
    proc = mw("check-config", str(good), check=True)
    assert "hunter2" not in proc.stdout and "s3cret" not in proc.stdout
    assert "opensesame" not in proc.stdout and "rtsp://admin:***@cam.local/s1" in proc.stdout
    assert "password: '***'" in proc.stdout
