"""The shipped systemd unit: systemd itself accepts it, and what the README's
steps tell a user to do agrees with it (paths, user, the one writable folder)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "config" / "motionwatch.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str    # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def _service_steps() -> str:
    """The docs' *Run as a systemd service* section (the README links to it): its
    shell block and the prose after it."""
    text = (REPO / "docs" / "unattended.md").read_text()
    start = text.index("## Run as a systemd service")
    return text[start:text.index("\n## ", start + 1)]


def test_systemd_accepts_the_unit(tmp_path: Path):
    """`systemd-analyze verify` parses every directive; it warns (on stderr) about
    values it ignores, such as a relative ReadWritePaths= or an unknown ProtectSystem=."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify also checks that ExecStart's program exists: point it at this checkout's.
    here = Path(sys.executable).parent / "motionwatch"
    if not here.exists():
        pytest.skip("no motionwatch console script next to this Python")
    unit = tmp_path / "motionwatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/motionwatch/.venv/bin/motionwatch", str(here)))
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_the_readme_steps_agree_with_the_unit():
    svc = _unit()["Service"]
    steps = _service_steps()
    exec_start = shlex.split(svc["ExecStart"])
    config = exec_start[exec_start.index("--config") + 1]
    state = f"/var/lib/{svc['StateDirectory']}"
    # The user the README creates, with the unit's working folder as its home.
    useradd = re.search(r"useradd .*--home-dir (\S+) .*?(\S+)\n", steps)
    assert useradd and useradd.group(1) == svc["WorkingDirectory"] == state
    assert useradd.group(2) == svc["User"]
    # The config goes where ExecStart reads it, and is checked as the service's user.
    assert f"cp config/motionwatch.yaml {Path(config).parent}/" in steps
    assert f"sudo -u {svc['User']} {exec_start[0]} check-config {config}" in steps
    # The copied config watches the demo until the user sets a camera.
    assert "source: demo" in (REPO / "config" / "motionwatch.yaml").read_text()
    assert "cameras[0].source" in steps
    # The recordings path the README gives is absolute and inside a folder the sandbox lets it write.
    rec = re.search(r"recordings\.path: (\S+?)`", steps).group(1)
    writable = [state] + svc.get("ReadWritePaths", "").split()
    assert rec.startswith("/") and any(rec == w or rec.startswith(w + "/") for w in writable)
    # The README's claim about the sandbox is what the unit does.
    assert svc["ProtectSystem"] == "strict" and "ProtectSystem=strict" in steps
    assert svc["RestartPreventExitStatus"] == "2" and "not on a bad config (exit 2)" in steps
