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
