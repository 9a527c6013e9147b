"""`motionwatch scan` over an archive: folders, a damaged file among good ones,
resuming an interrupted run, --rescan, and a long file on several jobs giving
exactly the events of a sequential scan."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motionwatch.sources.scene import Scene, Walker, write_h264

from conftest import PARALLEL_ANY_LENGTH, events_json, interrupt_when, mw, same_events, wait_until

# A visit 2 s into each clip, long enough that a scan of one takes a moment.
VISIT = Scene(width=640, height=480, fps=15, duration_s=30, seed=6, noise=3.0, walkers=(Walker(2.0, 6.0),))
# 90 s at 8 fps with visits spread over it (a split in three would cut through them).
LONG = Scene(width=320, height=240, fps=8, duration_s=90, seed=4, noise=3.0,
             walkers=(Walker(8, 6), Walker(31, 8, shade=70, x_from=1.15, x_to=-0.15), Walker(58, 8),
                      Walker(80, 5, height=0.45)))
# Settles fast: a 90 s clip is long enough that a split in three would be worth it.
FAST_SETTLE = "detection:\n  static_seconds: 5\n  background_alpha: 0.2\n"


@pytest.fixture(scope="module")
def visit_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "visit.mp4"
    write_h264(VISIT, path, 600_000, 30)
    return path


def archive(tmp_path: Path, clip: Path, names: list[str]) -> Path:
    """A DVR-like folder: the clip under several names in subfolders."""
    root = tmp_path / "archive"
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(clip, root / name)
    return root


def table(stdout: str) -> dict[str, str]:
    """file name -> its row in scan's table."""
    return {line.split()[0].split("/")[-1]: line for line in stdout.splitlines() if ".mp4" in line.split(" ")[0]}


def test_folder_scan_reports_a_damaged_file_and_scans_the_others(tmp_path, visit_clip):
    root = archive(tmp_path, visit_clip, ["mon/front.mp4", "tue/back.mp4"])
    (root / "mon" / "notes.txt").write_text("not a video")
    (root / "tue" / "broken.mp4").write_bytes(visit_clip.read_bytes()[:4000])   # cut off: no index
    proc = mw("scan", "archive", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = table(proc.stdout)
    assert "failed" in rows["broken.mp4"]
    assert rows["front.mp4"].split()[-1] == "done" and rows["back.mp4"].split()[-1] == "done"
    assert "1 non-video file(s) skipped" in proc.stdout and "1 failed" in proc.stdout
    evs = events_json(tmp_path / "recordings")
    assert sorted(e["camera"] for e in evs) == ["back", "front"]
    assert all((tmp_path / "recordings" / e["snapshot"]).is_file() for e in evs)
    again = mw("scan", "archive", "--no-progress", cwd=tmp_path)   # the good ones are done, the bad one is not
    rows = table(again.stdout)
    assert again.returncode == 1 and "failed" in rows["broken.mp4"] and "skipped" in rows["front.mp4"]


def test_repeat_skips_and_rescan_replaces_without_duplicates(tmp_path, visit_clip):
    archive(tmp_path, visit_clip, ["a.mp4", "b.mp4"])
    mw("scan", "archive", "--no-progress", cwd=tmp_path, check=True)
    rec = tmp_path / "recordings"
    first = {e["id"] for e in events_json(rec)}
    assert len(first) == 2
    again = mw("scan", "archive", "--no-progress", cwd=tmp_path, check=True)
    assert all("skipped (already scanned)" in row for row in table(again.stdout).values())
    assert {e["id"] for e in events_json(rec)} == first
    mw("scan", "archive", "--rescan", "--no-progress", cwd=tmp_path, check=True)
    after = events_json(rec)
    assert len(after) == 2 and not first & {e["id"] for e in after}   # replaced, not added
    assert len(list(rec.rglob("event.json"))) == 2                       # the old folders are gone too
    reindex = mw("events", "--reindex", "--json", cwd=tmp_path, check=True)
    assert "reindexed 2 event(s)" in reindex.stderr + reindex.stdout


def test_interrupted_run_resumes_where_it_stopped(tmp_path, visit_clip):
    """Ctrl-C in the second file: the first stays done, the second's open event is
    saved, and the next run skips the first and redoes the second without doubling."""
    archive(tmp_path, visit_clip, ["a.mp4", "b.mp4", "c.mp4"])
    code, out = interrupt_when(["scan", "archive", "--jobs", "1", "--no-progress"], tmp_path / "scan.log",
                               lambda text: text.count("started at") >= 2, signal.SIGINT, cwd=tmp_path, timeout=120)
    assert code == 0, out
    rows = table(out)
    assert rows["a.mp4"].split()[-1] == "done" and "interrupted" in rows["b.mp4"], out
    assert "Traceback" not in out
    assert sorted(e["camera"] for e in events_json(tmp_path / "recordings")) == ["a", "b"]

    again = mw("scan", "archive", "--jobs", "1", "--no-progress", cwd=tmp_path, check=True)
    rows = table(again.stdout)
    assert "skipped" in rows["a.mp4"] and rows["b.mp4"].split()[-1] == "done" and rows["c.mp4"].split()[-1] == "done"
    evs = events_json(tmp_path / "recordings")
    assert sorted(e["camera"] for e in evs) == ["a", "b", "c"]
    ends = {e["camera"]: e["end_frame"] for e in evs}
    assert ends["b"] == ends["a"] == ends["c"]   # b's event is whole now, not the interrupted one


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    write_h264(LONG, folder / "long.mp4", 300_000, 16)
    (folder / "settle.yaml").write_text(FAST_SETTLE)
    return folder / "long.mp4"


@pytest.mark.parametrize("detection_fps", [None, 3])
def test_long_file_on_several_jobs_equals_sequential_scan(tmp_path, long_clip, detection_fps):
    """Also with detection.fps analysing every third frame of the 8 fps clip."""
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy2(long_clip, work / "long.mp4")
    (work / "settle.yaml").write_text(FAST_SETTLE + (f"  fps: {detection_fps}\n" if detection_fps else ""))
    mw("scan", "long.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=work, check=True)
    par = mw("scan", "long.mp4", "--config", "settle.yaml", "--jobs", "3", "--recordings", "par", "--no-progress",
       cwd=work, env=PARALLEL_ANY_LENGTH, check=True)
    assert "worker processes" in par.stderr
    seq = same_events(work / "seq", work / "par")
    assert len(seq) == len(LONG.walkers)
    assert all(e["clip_parts"] for e in seq)   # compared byte for byte above


@pytest.mark.parametrize("args, says", [
    (["--jobs", "0"], "--jobs: 0 is out of range; allowed: 1..256"),
    (["--cluster", "localhost:8786"], "allowed: a Dask scheduler address such as tcp://HOST:8786"),
    ([], "no video file in notes (1 other file(s) skipped)"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, says):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a video")
    proc = mw("scan", "notes", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("motionwatch: error: ")
    assert says in proc.stderr and not (tmp_path / "recordings").exists()


def test_ctrl_c_with_worker_processes_keeps_whole_events_and_resumes(tmp_path, visit_clip):
    """Ctrl-C reaches the worker processes too (the terminal signals the whole group);
    they ignore it, the client tells them to finish their open events, and exits 0."""
    names = [f"{c}.mp4" for c in "abcdefghij"]
    archive(tmp_path, visit_clip, names)

    def workers_busy(_text: str) -> bool:
        """The first file's event is written: the workers are scanning and most files
        are still to come (a condition, not a wait, so a fast machine cannot finish first)."""
        return any((tmp_path / "recordings").rglob("event.json"))

    code, out = interrupt_when(["scan", "archive", "--jobs", "2", "--no-progress"], tmp_path / "scan.log",
                               workers_busy, signal.SIGINT, cwd=tmp_path, timeout=120)
    assert code == 0, out
    assert "Traceback" not in out and "interrupted" in out.splitlines()[-1], out
    rec = tmp_path / "recordings"
    first = events_json(rec)
    assert len(first) < len(names)          # it did stop early
    assert all(e["end_frame"] > e["start_frame"] for e in first)
    mw("scan", "archive", "--jobs", "2", "--no-progress", cwd=tmp_path, check=True)
    evs = events_json(rec)
    assert sorted(e["camera"] for e in evs) == sorted(n[0] for n in names)   # one each: none lost or doubled
    assert len({e["end_frame"] for e in evs}) == 1
    assert len(list(rec.rglob("event.json"))) == len(names)


# Someone always crossing (a busy road): one event from the first seconds to the end.
BUSY = Scene(width=320, height=240, fps=8, duration_s=90, seed=5, noise=3.0,
             walkers=tuple(Walker(1.0 + 3 * k, 7, shade=40 + 7 * (k % 5)) for k in range(30)))
# A busy background: small movers in four lanes, a new one every 0.7 s, so several are
# always in view. The detector learns the lanes' variability from them, and a split of
# this file (segments scanned side by side, each learning from its own lead-in) counted
# 652 frames with motion against the sequential scan's 695, with another snapshot.
MOVERS = Scene(width=320, height=240, fps=8, duration_s=90, seed=7, noise=3.0,
               walkers=tuple(Walker(0.3 + 0.7 * k, 4.0 + k % 3, height=0.10 + 0.02 * (k % 3), y=0.35 + 0.15 * (k % 4),
                                    shade=30 + 40 * (k % 4), x_from=-0.1 if k % 2 else 1.1, x_to=1.1 if k % 2 else -0.1)
                             for k in range(126)))


@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("busy")
    write_h264(BUSY, folder / "busy.mp4", 300_000, 16)
    (folder / "settle.yaml").write_text(FAST_SETTLE + "events:\n  max_seconds: 30\n")
    return folder / "busy.mp4"


def test_motion_that_never_stops_on_several_jobs_equals_sequential_scan(tmp_path, busy_clip):
    """One event from the first seconds to the end, in several clip parts: all equal."""
    shutil.copy2(busy_clip, tmp_path / "busy.mp4")
    shutil.copy2(busy_clip.with_name("settle.yaml"), tmp_path / "settle.yaml")
    mw("scan", "busy.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=tmp_path, check=True)
    par = mw("scan", "busy.mp4", "--config", "settle.yaml", "--jobs", "3", "--recordings", "par", "--no-progress",
       cwd=tmp_path, env=PARALLEL_ANY_LENGTH, check=True)
    assert "worker processes" in par.stderr
    [s] = same_events(tmp_path / "seq", tmp_path / "par")
    assert s["end_frame"] - s["start_frame"] > 0.9 * BUSY.fps * BUSY.duration_s   # it never stopped
    assert len(s["clip_parts"]) > 1


def test_never_quiet_background_on_several_jobs_equals_sequential_scan(tmp_path):
    """Many small movers all the time: the frames with motion and the snapshot are the
    sequential scan's, also when the file is scanned among others (a folder)."""
    write_h264(MOVERS, tmp_path / "movers.mp4", 300_000, 16)
    (tmp_path / "settle.yaml").write_text(FAST_SETTLE)
    mw("scan", "movers.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=tmp_path, check=True)
    par = mw("scan", "movers.mp4", "--config", "settle.yaml", "--jobs", "2", "--recordings", "par", "--no-progress",
       cwd=tmp_path, env=PARALLEL_ANY_LENGTH, check=True)
    assert "worker processes" in par.stderr
    seq = same_events(tmp_path / "seq", tmp_path / "par")
    assert seq and seq[0]["frames_with_motion"] > 0.8 * MOVERS.fps * MOVERS.duration_s   # always something moving
    (tmp_path / "both").mkdir()
    shutil.copy2(tmp_path / "movers.mp4", tmp_path / "both" / "movers.mp4")
    shutil.copy2(tmp_path / "movers.mp4", tmp_path / "both" / "again.mp4")
    mw("scan", "both", "--config", "settle.yaml", "--jobs", "3", "--recordings", "folder", "--no-progress",
       cwd=tmp_path, check=True)
    folder = [e for e in events_json(tmp_path / "folder") if e["camera"] == "movers"]
    assert [(e["frames_with_motion"], e["peak_fraction"]) for e in folder] == \
           [(e["frames_with_motion"], e["peak_fraction"]) for e in seq]


def scan_folders(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("motionwatch-scan-*"))


def worker_pid(folder: Path) -> int:
    """The process scanning into a task's temporary folder (its name says: <host>-<pid>-<random>)."""
    return int(folder.name.rsplit("-", 2)[1])


def start_scan(args: list[str], cwd: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    log = cwd / "scan.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "motionwatch", *args], cwd=cwd, env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def test_a_killed_worker_leaves_no_temporary_folder_and_its_files_are_scanned_next_run(tmp_path, visit_clip):
    archive(tmp_path, visit_clip, [f"{c}.mp4" for c in "abcd"])
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp")}
    proc, log = start_scan(["scan", "archive", "--jobs", "2", "--no-progress"], tmp_path, env)
    try:
        [victim, *_] = wait_until(lambda: scan_folders(tmp_path / "tmp"), 60, "a task scanning")
        os.kill(worker_pid(victim), signal.SIGKILL)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    assert code == 1 and "worker process failed" in out and "Traceback" not in out, out
    assert not victim.exists() and scan_folders(tmp_path / "tmp") == []
    again = mw("scan", "archive", "--jobs", "2", "--no-progress", cwd=tmp_path, env=env, check=True)
    assert all(row.split()[-1] in ("done", "scanned)") for row in table(again.stdout).values()), again.stdout
    assert sorted(e["camera"] for e in events_json(tmp_path / "recordings")) == list("abcd")
    assert scan_folders(tmp_path / "tmp") == []


HOOK = """\
import json, os, sys
rec = json.load(sys.stdin)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"hook": os.environ["MOTIONWATCH_HOOK"], "id": rec["id"], "camera": rec["camera"],
                        "state": rec["state"], "reason": rec.get("reason"), "folder": os.environ["MOTIONWATCH_FOLDER"],
                        "snapshot": os.environ.get("MOTIONWATCH_SNAPSHOT")}) + "\\n")
"""


def test_folder_scan_runs_event_hooks_like_a_single_file_scan(tmp_path, visit_clip):
    archive(tmp_path, visit_clip, ["mon/front.mp4", "tue/back.mp4"])
    shutil.copy2(visit_clip, tmp_path / "single.mp4")
    (tmp_path / "hook.py").write_text(HOOK)
    for name in ("folder", "single"):
        cmd = [sys.executable, str(tmp_path / "hook.py"), str(tmp_path / f"{name}.jsonl")]
        (tmp_path / f"{name}.yaml").write_text(json.dumps({"hooks": {"on_event_start": cmd, "on_event_end": cmd}}))
    mw("scan", "archive", "--jobs", "2", "--config", "folder.yaml", "--no-progress", cwd=tmp_path, check=True)
    mw("scan", "single.mp4", "--jobs", "1", "--config", "single.yaml", "--recordings", "one", cwd=tmp_path, check=True)
    calls = [json.loads(line) for line in (tmp_path / "folder.jsonl").read_text().splitlines()]
    single = [json.loads(line) for line in (tmp_path / "single.jsonl").read_text().splitlines()]
    evs = events_json(tmp_path / "recordings")
    assert len(evs) == 2
    for ev in evs:
        mine = [c for c in calls if c["id"] == ev["id"]]
        assert [(c["hook"], c["state"]) for c in mine] == [("event_start", "start"), ("event_end", "end")]
        assert all(c["camera"] == ev["camera"] for c in mine)
        assert all((Path(c["folder"]) / "event.json").is_file() for c in mine)
        end = mine[1]
        assert Path(end["snapshot"]).read_bytes() == (tmp_path / "recordings" / ev["snapshot"]).read_bytes()
    # The same hooks, in the same order and with the same reasons, as a single-file scan's.
    assert [(c["hook"], c["reason"]) for c in single] == [(c["hook"], c["reason"]) for c in calls[:2]]


def hook_config(tmp_path: Path, name: str) -> list[dict]:
    """Write NAME.yaml running HOOK on every event's start and end; returns a reader of its calls."""
    (tmp_path / "hook.py").write_text(HOOK)
    cmd = [sys.executable, str(tmp_path / "hook.py"), str(tmp_path / f"{name}.jsonl")]
    (tmp_path / f"{name}.yaml").write_text(json.dumps({"hooks": {"on_event_start": cmd, "on_event_end": cmd}}))
    log = tmp_path / f"{name}.jsonl"
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("how", ["folder", "file"])
def test_an_interrupted_scan_and_its_rerun_tell_the_hooks_of_each_event_once(tmp_path, visit_clip, how):
    """Ctrl-C while an event is open: that event is finished, written and told (start
    and end); the rerun scans the file again, finds the same event and does not tell it
    again. A folder goes through the archive scan, one file through the single-file
    scan, whose hooks run live."""
    names = ["a.mp4", "b.mp4", "c.mp4"] if how == "folder" else ["a.mp4"]
    archive(tmp_path, visit_clip, names)
    calls = hook_config(tmp_path, "hooks")
    target = "archive" if how == "folder" else "archive/a.mp4"
    args = ["scan", target, "--jobs", "1", "--config", "hooks.yaml", "--no-progress"]
    opened = 2 if how == "folder" else 1   # Ctrl-C in the event of b.mp4, or of the one file
    code, out = interrupt_when(args, tmp_path / "scan.log", lambda text: text.count("started at") >= opened,
                               signal.SIGINT, cwd=tmp_path, timeout=120)
    assert code == 0 and "Traceback" not in out, out
    assert wait_until(lambda: len(calls()) == 2 * opened, 30, "the hooks")
    mw("events", "--reindex", cwd=tmp_path, check=True)   # a rebuilt index remembers what was told
    again = mw(*args, cwd=tmp_path, check=True)
    assert "Traceback" not in again.stderr
    evs = events_json(tmp_path / "recordings")
    assert sorted(e["camera"] for e in evs) == sorted(Path(n).stem for n in names)
    assert len({e["end_frame"] for e in evs}) == 1   # whole events now, the interrupted one too
    told = calls()
    for cam in (Path(n).stem for n in names):
        assert [c["state"] for c in told if c["camera"] == cam] == ["start", "end"], told
    third = mw(*args, "--rescan", cwd=tmp_path, check=True)   # asked for: told again
    assert third.returncode == 0 and len(calls()) == len(told) + 2 * len(names)


def test_jobs_bound_the_cores_a_scan_decodes_on(visit_clip, tmp_path, monkeypatch):
    """`--jobs N` keeps about N cores busy, as `make -j` does: a worker that shares the
    jobs with others (or `--jobs 1`) decodes on one thread, one with cores to spare on
    its share of them (at most the cores there are) when its pictures are larger than
    1280x720 and the file has more than a few seconds of decoding. Checked on the
    decoder PyAV really opened."""
    from motionwatch.sources import pyav
    from motionwatch.archive.command import decoder_threads
    from motionwatch.archive.runners import default_jobs
    from motionwatch.bench import make_clip
    from motionwatch.sources.base import SourceOptions
    from motionwatch.sources.pyav import SCAN_DECODER_THREADS, AvFileSource

    assert decoder_threads(1, 1, None) == 1        # scan FILE --jobs 1
    assert decoder_threads(1, 8, None) == 1        # a folder, one at a time
    assert decoder_threads(2, 8, None) == 1        # two workers fill two jobs
    cores = default_jobs()
    assert decoder_threads(2, 1, None) == min(2, cores)   # one file: both cores
    assert decoder_threads(8, 2, None) == min(4, cores)   # cores to spare per worker
    assert decoder_threads(2, 8, "tcp://h:8786") == 0   # a cluster's workers are sized by Dask

    def threads(clip: Path, options: SourceOptions) -> int:
        src = AvFileSource(str(clip), options)
        src.open()
        try:
            return src.stream.codec_context.thread_count
        finally:
            src.close()

    big = tmp_path / "1080p.mp4"
    make_clip(big, 1920, 1080, 1.0)
    # A second of 1080p: frame threads would cost more CPU than the time they save.
    assert threads(big, SourceOptions(scan=True)) == 1
    monkeypatch.setattr(pyav, "SPREAD_WORK", 1e6)   # as if it were a long file
    assert threads(big, SourceOptions(scan=True, decoder_threads=1)) == 1
    assert threads(big, SourceOptions(scan=True)) == SCAN_DECODER_THREADS
    # Pictures up to 1280x720 decode on one thread whatever the share: frame threads
    # cost them more CPU than they save in time.
    small = tmp_path / "720p.mp4"
    make_clip(small, 1280, 720, 1.0)
    for clip in (small, visit_clip):
        assert threads(clip, SourceOptions(scan=True, decoder_threads=2)) == 1


@pytest.mark.parametrize("target", ["single.mp4", "archive"])
def test_what_an_interrupted_split_scan_of_an_earlier_version_kept_is_removed(tmp_path, visit_clip, target):
    """Versions that split long files kept finished segments in recordings/.scan-parts
    and index rows `FILE#frames=L:A-B`; files are no longer split, so the next scan
    (of one file or a folder) removes both, and scans the file whole."""
    archive(tmp_path, visit_clip, ["a.mp4"])
    shutil.copy2(visit_clip, tmp_path / "single.mp4")
    mw("scan", "archive", "--jobs", "1", "--no-progress", cwd=tmp_path, check=True)   # makes the index
    rec = tmp_path / "recordings"
    (rec / ".scan-parts").mkdir()
    (rec / ".scan-parts" / "0123456789abcdef0123.pickle").write_bytes(b"old segment")
    from motionwatch.index.database import EventIndex
    index = EventIndex(rec)
    key = f"{(tmp_path / 'single.mp4').resolve()}#frames=0:120-"
    index.set_scanned(key, "single", 1, 1.0, "0" * 16, True, [])
    index.close()
    mw("scan", target, "--jobs", "1", "--no-progress", cwd=tmp_path, check=True)
    assert not (rec / ".scan-parts").exists()
    index = EventIndex(rec)
    try:
        assert index.scanned(key, "single") is None
    finally:
        index.close()
