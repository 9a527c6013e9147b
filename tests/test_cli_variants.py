"""Odd command-line values a reviewer tries that the first CLI tests did not:
each is one line naming the option and what is allowed, exit 2, and nothing is
written where the user did not ask."""

from __future__ import annotations

import pytest

from conftest import mw


@pytest.mark.parametrize("args", [
    ["run", "--source", "demo", "--duration", "1", "--recordings", ""],
    ["--recordings", "", "run", "--source", "demo", "--duration", "1"],
    ["run", "--source", "demo", "--camera", " ", "--duration", "1"],
    ["run", "--source", "", "--duration", "1"],
    ["--config", "", "events"],
    ["events", "--camera", ""],
    ["events", "--since", ""],
    ["scan", ""],
    ["serve", "--host", ""],
    ["tune", ""],
    ["tune", "demo", "-o", ""],
])
def test_an_empty_value_is_refused_not_taken_as_the_default(tmp_path, args):
    """`--recordings "$DIR"` with DIR unset must not quietly record into ./recordings."""
    proc = mw(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-800:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "empty value is not allowed" in lines[0], proc.stderr[-800:]
    assert not (tmp_path / "recordings").exists()


@pytest.mark.parametrize("args,code", [
    (["--debug", "events", "--limit", "-1"], 2),
    (["check-config", "nope.yaml", "--debug"], 2),
    (["--debug", "events", "keep", "nosuchid"], 1),
])
def test_debug_adds_the_traceback_but_keeps_the_exit_code(tmp_path, args, code):
    (tmp_path / "recordings").mkdir()
    proc = mw(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-800:])
    assert "Traceback" in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("motionwatch: error: ")


@pytest.mark.parametrize("start", ["9998-12-31T23:59:59-23:59", "1970-01-02T00:00:00+14:00",
                                   "0001-01-01T00:00:00+14:00"])
def test_scan_start_time_range_counts_the_offset(tmp_path, start):
    """`--start-time 9998-12-31T23:59:59-23:59` is 9999-01-01 on this machine's calendar:
    past the allowed range (its events would fall on a day the web UI's day filter
    refuses), so it is refused like 9999-01-01 itself, before anything is scanned."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")   # never opened: the time is checked first
    proc = mw("scan", str(video), "--start-time", start, cwd=tmp_path, timeout=60, env={"TZ": "UTC"})
    assert proc.returncode == 2 and "--start-time" in proc.stderr and "out of range" in proc.stderr, proc.stderr
    assert not (tmp_path / "recordings").exists()
