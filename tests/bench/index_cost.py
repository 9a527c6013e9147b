"""What the index's fault handling costs, as ratios measured in the same run.

Event records come from real `motionwatch scan`s (the DVR-Scan traffic camera
footage and a generated clip), copied into N event folders. For each N it prints:

- start check: `open_index` (which runs SQLite's quick_check of every page) against
  a plain open + COUNT(*) of the same file, and against reading the file once;
- rebuild: the fresh-file-and-backup rebuild against the old way (DELETE and
  re-insert in the live file in one transaction), from the same event.json files;
- listing: a page of 60 rows with every record checked against json.loads alone.

Usage: PYTHONPATH=. python tests/bench/index_cost.py [N ...]   (default 1000 5000)
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/: the shared harness

from motionwatch.index.database import EventIndex, load_events, open_index  # noqa: E402
from support.footage import FOOTAGE  # noqa: E402

REAL = FOOTAGE / "dvrscan_traffic_camera" / "traffic_camera.mp4"


def scanned_records(work: Path) -> list[dict]:
    """event.json records of real scans: real footage, and a generated clip."""
    from motionwatch.sources.scene import Light, Scene, Walker, write_video
    clip = work / "walkers.mp4"
    write_video(Scene(width=640, height=480, fps=15, duration_s=20, seed=3, noise=5.0,
                      walkers=(Walker(3.0, 5.0), Walker(12.0, 5.0)), lights=(Light(9.0, 1.3),)), str(clip))
    out = []
    for video in (REAL, clip):
        if not video.exists():
            print(f"(missing {video}; skipped)")
            continue
        rec = work / f"scan-{video.stem}"
        subprocess.run([sys.executable, "-m", "motionwatch", "scan", str(video), "--recordings", str(rec),
                        "--no-progress", "-q"], check=True, capture_output=True)
        out += [json.loads(p.read_text()) for p in rec.glob("*/*/*/event.json")]
    return out


def fill(root: Path, templates: list[dict], n: int) -> None:
    t0 = datetime(2026, 1, 1)
    for i in range(n):
        when = t0 + timedelta(minutes=7 * i)
        rec = dict(templates[i % len(templates)], id=f"b{i:07d}", camera="yard",
                   start=when.astimezone().isoformat(timespec="milliseconds"),
                   end=(when + timedelta(seconds=4)).astimezone().isoformat(timespec="milliseconds"))
        folder = root / "yard" / when.strftime("%Y-%m-%d") / f"{when.strftime('%H%M%S')}-{rec['id']}"
        folder.mkdir(parents=True)
        (folder / "event.json").write_text(json.dumps(rec))


def best(fn, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def old_rebuild(root: Path) -> None:
    """The rebuild before this change: DELETE and re-insert in the live file."""
    index = EventIndex(root)
    records, _ = load_events(root)
    with index.db:
        index.db.execute("DELETE FROM events")
        for rec, folder in records:
            index._insert(index.db, rec, folder, bool(rec.get("kept")))
    index.close()


def measure(templates: list[dict], n: int, work: Path) -> None:
    root = work / f"rec{n}"
    fill(root, templates, n)
    EventIndex(root).rebuild()
    db = root / "events.db"

    def plain_open():
        con = sqlite3.connect(db)
        con.execute("SELECT COUNT(*) FROM events").fetchone()
        con.close()

    def checked_open():
        index, note = open_index(root)
        assert note is None, note
        index.close()

    read_once = best(lambda: db.read_bytes())
    plain, checked = best(plain_open), best(checked_open)
    old, new = best(lambda: old_rebuild(root), 2), best(lambda: EventIndex(root).rebuild(), 2)
    index = EventIndex(root)
    raw = best(lambda: [json.loads(js) for js, in index.db.execute(
        "SELECT json FROM events ORDER BY start_epoch DESC LIMIT 60")])
    validated = best(lambda: index.query(limit=60))
    index.close()
    print(f"{n:>6} events, events.db {db.stat().st_size / 1e6:6.1f} MB:"
          f"  start check {checked / plain:5.1f}x a plain open, {checked / read_once:4.1f}x reading the file"
          f" ({checked * 1e3:.0f} ms here);"
          f"  rebuild {new / old:4.2f}x the old in-place one;  listing 60 {validated / raw:4.2f}x unchecked")


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1000, 5000]
    work = Path(tempfile.mkdtemp(prefix="index-cost-"))
    try:
        templates = scanned_records(work)
        print(f"{len(templates)} real event records, {sum(len(json.dumps(t)) for t in templates) // len(templates)}"
              " bytes of JSON each on average")
        for n in sizes:
            measure(templates, n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
