"""Every setting as a frozen dataclass; defaults live here and nowhere else.

`load_config(path)` reads YAML and validates it field by field: unknown keys,
wrong types and out-of-range values raise `ConfigError` naming the file, the
line, the key path, the bad value and what is allowed (with a did-you-mean).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable

from motionwatch.errors import ConfigError


def opt(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
        choices: tuple | None = None, parse: Callable | None = None,
        allowed: str | None = None, factory: Callable | None = None) -> Any:
    """A config field with its bounds and one-line meaning (Frigate-style)."""
    meta = {"help": help, "lo": lo, "hi": hi, "choices": choices, "parse": parse,
            "allowed": allowed}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class _Invalid(Exception):
    """Raised by field parsers; carries the 'allowed' text."""


# --- custom value parsers -------------------------------------------------

def _parse_threshold(v: Any) -> int | str:
    if isinstance(v, str) and v.lower() in ("auto", "otsu"):
        return v.lower()
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 254:
        return v
    raise _Invalid('an integer 1..254, "auto" or "otsu"')


def _parse_polygons(v: Any) -> tuple:
    allowed = "a list of polygons, each a list of at least 3 [x, y] points in source pixels"
    if v is None:
        return ()
    if not isinstance(v, list):
        raise _Invalid(allowed)
    polys = []
    for poly in v:
        if not isinstance(poly, list) or len(poly) < 3:
            raise _Invalid(allowed)
        pts = []
        for p in poly:
            if (not isinstance(p, list) or len(p) != 2
                    or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)):
                raise _Invalid(allowed)
            pts.append((float(p[0]), float(p[1])))
        polys.append(tuple(pts))
    return tuple(polys)


def _parse_command(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, list) and v and all(isinstance(a, str) and a for a in v):
        return tuple(v)
    raise _Invalid('null or a list of strings: the program and its arguments, '
                   'e.g. ["/usr/local/bin/notify", "--fast"] (no shell is used)')


def _parse_source(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return str(v)
    if isinstance(v, str) and v.strip():
        return v.strip()
    raise _Invalid("a camera index (0), a device path, a URL, a video file, pipe:COMMAND, picamera2[:N] or demo")


# The recordings root holds one folder per camera beside the index and its side
# files (events.db-wal, events.db.damaged-*); a camera folder of such a name
# would be the index itself. Compared without case: a USB disk may be FAT/exFAT.
RESERVED_NAME_PREFIX = "events.db"


def _parse_hosts(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    ok = r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?"
    if isinstance(v, list) and all(isinstance(h, str) and re.fullmatch(ok, h) for h in v):
        return tuple(h.strip("[]").lower() for h in v)
    raise _Invalid('a list of host names or addresses the browser uses for this server, without port, '
                   'e.g. ["pi.local", "192.168.1.20", "*.home.example"]')


def _parse_proxies(v: Any) -> tuple[str, ...]:
    import ipaddress
    if v is None:
        return ()
    if isinstance(v, list) and all(isinstance(a, str) for a in v):
        try:
            return tuple(str(ipaddress.ip_network(a.strip(), strict=False)) for a in v)
        except ValueError:
            pass
    raise _Invalid('a list of addresses or networks of reverse proxies in front of this server, '
                   'e.g. ["127.0.0.1"] or ["192.168.1.0/24"]')


def _parse_name(v: Any) -> str:
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
        if not v.lower().startswith(RESERVED_NAME_PREFIX):
            return v
    raise _Invalid("1-64 characters of letters, digits, '_', '-' or '.', starting with a letter or digit, "
                   f"and not starting with {RESERVED_NAME_PREFIX!r} (the index's name in the recordings folder)")


def _parse_folder(v: Any) -> str:
    if isinstance(v, str) and v.strip() and v.isprintable():
        return v
    raise _Invalid("a folder path: not empty, no NUL bytes, line breaks or other control characters")


def _parse_webhook_url(v: Any) -> str:
    if isinstance(v, str) and v.isprintable() and v.lower().startswith(("http://", "https://")):
        return v
    raise _Invalid("an http:// or https:// URL")


# --- the settings ------------------------------------------------------------

@dataclass(frozen=True)
class DetectionConfig:
    width: int = opt(320, "width in pixels of the image motion is detected on", lo=32, hi=1920)
    blur: int = opt(5, "Gaussian blur kernel size (odd; 1 = none) applied before differencing",
                    lo=1, hi=31, allowed="an odd integer 1..31")
    pixel_threshold: Any = opt("auto", "grey-level difference that counts a pixel as changed",
                               parse=_parse_threshold)
    min_pixel_threshold: int = opt(12, "floor for the auto threshold in grey levels", lo=1, hi=254)
    dilate: int = opt(2, "dilation iterations on the change mask (joins a body's parts)", lo=0, hi=10)
    erode: int = opt(1, "erosion iterations on the change mask (removes specks)", lo=0, hi=10)
    kernel: int = opt(3, "size of the square dilate/erode kernel in pixels", lo=1, hi=15)
    background_alpha: float = opt(0.05, "background learning rate per frame at 10 fps", lo=0.0001, hi=1.0)
    static_seconds: float = opt(30.0, "something that stops and stays this long joins the background",
                                lo=1.0, hi=3600.0)
    trigger_fraction: float = opt(0.002, "changed share of the unmasked picture that counts as motion",
                                  lo=0.0001, hi=1.0)
    max_fraction: float = opt(0.6, "above this changed share a frame is a lighting change, not motion",
                              lo=0.01, hi=1.0)
    min_frames: int = opt(3, "consecutive frames over the trigger needed to start an event", lo=1, hi=1000)
    min_blob_area: int = opt(12, "changed regions smaller than this (detection pixels) are ignored",
                             lo=0, hi=100000)
    warmup_seconds: float = opt(0.5, "no motion is reported for this long after start or reconnect",
                                lo=0.0, hi=600.0)
    lighting_compensation: bool = opt(True, "cancel global brightness changes before differencing")
    dynamic_k: float = opt(4.0, "a pixel must change this many times its usual change (learns trees, water; "
                           "0 = off)", lo=0.0, hi=20.0)
    stabilize: bool = opt(True, "estimate camera shake and difference after aligning the picture")
    fps: float = opt(0.0, "analyse at most this many frames per second (0 = every frame)", lo=0.0, hi=240.0)
    fast_decode: bool = opt(True, "decode H.264/HEVC video files for detection without the deblocking "
                            "filter (less CPU); saved snapshots are decoded again in full; live streams "
                            "always decode in full")


@dataclass(frozen=True)
class CameraConfig:
    name: str = opt("demo", "camera name used in folders, the index and topics", parse=_parse_name)
    source: str = opt("demo", "camera index (/dev/videoN), V4L2 device path, URL (RTSP, HTTP, HLS; MJPEG "
                      "read directly), video file, pipe:COMMAND, picamera2 or demo",
                      parse=_parse_source)
    mask: tuple = opt((), "polygons (lists of [x, y] source pixels) whose area is ignored",
                      parse=_parse_polygons)
    mask_image: str | None = opt(None, "image the size of the picture: black = ignore, white = watch")
    timeout_seconds: float = opt(10.0, "no frame for this long means the camera is lost", lo=0.5, hi=600.0)
    detection: dict = opt(None, "per-camera overrides of any detection key", factory=dict)


@dataclass(frozen=True)
class EventsConfig:
    gap_seconds: float = opt(4.0, "an event ends after this long without motion", lo=0.0, hi=3600.0)
    max_seconds: float = opt(300.0, "a longer event's clip is split into numbered parts", lo=1.0, hi=86400.0)
    pre_roll_seconds: float = opt(2.0, "clip time kept from before the trigger", lo=0.0, hi=60.0)
    post_roll_seconds: float = opt(2.0, "clip time kept after the last motion", lo=0.0, hi=60.0)
    clip: bool = opt(True, "record a video clip of each event")
    clip_width: int = opt(0, "clip width in pixels (0 = source resolution); narrower than an H.264 "
                          "source makes auto encode instead of copying its packets", lo=0, hi=7680)
    clip_codec: str = opt("auto", "clip format: auto (an H.264 source's clips are its own packets copied "
                          "into MP4, other sources encoded to H.264), copy (also HEVC), h264 (always "
                          "encode H.264) or mp4v (encode MPEG-4 Part 2)",
                          choices=("auto", "copy", "h264", "mp4v"))
    snapshot: str = opt("best", "which frame to save: best (most change), first or both",
                        choices=("best", "first", "both"))
    annotate: bool = opt(False, "also save a copy of the snapshot with boxes and time drawn on it")
    thumbnail_width: int = opt(320, "width of the small snapshot the review page lists", lo=32, hi=1920)


@dataclass(frozen=True)
class RecordingsConfig:
    path: str = opt("recordings", "folder that holds event folders and events.db", parse=_parse_folder)
    jpeg_quality: int = opt(90, "JPEG quality of snapshots", lo=1, hi=100)
    max_size_gb: float = opt(0.0, "delete oldest events when recordings exceed this (0 = no limit)",
                             lo=0.0, hi=1e6)
    max_age_days: float = opt(0.0, "delete events older than this (0 = keep forever)", lo=0.0, hi=36500.0)
    min_free_gb: float = opt(1.0, "delete oldest events to keep this much disk free, at most a tenth "
                             "of the disk (0 = off)",
                             lo=0.0, hi=1e6)
    min_free_percent: float = opt(0.0, "delete oldest events to keep this share of disk free (0 = off)",
                                  lo=0.0, hi=99.0)
    retention_interval_seconds: float = opt(300.0, "how often limits are enforced while running",
                                            lo=10.0, hi=86400.0)


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = opt(False, "serve the review and live UI inside `motionwatch run`")
    host: str = opt("127.0.0.1", "address to bind; anything but loopback needs a password")
    port: int = opt(8765, "TCP port", lo=1, hi=65535)
    password: str | None = opt(None, "password for the web UI (required off loopback)")
    password_env: str | None = opt("MOTIONWATCH_WEB_PASSWORD", "environment variable that may hold the password")
    live_fps: float = opt(5.0, "frame rate of the live MJPEG view", lo=0.2, hi=30.0)
    allowed_hosts: tuple = opt((), "extra names the browser may use for this server (Host header)",
                               parse=_parse_hosts)
    trusted_proxies: tuple = opt((), "reverse proxies whose X-Forwarded-For names the client (login throttle)",
                                 parse=_parse_proxies)
    tls_cert: str | None = opt(None, "PEM certificate (chain) file: serve HTTPS instead of HTTP")
    tls_key: str | None = opt(None, "PEM private key file of tls_cert (null when the cert file holds it)")


@dataclass(frozen=True)
class HooksConfig:
    on_event_start: Any = opt(None, "command run when an event starts", parse=_parse_command)
    on_event_end: Any = opt(None, "command run when an event ends", parse=_parse_command)
    on_camera_lost: Any = opt(None, "command run when a camera stops delivering frames",
                              parse=_parse_command)
    on_camera_found: Any = opt(None, "command run when a lost camera delivers frames again",
                               parse=_parse_command)
    timeout_seconds: float = opt(30.0, "a hook still running after this long is killed", lo=0.1, hi=3600.0)


@dataclass(frozen=True)
class WebhookConfig:
    url: str = opt("", "http(s) URL that receives each ended event as a JSON POST", parse=_parse_webhook_url)
    snapshot: bool = opt(False, "send the snapshot too, as multipart/form-data")
    timeout_seconds: float = opt(10.0, "per-request timeout", lo=0.1, hi=300.0)
    retries: int = opt(3, "attempts after the first before the event is dropped", lo=0, hi=100)


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = opt(False, "publish motion state and events to an MQTT broker")
    host: str = opt("localhost", "broker host name or address")
    port: int = opt(1883, "broker TCP port", lo=1, hi=65535)
    username: str | None = opt(None, "broker user name")
    password: str | None = opt(None, "broker password")
    tls: bool = opt(False, "connect with TLS")
    ca_file: str | None = opt(None, "CA certificate file for TLS (system CAs when null)")
    topic_prefix: str = opt("motionwatch", "first part of every topic")
    discovery: bool = opt(True, "publish Home Assistant MQTT discovery messages")
    discovery_prefix: str = opt("homeassistant", "Home Assistant discovery topic prefix")


@dataclass(frozen=True)
class Config:
    cameras: tuple = opt(None, "the cameras to watch", factory=lambda: (CameraConfig(),))
    detection: DetectionConfig = opt(None, "how motion is found", factory=DetectionConfig)
    events: EventsConfig = opt(None, "how motion becomes events", factory=EventsConfig)
    recordings: RecordingsConfig = opt(None, "where and how much is kept", factory=RecordingsConfig)
    web: WebConfig = opt(None, "the review and live web UI", factory=WebConfig)
    hooks: HooksConfig = opt(None, "commands run on events", factory=HooksConfig)
    webhooks: tuple = opt(None, "URLs that receive events", factory=tuple)
    mqtt: MqttConfig = opt(None, "MQTT and Home Assistant", factory=MqttConfig)
    source_file: str | None = None  # where it was loaded from, for messages

    def camera_detection(self, cam: CameraConfig) -> DetectionConfig:
        """The detection settings of one camera: globals plus its overrides."""
        return replace(self.detection, **cam.detection) if cam.detection else self.detection


# Element types of list-valued sections.
_LIST_ITEMS = {("Config", "cameras"): CameraConfig, ("Config", "webhooks"): WebhookConfig}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


# --- loading -------------------------------------------------------------------

class _Ctx:
    """File name and line numbers of each key path, for messages."""

    def __init__(self, filename: str, lines: dict[str, int]):
        self.filename = filename
        self.lines = lines

    def fail(self, path: str, problem: str) -> ConfigError:
        line = self.lines.get(path)
        where = f"{self.filename}:{line}" if line else self.filename
        shown = path if path.isprintable() else repr(path)  # a key with a newline stays one line
        return ConfigError(f"{where}: {shown}: {problem}")


# A config is a page of YAML. Refusing more keeps a wrong file (a video, a log,
# /dev/zero) from being read into memory, and aliases from multiplying the work.
MAX_CONFIG_BYTES = 1 << 20
MAX_KEY_PATHS = 100_000


def _record_lines(root: yaml.Node, filename: str) -> dict[str, int]:
    """The line of every key path. An alias is the same node object as its anchor,
    so a node met again is not walked again: nested aliases ("billion laughs")
    would otherwise multiply the paths beyond any memory."""
    import yaml
    out: dict[str, int] = {}
    seen: set[int] = set()
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        out.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(out) > MAX_KEY_PATHS:
            raise ConfigError(f"{filename}: more than {MAX_KEY_PATHS} keys and list items; "
                              "allowed: a config of a few hundred")
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                sub = f"{path}.{k.value}" if path else str(k.value)
                out[sub] = k.start_mark.line + 1
                stack.append((v, sub))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node.value))
    return out


def _show(v: Any) -> str:
    if isinstance(v, str):
        text = repr(v)
    else:  # odd keys make flow-style YAML wrap; a message stays one line
        import yaml
        text = " ".join(yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n").split())
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed(f, hint) -> str:
    m = f.metadata
    if m.get("allowed"):
        return m["allowed"]
    if m.get("choices"):
        return "one of " + ", ".join(m["choices"])
    base = hint if not isinstance(hint, str) else hint
    text = _TYPE_NAMES.get(base, "a value")
    if m.get("lo") is not None and m.get("hi") is not None:
        text += f" {m['lo']:g}..{m['hi']:g}"
    return text


def _scalar(f, hint: Any, value: Any, path: str, ctx: _Ctx) -> Any:
    m = f.metadata
    if m.get("parse"):
        try:
            return m["parse"](value)
        except _Invalid as e:
            raise ctx.fail(path, f"{_show(value)} is not allowed; allowed: {e}") from None
    optional = "None" in str(hint)
    if value is None and optional:
        return None
    base = {"int": int, "float": float, "bool": bool, "str": str}.get(str(hint).split(" ")[0], hint)
    if str(hint).startswith("str"):
        base = str
    ok = (
        (base is bool and isinstance(value, bool))
        or (base is int and isinstance(value, int) and not isinstance(value, bool))
        or (base is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (base is str and isinstance(value, str))
    )
    if not ok:
        extra = " or null" if optional else ""
        raise ctx.fail(path, f"{_show(value)} is the wrong type; allowed: {_allowed(f, base)}{extra}")
    shown = _show(value)
    if base is float:
        value = float(value)
        if value != value:  # NaN passes every range comparison; it is never a setting
            raise ctx.fail(path, f"{shown} is not a number; allowed: {_allowed(f, base)}")
    lo, hi = m.get("lo"), m.get("hi")
    if base in (int, float) and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        raise ctx.fail(path, f"{shown} is out of range; allowed: {_allowed(f, base)}")
    if m.get("choices") and value not in m["choices"]:
        raise ctx.fail(path, f"{_show(value)} is not allowed; allowed: {_allowed(f, base)}")
    if f.name == "blur" and value % 2 == 0:
        raise ctx.fail(path, f"{_show(value)} is even; allowed: {_allowed(f, base)}")
    return value


def _unknown(cls, key: str, path: str, ctx: _Ctx) -> ConfigError:
    names = [f.name for f in fields(cls) if f.name != "source_file"]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return ctx.fail(path, f"unknown key; {hint}allowed keys: {', '.join(names)}")


def _build(cls, data: Any, path: str, ctx: _Ctx):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ctx.fail(path or "(top level)", f"{_show(data)} is not a mapping of keys to values")
    known = {f.name: f for f in fields(cls) if f.name != "source_file"}
    for key in data:
        if not isinstance(key, str) or key not in known:
            raise _unknown(cls, str(key), f"{path}.{key}" if path else str(key), ctx)
    values = {}
    for key, value in data.items():
        f = known[key]
        sub = f"{path}.{key}" if path else key
        values[key] = _value(cls, f, value, sub, ctx)
    return cls(**values)


def _value(cls, f, value: Any, path: str, ctx: _Ctx) -> Any:
    item = _LIST_ITEMS.get((cls.__name__, f.name))
    if item is not None:
        if value is None:
            value = []
        if not isinstance(value, list):
            raise ctx.fail(path, f"{_show(value)} is not a list; allowed: a list of {item.__name__} entries")
        return tuple(_build(item, v, f"{path}[{i}]", ctx) for i, v in enumerate(value))
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    if is_dataclass(default):
        return _build(type(default), value, path, ctx)
    if cls is CameraConfig and f.name == "detection":
        return _detection_overrides(value, path, ctx)
    return _scalar(f, f.type, value, path, ctx)


def _detection_overrides(value: Any, path: str, ctx: _Ctx) -> dict:
    """Per-camera overrides: validated like `detection`, kept as a dict."""
    built = _build(DetectionConfig, value, path, ctx)
    return {k: getattr(built, k) for k in (value or {})}


def _check_cameras(cfg: Config, ctx: _Ctx) -> None:
    if not cfg.cameras:
        raise ctx.fail("cameras", "empty; allowed: a list of at least one camera")
    seen = set()
    for i, cam in enumerate(cfg.cameras):
        if cam.name in seen:
            raise ctx.fail(f"cameras[{i}].name", f"{cam.name!r} is used twice; allowed: unique names")
        seen.add(cam.name)


def _check_webhooks(cfg: Config, ctx: _Ctx) -> None:
    for i, hook in enumerate(cfg.webhooks):
        if not hook.url:  # the only field without a usable default
            raise ctx.fail(f"webhooks[{i}]", "has no url; allowed: an http:// or https:// URL")


def parse_config(text: str, filename: str = "<config>") -> Config:
    """Validate YAML text into a Config; raise ConfigError for anything wrong."""
    # Imported here: a run without a config file (most scans) never needs the
    # YAML parser, and every command's start-up pays for what it imports.
    import yaml
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except (ValueError, TypeError, RecursionError) as e:  # e.g. absurd timestamps, deep nesting
        raise ConfigError(f"{filename}: not a usable YAML document: {e}") from None
    lines = _record_lines(node, filename) if node is not None else {}
    ctx = _Ctx(filename, lines)
    cfg = _build(Config, data, "", ctx)
    cfg = replace(cfg, source_file=filename)
    _check_cameras(cfg, ctx)
    _check_webhooks(cfg, ctx)
    return cfg


def load_config(path: str | Path | None) -> Config:
    """Load a config file, or the built-in defaults when path is None."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        # Opened without blocking and checked before reading: a FIFO or a device
        # (/dev/zero) named as the config would otherwise hang or fill memory.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{_shown_path(p)}: not a regular file; allowed: a YAML config file")
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{_shown_path(p)}: larger than {MAX_CONFIG_BYTES >> 20} MiB; allowed: a YAML config file")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{_shown_path(p)}: config file not found") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name, or not UTF-8
        raise ConfigError(f"{_shown_path(p)}: cannot read config file: {e}") from None
    return parse_config(text, _shown_path(p))


def _shown_path(p: Path) -> str:
    """A path as messages show it: one line, whatever characters it holds."""
    text = str(p)
    return text if text.isprintable() else repr(text)


def to_plain(obj: Any) -> Any:
    """Config as plain YAML-able data (for `check-config`)."""
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj) if f.name != "source_file"}
    if isinstance(obj, (tuple, list)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
