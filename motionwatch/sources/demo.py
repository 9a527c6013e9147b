"""The built-in demo camera: an endless generated room, paced at its frame rate."""

from __future__ import annotations

import time

import numpy as np

from motionwatch.sources.base import LiveSource, SourceOptions, is_index


class DemoSource(LiveSource):
    kind = "demo scene"

    def __init__(self, spec: str = "demo", fps: float = 15.0, paced: bool = True,
                 options: SourceOptions | None = None):
        super().__init__(spec, options)
        from motionwatch.sources.scene import demo_scene   # only the demo draws scenes: the rest start without it
        seed = int(spec.split(":", 1)[1]) if ":" in spec and is_index(spec.split(":", 1)[1]) else 1
        self.scene = demo_scene(seed=seed, fps=fps)
        self.fps = fps
        self.size = (self.scene.width, self.scene.height)
        self.paced = paced
        self._renderer = None
        self._i = 0
        self._start = 0.0

    def _connect(self) -> None:
        from motionwatch.sources.scene import SceneRenderer
        self._renderer = SceneRenderer(self.scene, whole_noise=True)
        self._i = 0
        self._start = time.monotonic()

    def _grab(self) -> np.ndarray | None:
        due = self._start + self._i / self.fps
        if self.paced:
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return None
        img = self._renderer.render(self._i % self.scene.frames)
        self._i += 1
        return img
