"""The newcomer's first command: `motionwatch run` on the built-in demo scene."""

from __future__ import annotations

import re

from conftest import events_json, mw


def test_demo_run_records_events_with_snapshots(recordings):
    # The demo's first visitor arrives 4 s in and leaves by ~10 s; the first
    # light change is at 12 s. 16 s of paced run covers both.
    proc = mw("run", "--source", "demo", "--duration", "16", "--recordings", str(recordings),
              timeout=120, check=True)
    assert "event" in proc.stderr and "started" in proc.stderr and "ended" in proc.stderr
    events = events_json(recordings)
    assert len(events) == 1, proc.stderr
    ev = events[0]
    assert ev["camera"] == "demo"
    assert 3.5 <= ev["start_offset_s"] <= 5.5
    assert (recordings / ev["snapshot"]).stat().st_size > 10000
    # The light dims to 70% at 12 s: the log shows it was seen, and ignored.
    assert re.search(r"INFO +demo: lighting change ignored \(-(2[5-9]|3[0-4])% brightness\)", proc.stderr), proc.stderr
