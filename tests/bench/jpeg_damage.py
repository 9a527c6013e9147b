"""How well media.jpeg_check picks out damaged JPEGs, and what checking costs.

    PYTHONPATH=. .venv/bin/python tests/bench/jpeg_damage.py [--samples 300]

Frames of the real clips in ../shared/footage (and a generated room with two people)
are encoded as a camera's JPEGs (quality 80). For each clip: the share of its
pictures the check's gate would decode again (each against the picture before and
the one two before, as at half the camera's rate), and, of `--samples` JPEGs with a
random run of 16-2048 bytes lost, the share of those whose damage covers more than
1% of the picture that the gate lets through to FFmpeg, and the largest damage it
does not. Then the CPU per picture of libjpeg's reduced grey decode (what the
detector gets), FFmpeg's strict decode at 1/8 scale (the check) and in full, and
the gate itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from motionwatch.media.jpeg_check import decode_one, differs_as_damage, strict_decoder  # noqa: E402
from motionwatch.sources.scene import Scene, SceneRenderer, Walker  # noqa: E402
from support.footage import FOOTAGE  # noqa: E402


def video(path: Path, count: int = 120, step: int = 2, width: int | None = None) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                bgr = f.to_ndarray(format="bgr24")
                if width and bgr.shape[1] > width:
                    bgr = cv2.resize(bgr, (width, bgr.shape[0] * width // bgr.shape[1]), interpolation=cv2.INTER_AREA)
                out.append(bgr)
            if len(out) >= count:
                break
    return out


def clips() -> dict[str, list[np.ndarray]]:
    scene = Scene(width=640, height=480, fps=15, duration_s=8, seed=7, noise=3.0,
                  walkers=(Walker(0.0, 3.6, height=0.6), Walker(3.0, 7.5, height=0.9)))
    r = SceneRenderer(scene)
    found = {"generated room 640x480": [r.render(i) for i in range(scene.frames)]}
    for name, path, width in (("traffic_camera (as 640x360)", "dvrscan_traffic_camera/traffic_camera.mp4", 640),
                              ("motorway", "motorway_timestamp/video02.avi", None),
                              ("vtest", "opencv_vtest/vtest.avi", None),
                              ("escalator", "i2r_escalator/video.mp4", None),
                              ("watersurface", "i2r_watersurface/video.mp4", None),
                              ("curtain", "i2r_curtain/video.mp4", None)):
        if (FOOTAGE / path).exists():
            found[name] = video(FOOTAGE / path, width=width)
    highway = sorted((FOOTAGE / "cdnet_highway" / "input").glob("in*.jpg"))[800:1040:2]
    if highway:
        found["cdnet highway"] = [cv2.imread(str(p)) for p in highway]
    return found


def grey(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_2)


def lose(jpeg: bytes, rng: np.random.Generator) -> bytes:
    scan = jpeg.find(b"\xff\xda") + 20
    at = int(rng.integers(scan, len(jpeg) - 4))
    n = int(rng.integers(16, 2048))
    return jpeg[:at] + jpeg[at + n:] if at + n < len(jpeg) - 2 else jpeg[:at] + b"\xff\xd9"


def gate_table(samples: int) -> None:
    print("| clip | pictures checked | damaged >1% checked | largest damage not checked |")
    print("|---|---:|---:|---:|")
    for name, pictures in clips().items():
        jpegs = [cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for p in pictures]
        greys = [grey(j) for j in jpegs]
        normal = [differs_as_damage(greys[i], greys[i - k]) for k in (1, 2) for i in range(k, len(greys))]
        rng = np.random.default_rng(0)
        caught, missed = [], [0.0]
        for _ in range(samples):
            i = int(rng.integers(1, len(jpegs)))
            g = grey(lose(jpegs[i], rng))
            visible = float(np.mean(np.abs(g.astype(np.int16) - greys[i]) > 20))
            if visible > 0.01:
                hit = differs_as_damage(g, greys[i - 1])
                caught.append(hit)
                if not hit:
                    missed.append(visible)
        print(f"| {name} | {np.mean(normal):.0%} | {np.mean(caught):.1%} | {max(missed):.1%} |")


def cost(n: int = 300) -> None:
    scene = Scene(width=1280, height=720, fps=10, duration_s=1, seed=7, noise=3.0,
                  walkers=(Walker(0.0, 1.0, height=0.6),))
    big = SceneRenderer(scene).render(5)
    print("\n| picture | libjpeg reduced grey | FFmpeg strict, 1/8 | FFmpeg strict, full | gate |")
    print("|---|---:|---:|---:|---:|")
    for w, h in ((640, 480), (1280, 720)):
        jpeg = cv2.imencode(".jpg", cv2.resize(big, (w, h)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
        flag = cv2.IMREAD_REDUCED_GRAYSCALE_2 if w <= 640 else cv2.IMREAD_REDUCED_GRAYSCALE_4
        buf = np.frombuffer(jpeg, np.uint8)
        small, full = strict_decoder(3), strict_decoder()
        g = cv2.imdecode(buf, flag)
        moved = np.roll(g, 4, axis=1)
        runs = {"reduced": lambda: cv2.imdecode(buf, flag), "probe": lambda: decode_one(small, jpeg),
                "full": lambda: decode_one(full, jpeg), "gate": lambda: differs_as_damage(g, moved)}
        ms = {}
        for k, fn in runs.items():
            best = []
            for _ in range(3):
                t = time.process_time()
                for _ in range(n):
                    fn()
                best.append((time.process_time() - t) / n * 1000)
            ms[k] = min(best)
        print(f"| {w}x{h} | {ms['reduced']:.2f} ms | {ms['probe']:.2f} ms | {ms['full']:.2f} ms | "
              f"{ms['gate'] * 1000:.0f} µs |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    gate_table(a.samples)
    cost()
    return 0


if __name__ == "__main__":
    sys.exit(main())
