"""The config a command runs with: the file (or the built-in defaults) with the
command-line options `--recordings`, `--source` and `--camera` applied on top.

Here, below every command, so that `scan`'s archive workers and `serve` build
the same config as `run` without importing the command line.
"""

from __future__ import annotations

from dataclasses import replace

from motionwatch.config.fields import Invalid, parse_folder, parse_name
from motionwatch.config.load import load_config
from motionwatch.config.models import CameraConfig, Config
from motionwatch.config.source_spec import camera_name_for
from motionwatch.errors import ConfigError


def effective_config(options, default_name: str | None = None) -> Config:
    """Load `options.config` and apply `options.recordings` / `.source` / `.camera`
    (an argparse namespace; a missing attribute counts as not given)."""
    cfg = load_config(getattr(options, "config", None))
    if getattr(options, "recordings", None):
        try:
            parse_folder(options.recordings)
        except Invalid as e:
            raise ConfigError(f"--recordings: {options.recordings!r} is not allowed; allowed: {e}") from None
        cfg = replace(cfg, recordings=replace(cfg.recordings, path=options.recordings))
    src = getattr(options, "source", None)
    if src is not None:
        name = getattr(options, "camera", None) or default_name or camera_name_for(src)
        base = cfg.cameras[0] if cfg.cameras else CameraConfig()
        try:
            parse_name(name)
        except Invalid as e:
            raise ConfigError(f"--camera: {name!r} is not allowed; allowed: {e}") from None
        cfg = replace(cfg, cameras=(replace(base, name=name, source=src),))
    elif getattr(options, "camera", None):
        cams = [c for c in cfg.cameras if c.name == options.camera]
        if not cams:
            names = ", ".join(c.name for c in cfg.cameras)
            raise ConfigError(f"--camera: no camera named {options.camera!r}; configured: {names}")
        cfg = replace(cfg, cameras=tuple(cams))
    return cfg
