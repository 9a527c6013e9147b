"""event.json files damaged in ways the first fault tests did not try: each is
skipped by `--reindex` with one warning naming its folder, never a traceback,
and the whole events stay listed."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import events_json, mw
from test_index import rec, scanned  # noqa: F401  (pytest fixtures: a scanned recordings folder, copied)

RAW = {   # folder id -> the bytes of its event.json
    "deeplist": b"[" * 200_000 + b"]" * 200_000,
    "deepobj": b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
    "notutf8": b'{"id": "notutf8", "camera": "d\xffor"}',
    "bigint": b'{"start_frame": ' + b"9" * 5000 + b"}",
    "empty": b"",
}


@pytest.mark.parametrize("event_id", sorted(RAW))
def test_reindex_skips_an_unreadable_event_json_with_one_warning(rec, event_id):
    good = {e["id"] for e in events_json(rec)}
    template = next(rec.glob("hall/*/*/event.json")).parent
    folder = template.parent / f"000001-{event_id}"
    shutil.copytree(template, folder)
    (folder / "event.json").write_bytes(RAW[event_id])
    proc = mw("events", "--reindex", "--recordings", str(rec), timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln and folder.name in ln]
    assert len(warnings) == 1, proc.stderr[-1500:]
    assert {e["id"] for e in events_json(rec)} == good
    assert json.loads(mw("events", "--json", "--recordings", str(rec), check=True).stdout)


@pytest.mark.parametrize("name,kind", [("events.db", "symlink"), ("events.db-wal", "symlink"),
                                       ("events.db", "folder")])
def test_an_index_that_is_a_symlink_or_a_folder_is_refused_and_left_alone(rec, tmp_path, name, kind):
    """A symlinked events.db made `--reindex` write this folder's events into the
    index (or any file) the link named; a folder there only said 'unable to open'.
    Both are one line naming the file and the way out, exit 1, the target untouched."""
    for p in rec.glob("events.db*"):
        p.unlink()
    other = tmp_path / "other-index.db"
    other.write_bytes(b"SQLite format 3\0 not ours")
    if kind == "symlink":
        (rec / name).symlink_to(other)
    else:
        (rec / name).mkdir()
    for args in (["events", "--reindex"], ["events"], ["run", "--source", "demo", "--duration", "1"]):
        proc = mw(*args, "--recordings", str(rec), timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (args, proc.stderr[-1500:])
        assert f"{name} is a {kind}" in lines[-1] and "--reindex" in lines[-1], (args, proc.stderr[-800:])
    assert other.read_bytes() == b"SQLite format 3\0 not ours"


def test_events_json_is_strict_json_when_a_record_holds_nan_outside_the_contract(rec):
    """`fractions: [NaN]` (not a contract field, so the event is indexed) made
    `events --json` print a bare NaN, which jq and strict parsers refuse."""
    path = next(rec.glob("hall/*/*/event.json"))
    record = json.loads(path.read_text())
    record["fractions"] = [[0.0, float("nan")], [0.1, float("inf")]]
    path.write_text(json.dumps(record))
    mw("events", "--reindex", "--recordings", str(rec), check=True)
    proc = mw("events", "--json", "--recordings", str(rec), check=True)

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    rows = json.loads(proc.stdout, parse_constant=refuse)
    hit = next(r for r in rows if r["id"] == record["id"])
    assert hit["fractions"] == [[0.0, None], [0.1, None]]
    assert record["id"] in proc.stderr and "WARNING" in proc.stderr
