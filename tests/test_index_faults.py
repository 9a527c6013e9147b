"""The index under faults a months-long install meets: malformed event.json
files, page-level damage in events.db, and a disk that is full when `run`
starts. Each time the events that are whole stay listed, nothing healthy is
renamed away, and the user reads one line saying what is wrong."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from conftest import events_json, fill_to_the_last_byte, mw
from test_index import rec, scanned  # noqa: F401  (pytest fixtures: a scanned recordings folder, copied)
from test_retention import make_event, quiet_video  # noqa: F401  (a pytest fixture)
from web_support import Proc

BAD_EVENTS = {   # id -> how its event.json is broken
    "nullcam": lambda r: r.update(camera=None),
    "nanpeak": lambda r: r.update(peak_fraction=float("nan")),
    "listpeak": lambda r: r.update(peak_fraction=[0.1, 0.2]),
    "listid": lambda r: r.update(id=["a", "b"]),
    "nooffset": lambda r: r.pop("start_offset_s"),
    "stroffset": lambda r: r.update(end_offset_s="12.5"),
}


def add_bad_events(rec: Path) -> list[Path]:
    """Copies of a good event folder, each with one field of event.json broken,
    and one whose event.json is a symlink to /dev/zero."""
    good = next(rec.glob("hall/*/*/event.json")).parent
    template = json.loads((good / "event.json").read_text())
    folders = []
    for n, (event_id, breaks) in enumerate(BAD_EVENTS.items()):
        folder = good.parent / f"0000{n:02d}-{event_id}"
        shutil.copytree(good, folder)
        record = dict(template, id=event_id)
        breaks(record)
        (folder / "event.json").write_text(json.dumps(record))   # NaN written as JSON's NaN
        folders.append(folder)
    zero = good.parent / "000099-devzero"
    shutil.copytree(good, zero)
    (zero / "event.json").unlink()
    (zero / "event.json").symlink_to("/dev/zero")
    return folders + [zero]


def skipped_lines(stderr: str, folders: list[Path]) -> dict[str, int]:
    return {f.name: sum(1 for ln in stderr.splitlines() if "WARNING" in ln and f.name in ln) for f in folders}


def test_malformed_event_json_files_are_skipped_one_warning_each(rec):
    good = {e["id"] for e in events_json(rec)}
    bad = add_bad_events(rec)
    proc = mw("events", "--reindex", "--recordings", str(rec), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "reindexed 2 event(s)" in proc.stderr
    assert skipped_lines(proc.stderr, bad) == {f.name: 1 for f in bad}
    assert "symlink" in next(ln for ln in proc.stderr.splitlines() if "devzero" in ln)
    assert {e["id"] for e in events_json(rec)} == good
    proc = mw("events", "--recordings", str(rec))
    assert proc.returncode == 0 and proc.stdout.count("\n") == 3, proc.stderr   # header + 2 events


def test_run_starts_with_malformed_events_and_no_index(rec):
    """The index is missing (deleted by hand), so `run` rebuilds it at start from
    folders that include the broken ones: it must start, warn once per folder, record."""
    bad = add_bad_events(rec)
    for p in rec.glob("events.db*"):
        p.unlink()
    proc = mw("run", "--source", "demo", "--duration", "2", "--recordings", str(rec), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert skipped_lines(proc.stderr, bad) == {f.name: 1 for f in bad}
    assert len(events_json(rec)) == 2


def test_rows_of_an_older_unchecked_index_do_not_break_listing_or_the_api(rec):
    """An index written before event records were checked may hold a row no reader
    can show (NaN peak, no offsets): listings skip it instead of failing whole."""
    with sqlite3.connect(rec / "events.db") as con:
        js, = con.execute("SELECT json FROM events LIMIT 1").fetchone()
        row = json.loads(js)
        row.update(id="oldbad", peak_fraction=float("nan"))
        row.pop("start_offset_s")
        con.execute("INSERT INTO events (id, camera, start, start_epoch, end_epoch, peak_fraction, folder, json) "
                    "SELECT 'oldbad', camera, start, start_epoch, end_epoch, 0.5, folder, ? FROM events LIMIT 1",
                    (json.dumps(row),))
    proc = mw("events", "--recordings", str(rec))
    assert proc.returncode == 0 and proc.stdout.count("\n") == 3, proc.stderr
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        events = p.get_json("/api/events")["events"]
    finally:
        err = p.stop()
    assert len(events) == 2 and "Traceback" not in err


def damage_pages(db: Path) -> None:
    """Overwrite every page but the first (the header and schema) with garbage:
    SQLite still opens the file, and then fails on the table itself."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 2 * page
    data[page:] = os.urandom(len(data) - page)
    db.write_bytes(bytes(data))


def test_reindex_repairs_page_level_damage_under_a_running_writer(rec):
    before = events_json(rec)
    mw("events", "keep", before[0]["id"], "--recordings", str(rec), check=True)
    damage_pages(rec / "events.db")
    # A process that has the index open (a running `run`) through the repair.
    from motionwatch.index.database import EventIndex
    writer = EventIndex(rec)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        writer.query()
    proc = mw("events", "--reindex", "--json", "--recordings", str(rec))
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    assert {e["id"]: e["kept"] for e in after} == {before[0]["id"]: True, before[1]["id"]: False}
    # The open connection writes into the repaired index, not into a file swapped away.
    late = dict(before[1], id="late1")
    writer.add(late, rec / Path(before[1]["snapshot"]).parent)
    writer.close()
    assert "late1" in {e["id"] for e in events_json(rec)}
    with sqlite3.connect(rec / "events.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_rebuild_cut_short_leaves_nothing_behind_for_long(rec, quiet_video):
    """A crash mid-rebuild leaves its fresh file at the root; the next start removes
    it once it is old enough that no rebuild can still be writing it."""
    stale, busy = rec / "events.db.rebuild-k2j3h4", rec / "events.db.rebuild-a8b7c6"
    stale.write_bytes(b"half a database")
    busy.write_bytes(b"being written")
    os.utime(stale, (1_700_000_000, 1_700_000_000))
    mw("scan", str(quiet_video), "--recordings", str(rec), check=True)
    assert not stale.exists() and busy.exists()


def test_listing_repairs_page_level_damage(rec):
    """`events` and `serve` would otherwise fail on every listing ("database disk
    image is malformed"); they rebuild the index from the folders first."""
    damage_pages(rec / "events.db")
    proc = mw("events", "--recordings", str(rec))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "was damaged: rebuilt it from 2 event.json" in proc.stderr and proc.stdout.count("\n") == 3
    damage_pages(rec / "events.db")
    p = Proc(["serve", "--recordings", str(rec), "--port", "0"])
    try:
        assert len(p.get_json("/api/events")["events"]) == 2
    finally:
        p.stop()


def test_run_repairs_page_level_damage_at_start(rec):
    damage_pages(rec / "events.db")
    proc = mw("run", "--source", "demo", "--duration", "2", "--recordings", str(rec), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "was damaged; rebuilt it from 2 event.json" in proc.stderr
    assert len(events_json(rec)) == 2


# --- a full disk at start ---------------------------------------------------------

@pytest.fixture
def full_disk(tmpfs) -> tuple[Path, Path]:
    """A real 8 MB filesystem (tmpfs) holding 4 events and a healthy, closed
    events.db, then filled to the last byte; needs root."""
    mnt = tmpfs(8)
    root = mnt / "recordings"
    for n in range(4):
        make_event(root, datetime(2026, 11, 20, 8, n), size=500_000, camera="yard")
    mw("events", "--reindex", "--recordings", str(root), check=True)
    assert not (root / "events.db-shm").exists()   # SQLite must create it: that needs space
    return root, fill_to_the_last_byte(mnt)


def test_full_disk_at_start_never_renames_the_index(full_disk, tmp_path):
    root, filler = full_disk
    off = tmp_path / "noretention.yaml"
    off.write_text("recordings:\n  min_free_gb: 0\n")
    proc = mw("events", "--recordings", str(root))
    assert proc.returncode == 1 and "disk full" in proc.stderr and "damaged" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = mw("run", "--source", "demo", "--duration", "2", "--config", str(off), "--recordings", str(root),
              timeout=60)
    assert proc.returncode == 0, proc.stderr          # detection goes on
    assert "disk full" in proc.stderr and "damaged" not in proc.stderr and "Traceback" not in proc.stderr
    assert not list(root.glob("events.db.damaged*"))
    filler.unlink()                                   # space again: every event is still there
    assert len(events_json(root)) == 4


def test_full_disk_at_start_retention_frees_space_before_the_index_needs_it(full_disk):
    """With the default limits (a tenth of this small disk kept free) retention
    deletes the oldest events first, and the index then opens as usual."""
    root, _ = full_disk
    proc = mw("run", "--source", "demo", "--duration", "2", "--recordings", str(root), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "disk full" not in proc.stderr and "damaged" not in proc.stderr, proc.stderr
    assert "retention: deleted event yard/2026-11-20/080000" in proc.stderr
    left = events_json(root)
    assert 1 <= len(left) < 4 and all(e["start"][11:16] != "08:00" for e in left)
    assert not list(root.glob("events.db.damaged*"))
