"""Every check a config must pass before a command starts, in one place.

`check-config` and `run` both call `check_config`, so a config that
`check-config` calls OK is never refused by `run` a moment later, and a
problem is found at start (one line, exit 2) instead of inside a capture loop
that would restart for ever. `scan` and `tune` call the parts they use.
What only a running camera can tell (the picture size a polygon mask is
drawn on, a camera that is unplugged) stays with the capture loop.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
from pathlib import Path

from motionwatch.config import Config, HooksConfig, MqttConfig
from motionwatch.errors import ConfigError, SourceError


def check_config(cfg: Config, *, web: bool = True, source_flag: bool = False) -> None:
    """Raise ConfigError for the first thing in `cfg` that the command would trip over.

    `source_flag`: the camera's source came from `--source` (named so in messages)."""
    try:
        _check_all(cfg, web, source_flag)
    except ConfigError as e:
        text = str(e)
        if cfg.source_file and not text.startswith(("--", cfg.source_file)):
            raise ConfigError(f"{cfg.source_file}: {text}") from None   # which file to edit
        raise


def _check_all(cfg: Config, web: bool, source_flag: bool) -> None:
    check_recordings_folder(cfg.recordings.path)
    for i, cam in enumerate(cfg.cameras):
        check_source(cam.source, "--source" if source_flag else f"cameras[{i}].source")
    check_masks(cfg)
    check_hooks(cfg.hooks)
    if web and cfg.web.enabled:
        from motionwatch.pipeline.web_bind import check_bind
        check_bind(cfg.web, cfg.web.host)
    if cfg.mqtt.enabled:
        check_mqtt(cfg.mqtt)


def check_masks(cfg: Config) -> None:
    """Every camera's mask image is there, readable and leaves something to watch."""
    from motionwatch.detect.masks import check_mask_image
    base = config_folder(cfg)
    for cam in cfg.cameras:
        check_mask_image(cam, base)


def config_folder(cfg: Config) -> Path | None:
    """Where relative paths in the config file are also looked for."""
    return Path(cfg.source_file).parent if cfg.source_file else None


def check_recordings_folder(path: str, label: str = "recordings.path") -> None:
    """The recordings folder is, or can be made, a folder this user writes in.

    Nothing is created here: `check-config` must leave the disk as it was. (The
    path's characters were checked when it was read: config.py, cli.py.)"""
    target = Path(path)
    existing = target
    while not _lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is not a folder" if existing == target else f"cannot be made: {existing} is not a folder"
        raise ConfigError(f"{label}: {path!r} {what}; allowed: a folder motionwatch can write in")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == target else f" (in {existing}, where it would be made)"
        raise ConfigError(f"{label}: {path!r}: permission denied{where}; "
                          "allowed: a folder the user running motionwatch can write in")


def check_source(spec: str, label: str) -> None:
    """What a source string shows without opening it: a spec that can never open.

    A camera that is merely absent now is not refused: it may be plugged in or
    boot later, and `run` keeps retrying it."""
    from motionwatch.config.source_spec import is_index, source_kind
    from motionwatch.sources.base import MAX_CAMERA_INDEX
    if "\0" in spec:
        raise ConfigError(f"{label}: {spec!r} is not allowed; allowed: a source without NUL bytes")
    kind = source_kind(spec)
    try:
        if kind == "file":
            check_regular_file(spec, label)
        elif kind == "pipe":
            from motionwatch.sources.pipe import PipeSource
            PipeSource(spec)   # splits the command; starts nothing
        elif kind == "picamera2":
            from motionwatch.sources.picamera2 import parse_spec
            parse_spec(spec)
        elif is_index(spec) and int(spec) > MAX_CAMERA_INDEX:
            raise ConfigError(f"{label}: {spec} is out of range; allowed: a camera index 0..{MAX_CAMERA_INDEX}")
    except SourceError as e:
        raise ConfigError(f"{label}: {e}") from None


def check_regular_file(path: str, label: str) -> None:
    """A video named by the user is a regular file when it exists: a FIFO or a
    device would block the decoder for ever (checked without opening it)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return   # missing: the source says so when it opens, with what it tried
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise ConfigError(f"{label}: {path!r} is {kind}; allowed: a regular video file")


def check_hooks(hooks: HooksConfig) -> None:
    """Each hook's program can be run: a hook that can never start would only be
    logged as failed at every event, long after the user set it up."""
    for name in ("on_event_start", "on_event_end", "on_camera_lost", "on_camera_found"):
        argv = getattr(hooks, name)
        if argv and shutil.which(argv[0]) is None:
            raise ConfigError(f"hooks.{name}: {argv[0]!r} is not a program that can be run (not found, "
                              "or not executable); allowed: a program on PATH or its full path (no shell is used)")


def check_mqtt(cfg: MqttConfig) -> None:
    """paho-mqtt is importable and a configured CA file is usable."""
    from motionwatch.sinks.notify.mqtt import paho_client
    paho_client()   # the same import, and message, as the sink's
    if cfg.tls and cfg.ca_file:
        import ssl
        try:
            ssl.create_default_context(cafile=cfg.ca_file)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ConfigError(f"mqtt.ca_file: cannot use {cfg.ca_file!r} for TLS: {e}") from None


def check_seconds(value: float | None, flag: str) -> None:
    """A duration given on the command line: a finite positive number of seconds."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag}: {value:g} is out of range; allowed: a positive, finite number of seconds")


def _lexists(p: Path) -> bool:
    try:
        return os.path.lexists(p)
    except (OSError, ValueError):
        return False
