"""Keep, unkeep and delete by full event id as a new user meets them: the
current directory holds the default `recordings` folder (a relative path, as in
the Quick start and the systemd setup) and no config file is given. Through the
CLI, through an index written by an older version, and through the web UI's
buttons in a real headless Chromium."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import mw
from test_web_browser import browser, page  # noqa: F401  (pytest fixtures)
from web_support import Proc


@pytest.fixture
def here(tmp_path, two_visits_video, monkeypatch) -> Path:
    """A folder with recordings made by a real `scan` run from inside it, with the defaults."""
    monkeypatch.chdir(tmp_path)   # the web server subprocess starts here too
    mw("scan", str(two_visits_video[0]), "--no-progress", cwd=tmp_path, check=True)
    assert (tmp_path / "recordings" / "events.db").is_file()
    return tmp_path


def listed(here: Path) -> list[dict]:
    return json.loads(mw("events", "--json", cwd=here, check=True).stdout)


def event_json(here: Path, ev: dict) -> dict:
    return json.loads((here / "recordings" / Path(ev["snapshot"]).parent / "event.json").read_text())


def test_keep_unkeep_delete_by_full_id(here):
    a, b = listed(here)
    proc = mw("events", "keep", a["id"], cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert event_json(here, a)["kept"] is True
    assert [e["kept"] for e in listed(here) if e["id"] == a["id"]] == [True]
    proc = mw("events", "unkeep", a["id"], cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert event_json(here, a)["kept"] is False
    folder = here / "recordings" / Path(a["snapshot"]).parent
    proc = mw("events", "delete", a["id"], cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert not folder.exists() and [e["id"] for e in listed(here)] == [b["id"]]
    # The same index read through an absolute --recordings names the same folders.
    proc = mw("events", "keep", b["id"], "--recordings", str(here / "recordings"), cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert event_json(here, b)["kept"] is True


def test_rows_of_an_older_index_still_work_and_reindex_repairs_them(here):
    """Older versions stored the folder relative to the current directory
    (`recordings/<camera>/...`); such an index must not strand its events."""
    db = here / "recordings" / "events.db"
    with sqlite3.connect(db) as con:
        con.execute("UPDATE events SET folder = 'recordings/' || folder")
    a, _ = listed(here)
    proc = mw("events", "keep", a["id"], cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert event_json(here, a)["kept"] is True
    mw("events", "--reindex", cwd=here, check=True)
    with sqlite3.connect(db) as con:
        folders = [r[0] for r in con.execute("SELECT folder FROM events")]
    assert len(folders) == 2 and all((here / "recordings" / f / "event.json").is_file() for f in folders)
    assert [e["kept"] for e in listed(here) if e["id"] == a["id"]] == [True]   # kept survives the rebuild


def test_keep_and_delete_buttons_in_the_browser(page, here):  # noqa: F811
    p = Proc(["serve", "--port", "0"])   # default recordings folder, relative to here
    try:
        ev = p.get_json("/api/events")["events"][0]
        folder = here / "recordings" / Path(ev["snapshot_url"][len("/media/"):]).parent
        page.goto(f"{p.base}/#/event/{ev['id']}")
        page.wait_for_selector("#keep")
        page.click("#keep")
        page.wait_for_function("() => document.querySelector('#keep').textContent.includes('Kept')")
        assert json.loads((folder / "event.json").read_text())["kept"] is True
        page.click("#keep")
        page.wait_for_function("() => !document.querySelector('#keep').textContent.includes('Kept')")
        assert json.loads((folder / "event.json").read_text())["kept"] is False
        page.once("dialog", lambda d: d.accept())
        page.click("#delete")
        page.wait_for_function(f"() => location.hash !== '#/event/{ev['id']}'")
        assert not folder.exists()
        left = [e["id"] for e in p.get_json("/api/events")["events"]]
        assert len(left) == 1 and ev["id"] not in left
    finally:
        p.stop()   # (its log may hold a reset connection's traceback from the old server under load)
