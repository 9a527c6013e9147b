"""Generated scenes: a textured room, people walking through, light changes, noise.

Used by the `demo` source (an endless live scene), by test fixtures that write
video files with known motion intervals, and by the detection evaluation suite.
Everything is deterministic for a given seed so ground truth is exact.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass, field

import cv2
import numpy as np

from motionwatch.sources.outdoor_scene import Outdoor


@dataclass(frozen=True)
class Walker:
    """A person crossing the picture from x_from to x_to (fractions of the width)."""

    start_s: float
    duration_s: float
    height: float = 0.55          # fraction of the picture height
    y: float = 0.85               # feet position, fraction of the height
    x_from: float = -0.15
    x_to: float = 1.15
    shade: int = 40               # clothing grey level (0..255)
    stop_at_s: float | None = None  # stand still from here until the end of duration
    go_at_s: float | None = None    # wait at x_from until then, limbs moving (in the picture at start)
    height_to: float | None = None  # approaching the camera: grows to this height

    def visible(self, t: float) -> bool:
        return self.start_s <= t < self.start_s + self.duration_s

    def height_at(self, t: float) -> float:
        if self.height_to is None:
            return self.height
        u = min(max((t - self.start_s) / self.duration_s, 0.0), 1.0)
        return self.height + (self.height_to - self.height) * u

    def box(self, t: float, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The person's bounding box in pixels clipped to the picture, or None when off it."""
        if not self.visible(t):
            return None
        h = self.height_at(t) * height
        cx = self.x_at(t) * width
        half = h * 0.28 * 0.5 + h * 0.1  # torso half-width plus swinging arms
        x0, x1 = max(0.0, cx - half), min(float(width), cx + half)
        y1 = min(float(height), self.y * height)
        y0 = max(0.0, y1 - h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return int(x0), int(y0), int(x1 - x0), int(y1 - y0)

    def x_at(self, t: float) -> float:
        u = (t - self.start_s) / self.duration_s
        if self.go_at_s is not None:
            u = max(t - self.go_at_s, 0.0) / max(self.start_s + self.duration_s - self.go_at_s, 1e-6)
        if self.stop_at_s is not None:
            u = min(u, (self.stop_at_s - self.start_s) / self.duration_s)
        return self.x_from + (self.x_to - self.x_from) * u


@dataclass(frozen=True)
class Light:
    """Global brightness: `gain` reached at `t_s`, ramping over `ramp_s` (0 = a switch)."""

    t_s: float
    gain: float
    ramp_s: float = 0.0


@dataclass(frozen=True)
class Scene:
    width: int = 640
    height: int = 480
    fps: float = 15.0
    duration_s: float = 30.0
    seed: int = 1
    noise: float = 4.0            # sensor noise sigma in grey levels
    base_gain: float = 1.0        # 0.25 makes a dark hallway
    walkers: tuple[Walker, ...] = ()
    lights: tuple[Light, ...] = ()
    flicker_hz: float = 0.0
    flicker_amp: float = 0.0      # fraction of brightness, e.g. 0.04
    sway: tuple[int, int, int, int] | None = None   # x, y, w, h of a swaying bush
    jpeg_quality: int = 0         # >0 adds compression artefacts
    # Outdoor elements (motionwatch/sources/outdoor_scene.py draws them):
    foliage: tuple[tuple[int, int, int, int], ...] = ()  # x, y, w, h of trees/bushes moving in gusts
    wind: float = 1.0             # gust strength: leaves move up to ~6 px x wind at 640 px
    water: tuple[int, int, int, int] | None = None       # x, y, w, h of a rippling water band
    rain: float = 0.0             # streaks per frame per 10,000 pixels
    snow: int = 0                 # flakes in the picture
    shake_px: float = 0.0         # camera shake amplitude in pixels (at the scene size)
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(round(self.duration_s * self.fps))

    def truth(self) -> list[tuple[float, float]]:
        """Ground-truth motion intervals in seconds (merged visits)."""
        spans = sorted((w.start_s, w.start_s + w.duration_s) for w in self.walkers)
        merged: list[list[float]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return [(a, b) for a, b in merged]

    def visible_truth(self, min_pixels: int = 4) -> list[tuple[float, float]]:
        """Like `truth`, but each visit starts when a person is actually in the picture.

        A walker starting off-screen takes a moment to step in; scoring latency
        against the moment something can be seen is the fair measure.
        """
        spans: list[list[float]] = []
        dt = 1.0 / self.fps
        for i in range(self.frames):
            t = i * dt
            seen = any((b := w.box(t, self.width, self.height)) is not None
                       and min(b[2], b[3]) >= min_pixels for w in self.walkers)
            if not seen:
                continue
            if spans and t - spans[-1][1] <= 1.5 * dt:
                spans[-1][1] = t
            else:
                spans.append([t, t])
        return [(a, b) for a, b in spans]


def room(width: int, height: int, seed: int) -> np.ndarray:
    """A textured indoor background: walls, floor, furniture, fine texture."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.55, 0.7))
    wall = rng.uniform(120, 190, 3)
    floor = rng.uniform(70, 130, 3)
    img[:horizon] = wall
    img[horizon:] = floor
    ys = np.linspace(0.85, 1.1, height, dtype=np.float32)[:, None, None]
    img *= ys  # soft vertical shading
    for _ in range(int(rng.integers(4, 8))):
        w = int(rng.uniform(0.08, 0.3) * width)
        h = int(rng.uniform(0.1, 0.45) * height)
        x = int(rng.uniform(0, width - w))
        y = int(rng.uniform(0.2 * height, horizon + 0.2 * height))
        color = rng.uniform(30, 230, 3).tolist()
        cv2.rectangle(img, (x, y), (x + w, min(height - 1, y + h)), color, -1)
    texture = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    texture = cv2.resize(texture, (width, height), interpolation=cv2.INTER_CUBIC)
    img += 10.0 * texture[:, :, None]
    return np.clip(img, 0, 255).astype(np.float32)


class SceneRenderer:
    """Renders frame `i` of a scene; cheap enough to run live at 30 fps."""

    NOISE_BANK = 24

    def __init__(self, scene: Scene, whole_noise: bool = False):
        """`whole_noise` keeps the noise bank in whole levels (int8), for the live demo:
        a quarter of float32's memory, and cheaper to add (docs/performance.md, 2026-12-06).
        Generated test clips keep the exact float noise their expectations were set on."""
        self.scene = scene
        self.base = room(scene.width, scene.height, scene.seed)
        rng = np.random.default_rng(scene.seed + 1000)
        self.noise = [self._bank_entry(rng.normal(0, scene.noise, (scene.height, scene.width, 3)), whole_noise)
                      for _ in range(self.NOISE_BANK if scene.noise > 0 else 0)]
        self.rng = rng
        self.outdoor = Outdoor(scene)

    @staticmethod
    def _bank_entry(noise: np.ndarray, whole: bool) -> np.ndarray:
        return np.clip(np.rint(noise), -128, 127).astype(np.int8) if whole else noise.astype(np.float32)

    def gain(self, t: float) -> float:
        s = self.scene
        g = s.base_gain
        for light in s.lights:
            if t >= light.t_s:
                g = light.gain
                continue
            if light.ramp_s > 0 and t > light.t_s - light.ramp_s:
                g += (light.gain - g) * (t - (light.t_s - light.ramp_s)) / light.ramp_s
            break
        if s.flicker_amp:
            g *= 1.0 + s.flicker_amp * math.sin(2 * math.pi * s.flicker_hz * t)
        return g

    def render(self, i: int) -> np.ndarray:
        s = self.scene
        t = i / s.fps
        img = self.base.copy()
        if s.sway is not None:
            self._sway(img, t)
        self.outdoor.background(img, i, t)
        for w in s.walkers:
            if w.visible(t):
                self._person(img, w, t)
        img = self.outdoor.foreground(img, i, t)
        img *= self.gain(t)
        if self.noise:
            img += self.noise[(i * 7 + (i // self.NOISE_BANK)) % self.NOISE_BANK]
        out = np.clip(img, 0, 255).astype(np.uint8)
        if s.jpeg_quality:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return out

    def _person(self, img: np.ndarray, w: Walker, t: float) -> None:
        H, W = img.shape[:2]
        h = w.height_at(t) * H
        cx = w.x_at(t) * W
        feet = w.y * H
        bw = h * 0.28
        shade = (w.shade, w.shade * 0.9 + 5, w.shade * 0.8 + 10)
        # Before go_at_s the person waits in place but moves their arms and legs.
        phase = math.sin(t * 6.0) if (w.stop_at_s is None or t < w.stop_at_s) else 0.0
        torso_top = feet - h * 0.85
        hip = feet - h * 0.45
        cv2.ellipse(img, (int(cx), int((torso_top + hip) / 2)), (int(bw / 2), int((hip - torso_top) / 2)),
                    0, 0, 360, shade, -1)
        head_r = max(2, int(h * 0.075))
        cv2.circle(img, (int(cx), int(torso_top - head_r * 0.8)), head_r, (w.shade + 60,) * 3, -1)
        thick = max(2, int(bw * 0.3))
        for sign in (-1, 1):
            foot_x = cx + sign * phase * h * 0.12
            cv2.line(img, (int(cx + sign * bw * 0.2), int(hip)), (int(foot_x), int(feet)), shade, thick)
            arm_x = cx - sign * phase * h * 0.1
            cv2.line(img, (int(cx + sign * bw * 0.45), int(torso_top + h * 0.05)),
                     (int(arm_x + sign * bw * 0.5), int(hip)), shade, max(2, thick // 2))

    def _sway(self, img: np.ndarray, t: float) -> None:
        x, y, w, h = self.scene.sway
        rng = np.random.default_rng(7)
        # Leaves stay inside the rectangle however they sway, so masking
        # exactly (x, y, w, h) hides the whole bush.
        for k in range(40):
            r = int(min(rng.uniform(4, 12), max(1, (w - 14) // 2), max(1, h // 2)))
            px = x + r + 6 + rng.uniform(0, max(0.0, w - 2 * r - 12))
            py = y + r + rng.uniform(0, max(0.0, h - 2 * r))
            dx = 6 * math.sin(2 * math.pi * 0.7 * t + k)
            color = (30, 90 + 60 * rng.uniform(), 40)
            cv2.circle(img, (int(px + dx), int(py)), r, color, -1)


def write_video(scene: Scene, path: str, fourcc: str = "mp4v") -> str:
    """Write a scene to a video file with OpenCV; returns the path."""
    r = SceneRenderer(scene)
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), scene.fps, (scene.width, scene.height))
    if not vw.isOpened():
        raise RuntimeError(f"cannot write {path} with {fourcc}")
    for i in range(scene.frames):
        vw.write(r.render(i))
    vw.release()
    return path


def encode_with_ffmpeg(scene: Scene, path, output_args: list[str], exe: str = "ffmpeg") -> int:
    """Render a scene into ffmpeg as raw BGR; `output_args` come after that input (codec
    options, further inputs) and before `path`. Returns ffmpeg's exit code."""
    cmd = [exe, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{scene.width}x{scene.height}", "-r", f"{scene.fps:g}", "-i", "-", *output_args, str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    renderer = SceneRenderer(scene)
    try:
        for i in range(scene.frames):
            proc.stdin.write(renderer.render(i).tobytes())
    except BrokenPipeError:
        pass   # ffmpeg stopped early: its exit code says so
    finally:
        proc.stdin.close()
    return proc.wait()


def demo_scene(seed: int = 1, fps: float = 15.0, width: int = 640, height: int = 480,
               cycle_s: float = 60.0) -> Scene:
    """One minute of the endless demo: three visits 15-20 s apart, two light changes."""
    rng = np.random.default_rng(seed)
    walkers = []
    t = 4.0
    while t < cycle_s - 8:
        direction = rng.random() < 0.5
        walkers.append(Walker(
            start_s=t, duration_s=float(rng.uniform(4.0, 6.0)),
            height=float(rng.uniform(0.45, 0.7)), shade=int(rng.uniform(20, 80)),
            x_from=-0.15 if direction else 1.15, x_to=1.15 if direction else -0.15))
        t += float(rng.uniform(15.0, 20.0))
    lights = (Light(12.0, 0.7), Light(30.0, 1.0), Light(47.0, 1.25, ramp_s=0.5), Light(58.0, 1.0, 1.0))
    return Scene(width=width, height=height, fps=fps, duration_s=cycle_s, seed=seed,
                 noise=5.0, walkers=tuple(walkers), lights=lights)


def write_h264(scene: Scene, path, bitrate: int, gop: int, camera_tags: bool = True) -> None:
    """Render a scene to H.264 MP4 in process (PyAV's libx264, B-frames on), with a
    constant bitrate like an IP camera's; `camera_tags` tags it as most camera
    recordings are (BT.709, limited range), else leaves the colour untagged."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=scene_rate(scene))
        st.width, st.height, st.pix_fmt = scene.width, scene.height, "yuv420p"
        cc = st.codec_context
        cc.bit_rate = bitrate
        cc.gop_size = gop
        cc.options = {"preset": "veryfast", "maxrate": str(bitrate), "bufsize": str(2 * bitrate)}
        space = 1 if camera_tags else 5   # BT.709, or the BT.601 swscale assumes when untagged
        if camera_tags:
            cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1, 1
        encode_scene(scene, out, st, space, 1)


def scene_rate(scene: Scene):
    """The scene's frame rate as the Fraction an encoder's stream is opened with."""
    from fractions import Fraction
    return Fraction(scene.fps).limit_denominator(1001)


def encode_scene(scene: Scene, out, stream, colorspace: int, color_range: int) -> None:
    """Render every frame of `scene` into `stream` of the open output `out` (in the
    stream's pixel format, on the matrix and range given), then flush the encoder."""
    import av

    from motionwatch.media.frames import reformatter
    rate = scene_rate(scene)
    renderer = SceneRenderer(scene)
    for i in range(scene.frames):
        frame = av.VideoFrame.from_ndarray(renderer.render(i), format="bgr24")
        frame = reformatter().reformat(frame, format=stream.pix_fmt, dst_colorspace=colorspace,
                                       dst_color_range=color_range)
        frame.pts, frame.time_base = i, 1 / rate
        for pkt in stream.encode(frame):
            out.mux(pkt)
    for pkt in stream.encode(None):
        out.mux(pkt)
