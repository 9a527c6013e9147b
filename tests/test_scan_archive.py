"""`motionwatch scan` over an archive: folders, a damaged file among good ones,
resuming an interrupted run, --rescan, and a long file split at keyframes over
worker processes giving the events of a sequential scan."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from motionwatch.archive import plan
from motionwatch.archive.task import ScanTask, run_task
from motionwatch.archive.join import is_clip
from motionwatch.archive.write import join_segments, joined_event
from motionwatch.config import load_config
from motionwatch.sources.scene import Scene, Walker, write_h264

from conftest import events_json, interrupt_when, mw, wait_until

# A visit 2 s into each clip, long enough that a scan of one takes a moment.
VISIT = Scene(width=640, height=480, fps=15, duration_s=30, seed=6, noise=3.0, walkers=(Walker(2.0, 6.0),))
# 90 s at 8 fps with visits placed across the boundaries a 3-way split makes (see test).
LONG = Scene(width=320, height=240, fps=8, duration_s=90, seed=4, noise=3.0,
             walkers=(Walker(8, 6), Walker(31, 8, shade=70, x_from=1.15, x_to=-0.15), Walker(58, 8),
                      Walker(80, 5, height=0.45)))
# Settles fast, so a 90 s clip is long enough to split three ways.
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
def test_split_scan_equals_sequential_scan(tmp_path, long_clip, detection_fps):
    """Also with detection.fps analysing every third frame of the 8 fps clip: the
    segments start at keyframes 16 frames apart, so they must take up the sequential
    scan's schedule of analysed frames rather than start their own."""
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy2(long_clip, work / "long.mp4")
    (work / "settle.yaml").write_text(FAST_SETTLE + (f"  fps: {detection_fps}\n" if detection_fps else ""))
    segments = plan.split(plan.keyframes(str(work / "long.mp4")), 3,
                          plan.lead_in_seconds(load_config(str(work / "settle.yaml")).detection))
    assert len(segments) == 3
    mw("scan", "long.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=work, check=True)
    split = mw("scan", "long.mp4", "--config", "settle.yaml", "--jobs", "3", "--recordings", "par",
               "--no-progress", cwd=work, check=True)
    assert table(split.stdout)["long.mp4"].split()[-1] == "done"
    seq = sorted(events_json(work / "seq"), key=lambda e: e["start_frame"])
    par = sorted(events_json(work / "par"), key=lambda e: e["start_frame"])
    assert len(seq) == len(par) == len(LONG.walkers)
    for b in (s.own_start for s in segments[1:]):   # the visits do cross the boundaries
        assert any(e["start_frame"] < b <= e["end_frame"] for e in seq), (b, seq)
    for s, p in zip(seq, par):
        assert abs(s["start_frame"] - p["start_frame"]) <= 1 and abs(s["end_frame"] - p["end_frame"]) <= 1
        assert s["frames_with_motion"] == p["frames_with_motion"]   # the halves of a joined one add up
        assert (work / "seq" / s["snapshot"]).read_bytes() == (work / "par" / p["snapshot"]).read_bytes()
        assert (work / "par" / p["clip"]).stat().st_size > 0


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


@pytest.fixture(scope="module")
def busy_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("busy")
    write_h264(BUSY, folder / "busy.mp4", 300_000, 16)
    (folder / "settle.yaml").write_text(FAST_SETTLE + "events:\n  max_seconds: 30\n")
    return folder / "busy.mp4"


def busy_tasks(folder: Path) -> list[ScanTask]:
    cfg = load_config(str(folder / "settle.yaml"))
    path = str(folder / "busy.mp4")
    cfg = replace(cfg, cameras=(replace(cfg.cameras[0], name="busy", source=path),))
    return [ScanTask(path, "busy", cfg, 0.0, seg, key=k) for k, seg in
            enumerate(plan.split(plan.keyframes(path), 3, plan.lead_in_seconds(cfg.detection)))]


def test_split_scan_of_motion_that_never_stops_equals_sequential_scan(tmp_path, busy_clip):
    """The one event is open across both boundaries: the segments cut it there and the
    halves are joined into the sequential scan's event (snapshot and clip parts alike)."""
    shutil.copy2(busy_clip, tmp_path / "busy.mp4")
    shutil.copy2(busy_clip.with_name("settle.yaml"), tmp_path / "settle.yaml")
    mw("scan", "busy.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=tmp_path, check=True)
    split = mw("scan", "busy.mp4", "--config", "settle.yaml", "--jobs", "3", "--recordings", "par",
               "--no-progress", cwd=tmp_path, check=True)
    assert table(split.stdout)["busy.mp4"].split()[-1] == "done"
    [s] = events_json(tmp_path / "seq")
    [p] = events_json(tmp_path / "par")
    assert s["end_frame"] - s["start_frame"] > 0.9 * BUSY.fps * BUSY.duration_s   # it never stopped
    assert abs(s["start_frame"] - p["start_frame"]) <= 1 and abs(s["end_frame"] - p["end_frame"]) <= 1
    assert p["peak_fraction"] == s["peak_fraction"]
    assert (tmp_path / "seq" / s["snapshot"]).read_bytes() == (tmp_path / "par" / p["snapshot"]).read_bytes()
    assert len(p["clip_parts"]) == len(s["clip_parts"]) > 1
    assert [(tmp_path / "par" / c).read_bytes() for c in p["clip_parts"]] == \
           [(tmp_path / "seq" / c).read_bytes() for c in s["clip_parts"]]
    # The first segment stopped at its end instead of reading on to the end of the file.
    first = busy_tasks(tmp_path)[0]
    res = run_task(first)
    assert res.frames == first.segment.own_end and res.cut is not None


def test_segments_send_no_clip_that_the_join_throws_away(tmp_path, busy_clip):
    """The join remuxes a cut event's whole clip from the file, so the half clip of the
    segment that cut it, and the clip of the next segment's continuation, are not sent
    back (they were: 27 MB a half on the real 10-minute traffic file, through the pipe
    or across a cluster, only to be thrown away). The joined event still has the
    sequential scan's clip parts, byte for byte; a cut event whose continuation is
    missing (the next segment was interrupted) gets its clip from the file too."""
    tasks = busy_tasks(busy_clip.parent)
    results = [run_task(t) for t in tasks]
    assert results[0].cut is not None and results[1].continued is not None
    sent = [rel for r in results for ev in [*r.events, *([r.continued] if r.continued else [])] for rel in ev.files]
    assert sent and not [rel for rel in sent if is_clip(rel)], sent

    def finish(root):
        return lambda cut: joined_event(root, tasks[0].path, tasks[0].config.events, cut)
    [joined] = join_segments(results, finish(tmp_path / "par"), run_task)
    [whole] = run_task(replace(tasks[0], segment=plan.WHOLE)).events
    assert len(joined.record["clip_parts"]) == len(whole.record["clip_parts"]) > 1
    assert [(tmp_path / "par" / c).read_bytes() for c in joined.record["clip_parts"]] == \
           [whole.files[c] for c in whole.record["clip_parts"]]

    [half] = join_segments(results[:1], finish(tmp_path / "half"), None)
    parts = [tmp_path / "half" / c for c in half.record["clip_parts"]]
    assert parts and all(p.stat().st_size > 0 for p in parts)
    assert half.record["end_frame"] < tasks[0].segment.own_end <= joined.record["end_frame"]


def test_a_boundary_the_next_segment_saw_otherwise_is_scanned_again_uncut(tmp_path, busy_clip):
    """Where the next segment did not see the cut event open (a scene slower than the
    lead-in; simulated here by dropping what the middle segment saw at its start), the
    cut segment is scanned again reading on past its end, so the event is still whole."""
    tasks = busy_tasks(busy_clip.parent)
    results = [run_task(t) for t in tasks]
    results[1].continued = results[1].continued_facts = None
    reruns = []

    def rerun(task):
        reruns.append(task)
        return run_task(task)
    [joined] = join_segments(results, lambda cut: joined_event(tmp_path, tasks[0].path, tasks[0].config.events, cut),
                             rerun)
    assert [t.key for t in reruns] == [0] and reruns[0].cut is False
    [whole] = run_task(replace(tasks[0], segment=plan.WHOLE)).events
    assert joined.record["start_frame"] == whole.record["start_frame"]
    assert joined.record["end_frame"] == whole.record["end_frame"]


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


def test_interrupted_split_scan_keeps_finished_segments_and_joins_across_them(tmp_path, busy_clip):
    """Ctrl-C while one segment of a long file is done and the other is not: the next run
    takes the finished segment as it was, scans only the other, and the event open across
    the boundary is still joined into the sequential scan's one event. One worker is held
    with SIGSTOP so that the two segments cannot finish together (the only way to make
    'one done, one not' certain on any machine); it is let go right after the Ctrl-C."""
    shutil.copy2(busy_clip, tmp_path / "busy.mp4")
    shutil.copy2(busy_clip.with_name("settle.yaml"), tmp_path / "settle.yaml")
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp")}
    mw("scan", "busy.mp4", "--config", "settle.yaml", "--jobs", "1", "--recordings", "seq", cwd=tmp_path, check=True)
    args = ["scan", "busy.mp4", "--config", "settle.yaml", "--jobs", "2", "--recordings", "par", "--no-progress"]
    proc, log = start_scan(args, tmp_path, env)
    held = None
    try:
        both = wait_until(lambda: len(scan_folders(tmp_path / "tmp")) == 2 and scan_folders(tmp_path / "tmp"),
                          60, "two segments scanning")
        held = worker_pid(both[0])
        os.kill(held, signal.SIGSTOP)
        wait_until(lambda: not both[1].exists(), 60, "the other segment finished")
        proc.send_signal(signal.SIGINT)
        # The client has told the workers to stop before the held one reads on.
        wait_until(lambda: "finishing open events" in log.read_text(), 30, "the client heard the Ctrl-C")
        os.kill(held, signal.SIGCONT)
        code = proc.wait(120)
    finally:
        if held is not None and proc.poll() is None:
            os.kill(held, signal.SIGCONT)
            proc.kill()
    out = log.read_text()
    assert code == 0, out
    assert "interrupted (1 of 2 segments kept; the rest is scanned next time)" in table(out)["busy.mp4"], out

    again = mw(*args, cwd=tmp_path, env=env, check=True)
    assert "done (resumed: 1 of 2 segments from the last run)" in table(again.stdout)["busy.mp4"], again.stdout
    [s] = events_json(tmp_path / "seq")
    [p] = events_json(tmp_path / "par")
    assert abs(s["start_frame"] - p["start_frame"]) <= 1 and abs(s["end_frame"] - p["end_frame"]) <= 1
    assert (tmp_path / "seq" / s["snapshot"]).read_bytes() == (tmp_path / "par" / p["snapshot"]).read_bytes()
    assert len(list((tmp_path / "par").rglob("event.json"))) == 1          # the partial one was replaced
    assert not list((tmp_path / "par" / ".scan-parts").iterdir())           # kept segments are forgotten
    third = mw(*args, cwd=tmp_path, env=env, check=True)
    assert "skipped (already scanned)" in table(third.stdout)["busy.mp4"]


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


def test_jobs_bound_the_cores_a_scan_decodes_on(visit_clip):
    """`--jobs N` keeps about N cores busy, as `make -j` does: a scan alone decodes on
    two FFmpeg threads beside its detecting thread, so a worker that shares the jobs with
    others (or `--jobs 1`) decodes on one. Checked on the decoder PyAV really opened."""
    from motionwatch.archive.command import decoder_threads
    from motionwatch.sources.base import SourceOptions
    from motionwatch.sources.pyav import SCAN_DECODER_THREADS, AvFileSource

    assert decoder_threads(1, 1, None) == 1        # scan FILE --jobs 1
    assert decoder_threads(1, 8, None) == 1        # a folder, one at a time
    assert decoder_threads(2, 8, None) == 1        # two workers fill two jobs
    assert decoder_threads(2, 1, None) == 0        # one file that is not split: both cores
    assert decoder_threads(8, 2, None) == 0        # cores to spare per worker
    assert decoder_threads(2, 8, "tcp://h:8786") == 0   # a cluster's workers are sized by Dask

    def threads(options: SourceOptions) -> int:
        src = AvFileSource(str(visit_clip), options)
        src.open()
        try:
            return src.stream.codec_context.thread_count
        finally:
            src.close()

    assert threads(SourceOptions(scan=True, decoder_threads=1)) == 1
    assert threads(SourceOptions(scan=True)) == SCAN_DECODER_THREADS
