"""events.db: rebuilt from event.json, repaired when damaged, read by one
process while another writes, and `events keep|unkeep|delete` changing folder
and index together."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from conftest import events_json, mw
from test_retention import make_event


@pytest.fixture(scope="module")
def scanned(two_visits_video, tmp_path_factory) -> Path:
    """A recordings folder made by a real scan (two events), copied per test."""
    video, _ = two_visits_video
    root = tmp_path_factory.mktemp("scanned") / "recordings"
    cfg = root.parent / "noclip.yaml"
    cfg.write_text("events:\n  clip: false\n")
    mw("scan", str(video), "--config", str(cfg), "--recordings", str(root), "--camera", "hall", check=True)
    return root


@pytest.fixture
def rec(scanned, tmp_path) -> Path:
    dst = tmp_path / "recordings"
    shutil.copytree(scanned, dst)
    return dst


def test_reindex_after_deleting_events_db(rec):
    before = events_json(rec)
    assert len(before) == 2
    mw("events", "keep", before[0]["id"], "--recordings", str(rec), check=True)
    for p in rec.glob("events.db*"):
        p.unlink()
    proc = mw("events", "--reindex", "--json", "--recordings", str(rec), check=True)
    after = json.loads(proc.stdout)
    assert "reindexed 2 event(s)" in proc.stderr
    strip = lambda rows: sorted((json.dumps({k: v for k, v in r.items() if k != "kept"}, sort_keys=True)  # noqa: E731
                                 for r in rows))
    assert strip(after) == strip(before)
    assert {r["id"]: r["kept"] for r in after} == {before[0]["id"]: True, before[1]["id"]: False}


def test_events_db_alone_holds_every_event_after_each_command(rec, tmp_path):
    """Each command closes events.db on its way out, so SQLite folds the write-ahead
    log back in: the file on its own (a backup or a copy of just that file) holds
    every event, and no -wal or -shm is left beside it. The program leaves without
    Python's teardown (cli/exiting.py), which used to close what a command left open;
    `rec` is a copy of what a real `scan` left."""
    ids = [e["id"] for e in events_json(rec)]
    for n, args in enumerate(([], ["keep", ids[0]], ["--reindex"], ["delete", ids[1]])):
        assert not list(rec.glob("events.db-*")), args
        copy = tmp_path / f"copy-{n}.db"
        shutil.copyfile(rec / "events.db", copy)
        db = sqlite3.connect(copy)
        assert sorted(r[0] for r in db.execute("SELECT id FROM events")) == sorted(ids), args
        db.close()
        mw("events", *args, "--recordings", str(rec), check=True)
    assert not list(rec.glob("events.db-*"))


def test_missing_index_is_rebuilt_when_listing(rec):
    for p in rec.glob("events.db*"):
        p.unlink()
    proc = mw("events", "--recordings", str(rec), check=True)
    assert "was missing" in proc.stderr and proc.stdout.count("\n") == 3   # header + 2 events


def test_damaged_index_says_how_to_fix_it(rec):
    for p in rec.glob("events.db*"):
        p.unlink()
    (rec / "events.db").write_bytes(b"this is not a database" * 100)
    proc = mw("events", "--recordings", str(rec))
    assert proc.returncode == 1 and "--reindex" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = mw("events", "--reindex", "--json", "--recordings", str(rec), check=True)
    assert len(json.loads(proc.stdout)) == 2
    assert list(rec.glob("events.db.damaged-*"))        # kept aside, not thrown away


def test_keep_unkeep_delete_change_folder_and_index(rec):
    a, b = events_json(rec)
    folder = rec / Path(a["snapshot"]).parent
    proc = mw("events", "keep", a["id"][:5], "--recordings", str(rec), check=True)   # unique prefix
    assert "kept" in proc.stdout
    assert json.loads((folder / "event.json").read_text())["kept"] is True
    assert [e["kept"] for e in events_json(rec) if e["id"] == a["id"]] == [True]
    mw("events", "unkeep", a["id"], "--recordings", str(rec), check=True)
    assert json.loads((folder / "event.json").read_text())["kept"] is False
    proc = mw("events", "delete", a["id"], "--recordings", str(rec), check=True)
    assert not folder.exists() and [e["id"] for e in events_json(rec)] == [b["id"]]
    proc = mw("events", "delete", a["id"], "--recordings", str(rec))
    assert proc.returncode == 1 and a["id"] in proc.stderr and "Traceback" not in proc.stderr
    proc = mw("events", "delete", "--recordings", str(rec))
    assert proc.returncode == 2 and "needs an event ID" in proc.stderr


def test_camera_filter(rec):
    proc = mw("events", "--json", "--camera", "hall", "--recordings", str(rec), check=True)
    assert len(json.loads(proc.stdout)) == 2
    proc = mw("events", "--json", "--camera", "demo", "--recordings", str(rec), check=True)
    assert json.loads(proc.stdout) == []        # a configured camera without events yet
    proc = mw("events", "--camera", "porch", "--recordings", str(rec))
    assert proc.returncode == 2 and "'porch'" in proc.stderr and "cameras with events: hall" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_long_camera_names_are_listed_whole_and_paste_into_camera(rec):
    name = "back-garden-by-the-greenhouse-north"
    make_event(rec, datetime(2026, 11, 20, 9, 30), size=1000, camera=name)
    mw("events", "--reindex", "--recordings", str(rec), check=True)
    table = mw("events", "--recordings", str(rec), check=True).stdout
    pasted = table.splitlines()[-1].split()[1]     # the oldest event's camera column
    assert pasted == name
    proc = mw("events", "--json", "--camera", pasted, "--recordings", str(rec), check=True)
    assert [e["camera"] for e in json.loads(proc.stdout)] == [name]


def test_json_is_one_event_a_line(rec):
    proc = mw("events", "--json", "--recordings", str(rec), check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 2 + 2
    rows = [json.loads(ln.rstrip(",")) for ln in lines[1:-1]]
    assert all(len(r["fractions"]) > 10 for r in rows)   # the series stays on its event's line
    assert json.loads(proc.stdout) == rows


def test_absurd_limit_is_one_line_and_exit_2(rec):
    proc = mw("events", "--limit", "99999999999999999999", "--recordings", str(rec))
    assert proc.returncode == 2 and "--limit" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


WRITER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from motionwatch.index.database import EventIndex
    root = Path(sys.argv[1])
    template = json.loads(sys.argv[2])
    index = EventIndex(root)
    for i in range(200):
        rec = dict(template, id=f"w{i:05d}")
        index.add(rec, root / "hall" / "2026-01-01" / f"000000-w{i:05d}")
        if i % 50 == 49:
            index.rebuild()       # one transaction: readers see before or after, never half
            for j in range(i + 1):
                index.add(dict(template, id=f"w{j:05d}"), root / "hall" / "2026-01-01" / f"000000-w{j:05d}")
    print("writer done")
""")

READER = textwrap.dedent("""
    import json, subprocess, sys
    from motionwatch.index.database import EventIndex
    from pathlib import Path
    index = EventIndex(Path(sys.argv[1]), create=False)
    counts = []
    for _ in range(300):
        counts.append(len(index.query()))
    print(json.dumps(counts))
""")


def test_reader_and_writer_processes_at_once(rec):
    """A writer process adds rows and rebuilds while a reader process and the
    CLI list events: neither fails, and the reader never sees a half rebuild."""
    template = events_json(rec)[0]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(rec), json.dumps(template)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(rec)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli_runs = 0
    while writer.poll() is None and cli_runs < 6:
        proc = mw("events", "--json", "--recordings", str(rec))
        assert proc.returncode == 0, proc.stderr
        json.loads(proc.stdout)
        cli_runs += 1
    w_out, w_err = writer.communicate(timeout=120)
    r_out, r_err = reader.communicate(timeout=120)
    assert writer.returncode == 0 and "writer done" in w_out, w_err
    assert reader.returncode == 0, r_err
    counts = json.loads(r_out)
    # The two scanned events are on disk, so a rebuild keeps them: never fewer than 2.
    assert min(counts) >= 2 and len(events_json(rec)) == 202
