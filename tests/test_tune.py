"""`motionwatch tune`: the plot is written, the would-be events and suggestions are printed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2

from conftest import mw


def test_tune_plots_a_file_and_lists_its_events(tmp_path: Path, two_visits_video):
    video, scene = two_visits_video
    out = tmp_path / "plot.png"
    proc = mw("tune", str(video), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] >= 1000
    starts = [float(m) for m in re.findall(r"event\s+([\d.]+) s", proc.stdout)]
    truth = scene.visible_truth()
    assert len(starts) == len(truth)
    for s, (a, _) in zip(starts, truth):
        assert abs(s - a) < 1.0
    assert re.search(r"pixel_threshold: \d+", proc.stdout)
    m = re.search(r"suggested: detection.trigger_fraction: ([\d.]+)", proc.stdout)
    assert m and 0.001 <= float(m.group(1)) < 0.05
    # The plot marks the two events with green bands.
    from motionwatch.tune.advice import TOP
    row = img[TOP + 3].astype(int)          # just inside the plot's top edge
    cols = (abs(row[:, 1] - 235) < 3) & (abs(row[:, 0] - 210) < 3)
    bands = sum(1 for x in range(1, len(cols)) if cols[x] and not cols[x - 1])
    assert bands == 2


def test_tune_names_its_plot_after_the_file_when_no_camera_is_configured(tmp_path: Path, static_noisy_video):
    """With the built-in defaults the plot is named after the source, as `scan` names
    its cameras (it was tune-demo.png, after the default camera, for any file); a
    configured camera keeps its own name."""
    proc = mw("tune", str(static_noisy_video), "--seconds", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plot = f"tune-{static_noisy_video.stem}.png"
    assert sorted(p.name for p in tmp_path.glob("tune-*")) == [plot]
    assert proc.stdout.startswith(plot + ":")
    cfg = tmp_path / "motionwatch.yaml"
    cfg.write_text("cameras:\n  - name: porch\n    source: /dev/video0\n")
    proc = mw("tune", str(static_noisy_video), "--seconds", "2", "--config", cfg.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tune-porch.png").exists() and proc.stdout.startswith("tune-porch.png:")


def test_tune_static_scene_suggests_from_the_noise_floor(tmp_path: Path, static_noisy_video):
    out = tmp_path / "quiet.png"
    proc = mw("tune", str(static_noisy_video), "--seconds", "8", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "0 event(s)" in proc.stdout
    assert out.exists()


def test_tune_demo_watches_the_live_demo_for_n_seconds(tmp_path: Path):
    """The demo is live-only: N seconds of it are N seconds of wall-clock time at
    its 15 fps, with its first visitor crossing 4-10 s in (not thousands of frames
    rendered flat out under wall-clock timestamps, which smeared every crossing
    into one event)."""
    out = tmp_path / "demo.png"
    t0 = time.monotonic()
    proc = mw("tune", "demo", "--seconds", "12", "-o", str(out), timeout=120)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    m = re.search(r"(\d+) frames, ([\d.]+) s at 15 fps; (\d+) event\(s\)", proc.stdout)
    assert m, proc.stdout
    frames, secs, events = int(m.group(1)), float(m.group(2)), int(m.group(3))
    assert 11.0 <= secs <= 12.0 and took >= 11.0
    assert 100 <= frames <= 12 * 15 + 1     # live: frames the detector missed are dropped, never invented
    assert events == 1, proc.stdout
    start, end = (float(v) for v in re.search(r"event\s+([\d.]+) s -\s+([\d.]+) s", proc.stdout).groups())
    assert 3.5 <= start <= 6.0 and 7.0 <= end <= 11.0


def test_tune_bad_arguments_are_one_clear_line(tmp_path: Path):
    proc = mw("tune", str(tmp_path / "nothing.mp4"), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    proc = mw("tune", "demo", "--seconds", "-3")
    assert proc.returncode == 2 and "--seconds" in proc.stderr
    proc = mw("tune", "demo", "-o", str(tmp_path / "plot.txt"))
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_tune_with_no_quiet_frame_says_so_instead_of_a_zero_noise_floor(tmp_path: Path):
    """A clip that moves from start to end (ffmpeg's testsrc2) leaves no frame that
    tells the noise floor: the report must say so, not claim quiet frames stay
    below 0.000% (the 99.5th percentile of 0 frames)."""
    import subprocess
    clip = tmp_path / "moving.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-t", "6",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    proc = mw("tune", str(clip), "-o", str(tmp_path / "t.png"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "no quiet frame" in proc.stdout and "of 0 quiet frames" not in proc.stdout, proc.stdout
    assert "x the quiet noise floor" not in proc.stdout, proc.stdout
