"""Every setting: one frozen pydantic model per section; defaults live here and nowhere else.

The models are pydantic dataclasses rather than BaseModels so that code
elsewhere keeps deriving configs with `dataclasses.replace` (which validates
again). Unknown keys are refused (extra="forbid"). Each docstring is the
section's introduction in the commented default file and on the docs page.
"""

from __future__ import annotations

import functools
from dataclasses import fields, replace
from typing import Annotated, Any, Literal, Optional

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from motionwatch.config.fields import (
    Command, Doc, Folder, Hosts, Invalid, Name, Odd, Polygons, Proxies, Source, Threshold, WebhookUrl,
    flag, integer, number, parsed, section, text,
)
from motionwatch.config.messages import Where

STRICT = ConfigDict(extra="forbid")


def config_model(cls: type) -> type:
    """A frozen pydantic dataclass refusing unknown keys, whose constructor raises ConfigError.

    Code that derives a config from a flag (`replace(cam, source=args.source)`)
    then fails like a bad file does: one line, exit 2, not a traceback."""
    model = dataclass(frozen=True, config=STRICT)(cls)
    validating_init = model.__init__

    @functools.wraps(validating_init)
    def __init__(self, *args, **kwargs):
        try:
            validating_init(self, *args, **kwargs)
        except ValidationError as e:
            raise Where(model).first(e) from None

    model.__init__ = __init__
    return model


def _empty_when_null(model: type) -> BeforeValidator:
    """`detection:` with nothing under it is a section left at its defaults (the
    schema says so too, or an editor would mark what motionwatch accepts)."""
    return BeforeValidator(lambda v: {} if v is None else v, json_schema_input_type=Optional[model])


def _no_entries_when_null(model: type) -> BeforeValidator:
    return BeforeValidator(lambda v: [] if v is None else v, json_schema_input_type=Optional[list[model]])


@config_model
class DetectionConfig:
    """How motion is found. Defaults are tuned for an ordinary indoor webcam (640x480 to
    1080p, 10-30 fps): a person crossing the room at 3-10 m changes 0.5-10% of the picture."""

    width: int = integer(320, "width in pixels of the image motion is detected on", 32, 1920, notes=(
        "The aspect is kept and the picture is never upscaled. Smaller is faster and\n"
        "less sensitive to tiny things. A video shown turned a quarter (a phone shot\n"
        "upright) is detected on at the turn of its stored picture's size, as the\n"
        "same video unturned."))
    blur: Odd = integer(5, "Gaussian blur kernel size (odd; 1 = none) applied before differencing",
                        1, 31, allowed="an odd integer 1..31",
                        notes="It smooths sensor noise before frames are compared.")
    pixel_threshold: Threshold = parsed("auto", "grey-level difference that counts a pixel as changed", notes=(
        "auto  - 4.5 x the noise measured while the scene is quiet (as Motion's\n"
        "        noise_tune does), never below min_pixel_threshold; the same config\n"
        "        then works on a bright desk and a dark, noisy hallway.\n"
        "otsu  - Otsu's method on each difference image. Good when there is motion,\n"
        "        but on a frame with no motion it splits pure noise in two, so it is\n"
        "        kept at or above min_pixel_threshold.\n"
        "N     - a fixed level 1..254 (Motion's default is 25 on unblurred pixels)."))
    min_pixel_threshold: int = integer(12, "floor for the auto and otsu thresholds", 1, 254,
                                       unit="grey levels")
    dilate: int = integer(2, "dilation iterations on the change mask (joins a body's parts into one region)",
                          0, 10)
    erode: int = integer(1, "erosion iterations after dilation (trims the grown edges, removes specks)", 0, 10)
    kernel: int = integer(3, "size of the square (elliptical) dilate/erode kernel", 1, 15, unit="pixels")
    background_alpha: float = number(0.05, "background learning rate per frame at 10 fps", 0.0001, 1.0, notes=(
        "Scaled to the real frame rate, so the background adapts in the same time at\n"
        "any fps: 0.05 follows a slow change in about 2 s. Pixels that are changing\n"
        "are not learned."))
    static_seconds: float = number(30.0, "something that stops and stays this long joins the background",
                                   1.0, 3600.0, unit="seconds", notes=(
        "A parked car or a moved chair then cannot hold an event open forever."))
    trigger_fraction: float = number(0.002, "changed share of the watched (unmasked) picture that counts as motion",
                                     0.0001, 1.0, notes=(
        "0.002 = 0.2%, a person about a tenth of the picture's height (far away).\n"
        "Lower catches smaller things sooner but lets leaves, clouds and rain through;\n"
        "`motionwatch tune` shows your scene's noise floor."))
    max_fraction: float = number(0.6, "above this changed share a frame is a lighting change, not motion",
                                 0.01, 1.0, notes=(
        "A change compensation could not explain (lights on in one half of the room,\n"
        "an IR switch): no motion is reported and the background re-learns within ~1 s."))
    min_frames: int = integer(3, "consecutive frames over the trigger needed to start an event", 1, 1000,
                              notes=(
        "This filters single-frame glitches. Counted in the source's frames: with\n"
        "detection.fps below the source's rate, fewer analysed frames (never below 2)."))
    min_blob_area: int = integer(12, "changed regions smaller than this are ignored (speckle, rain, insects)",
                                 0, 100000, unit="detection pixels", notes=(
        "The trade-off: at width 320 a person 60 m away is only about 10-20 pixels,\n"
        "so raising this loses small far subjects."))
    warmup_seconds: float = number(0.5, "no motion is reported for this long after start and every reconnect",
                                   0.0, 600.0, unit="seconds", notes=(
        "The background is learned meanwhile (half a second is enough: it is averaged\n"
        "fast, lighting is compensated, and the noise floor keeps adapting; something\n"
        "already moving when it ends is still caught)."))
    lighting_compensation: bool = flag(True, "cancel global brightness changes before differencing", notes=(
        "A lamp, auto-exposure, flicker or clouds are cancelled with a robust per-frame\n"
        "gain/offset estimate, so a person walking in while the light changes is still seen."))
    dynamic_k: float = number(4.0, "a pixel must change this many times its usual change (learns trees, water; "
                              "0 = off)", 0.0, 20.0, notes=(
        "The usual change is learned per pixel: leaves, ripples and a swaying curtain\n"
        "raise their own threshold, a still wall keeps the noise threshold. Lower to see\n"
        "more in front of trees, raise if foliage still triggers; 0 = one threshold for\n"
        "all. See docs/detection.md."))
    stabilize: bool = flag(True, "estimate camera shake and difference after aligning the picture", notes=(
        "Phase correlation at detection size, so a shaking mount is not motion."))
    fps: float = number(15.0, "analyse at most this many frames per second (0 = every frame)", 0.0, 240.0,
                        notes=(
        "Every frame is still read, and clips keep every frame. A 25 or 30 fps camera\n"
        "at 15 is analysed every second frame, at fps 10 every third (8.3 or 10 a\n"
        "second). 15 found every visit of the scene suite and the real clips, as soon\n"
        "as every frame did, for about half the detector's CPU; 10 found someone in\n"
        "view at start late. docs/media.md has the table. A scan analyses the frame\n"
        "after a due B-frame when that one is decoded anyway (docs/media.md)."))
    fast_decode: bool = flag(True, "decode H.264/HEVC video (files, and live streams up to 1280x720) for "
                             "detection without the deblocking filter (less CPU); saved snapshots are decoded "
                             "again in full (a live stream's from the packets of their GOP)", notes=(
        "A 320-px detection picture cannot tell (the same events on the real and\n"
        "generated H.264 clips; docs/performance.md)."))


def _overrides_of(cls: type) -> type:
    """A model with the fields of `cls`, each optional (null = the global value).

    Made from `cls` rather than written out, so a detection setting added later
    can be overridden per camera without a second list to keep in step."""
    annotations, defaults = {}, {}
    for name, info in cls.__pydantic_fields__.items():
        inner = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        annotations[name] = Optional[inner]
        defaults[name] = Field(None, description=info.description, json_schema_extra=info.json_schema_extra)
    body = {"__annotations__": annotations, "__doc__": f"Per-camera overrides of {cls.__name__}.",
            "__module__": __name__, **defaults}
    model = config_model(type("DetectionOverrides", (), body))
    model.overrides = cls   # the loader words its messages after the overridden field
    return model


DetectionOverrides = _overrides_of(DetectionConfig)


@config_model
class CameraConfig:
    """Each camera runs its own capture loop."""

    name: Name = parsed("demo", "camera name used in recording folders, the index and MQTT topics")
    source: Source = parsed("demo", "camera index (/dev/videoN), V4L2 device path, URL (RTSP, HTTP, HLS; MJPEG "
                            "read directly), video file, pipe:COMMAND, picamera2 or demo", notes=(
        "0, 1, ...           a camera by index (N is /dev/videoN)\n"
        "/dev/video0         a camera by device path (V4L2; its MJPEG mode when it has one)\n"
        "rtsp://user:pass@host/stream, http(s)://...   a network camera or stream\n"
        "                    (through FFmpeg; an MJPEG camera over HTTP is read directly)\n"
        "/path/to/video.mp4  a video file, played at its own frame rate like a camera\n"
        "pipe:COMMAND        an MJPEG stream on a command's stdout, run without a shell,\n"
        "                    e.g. pipe:rpicam-vid -t 0 --codec mjpeg -o -\n"
        "picamera2, picamera2:N, picamera2:N:1920x1080\n"
        "                    a Raspberry Pi camera through picamera2 (main stream\n"
        "                    1280x720 unless given; motion found on a 320 px luma stream)\n"
        "demo                the built-in generated demo room (no camera needed)"))
    mask: Polygons = parsed((), "polygons (lists of [x, y] source pixels) whose area is ignored", notes=(
        "Areas to ignore: a clock overlay, a tree, the street. Motion there never\n"
        "counts, and the changed fraction is computed over the rest of the picture.\n"
        "Example: [[[0, 0], [640, 0], [640, 40], [0, 40]]] ignores a 40 px top strip."))
    mask_image: Optional[str] = text(None, "image the size of the picture: black = ignore, white = watch", notes=(
        "Used together with `mask` (both apply). Relative paths are tried from the\n"
        "current folder, then from this file's folder."))
    timeout_seconds: float = number(10.0, "no frame for this long means the camera is lost", 0.5, 600.0,
                                    unit="seconds", notes=(
        "A lost camera is retried with exponential backoff (1 s doubling to 30 s)."))
    detection: Annotated[DetectionOverrides, _empty_when_null(DetectionOverrides)] = section(
        DetectionOverrides, "per-camera overrides of any `detection` key, e.g. {trigger_fraction: 0.01}",
        notes="A key left out (or null) takes the value of the `detection` section.")


@config_model
class EventsConfig:
    """How motion becomes events, and what each event keeps."""

    gap_seconds: float = number(4.0, "an event ends after this long without motion", 0.0, 3600.0,
                                unit="seconds", notes="Motion within it continues the same event.")
    max_seconds: float = number(300.0, "a longer event's clip is split into numbered parts of this length",
                                1.0, 86400.0, unit="seconds", notes="It stays one event.")
    pre_roll_seconds: float = number(2.0, "clip time kept from before the trigger", 0.0, 60.0, unit="seconds")
    post_roll_seconds: float = number(2.0, "clip time kept after the last motion", 0.0, 60.0, unit="seconds")
    clip: bool = flag(True, "record a video clip of each event", notes=(
        "From pre_roll_seconds before the trigger to post_roll_seconds after the last\n"
        "motion (docs/recording.md says what clips cost in CPU and memory)."))
    clip_width: int = integer(0, "clip width in pixels, aspect kept (0 = source resolution); narrower than a "
                              "copied source (H.264, HEVC, VP9, AV1) makes auto encode instead of copying its "
                              "packets", 0, 7680, notes=(
        "For encoded clips it is also the size the pre-roll is kept at in memory, for\n"
        "one resize per frame."))
    clip_codec: Literal["auto", "copy", "h264", "mp4v"] = parsed("auto", "clip format", notes=(
        "auto: when the source's video is H.264, HEVC, VP9 or AV1 (a file, an\n"
        "  RTSP/HTTP stream, a camera that sends them), each clip is the source's own\n"
        "  packets copied into MP4 without re-encoding (lossless, nearly free; the\n"
        "  pre-roll is kept compressed, and the clip starts on the keyframe at or before\n"
        "  it, so it may begin up to one keyframe interval earlier). HEVC clips play in\n"
        "  Safari, desktop players and phones, in Chrome and Firefox only where the\n"
        "  machine decodes HEVC; VP9 and AV1 clips in Chrome and Firefox (Safari may\n"
        "  only offer them as a download). A clip_width makes auto encode instead.\n"
        "  Every other source is encoded to H.264 in process.\n"
        "copy: like auto, and copies even when clip_width is set.\n"
        "h264: always encode H.264 MP4 in process (libx264); plays in every browser,\n"
        "  but encoding every event frame of a 1080p camera costs more than detection.\n"
        "mp4v: encode MPEG-4 Part 2 MP4; plays in VLC and desktop players,\n"
        "  browsers only download it."))
    snapshot: Literal["best", "first", "both"] = parsed(
        "best", "which frame becomes the snapshot: best (most changed pixels), first (the trigger frame) or both")
    annotate: bool = flag(False, "also save annotated.jpg, the snapshot with the motion boxes and the time drawn on it")
    thumbnail_width: int = integer(320, "width of thumb.jpg, the small snapshot the review page lists",
                                   32, 1920, unit="pixels")


@config_model
class RecordingsConfig:
    """Where events are kept, and how much: retention never lets them fill the disk."""

    path: Folder = parsed("recordings", "folder that holds the event folders and the events.db index", notes=(
        "Event folders are <camera>/<YYYY-MM-DD>/<HHMMSS>-<id>/. The folder is made if\n"
        "missing, so it must be writable (check-config checks). Relative paths start\n"
        "from the folder motionwatch runs in: use an absolute path for a service."))
    jpeg_quality: int = integer(90, "JPEG quality of snapshots", 1, 100)
    max_size_gb: float = number(0.0, "delete the oldest unprotected events while recordings exceed this "
                                "(0 = no limit)", 0.0, 1e6, unit="GB")
    max_age_days: float = number(0.0, "delete events older than this (0 = keep forever)", 0.0, 36500.0,
                                 unit="days")
    min_free_gb: float = number(1.0, "delete the oldest unprotected events to keep this much disk free (0 = off)",
                                0.0, 1e6, unit="GB", notes=(
        "It never asks for more than a tenth of the disk (0.4 GB on a 4 GB card), so the\n"
        "default does not empty a small disk of every event; min_free_percent is not capped.\n"
        "At start a warning says when these limits leave recordings almost no room."))
    min_free_percent: float = number(0.0, "the same as a share of the disk (0 = off)", 0.0, 99.0, unit="percent")
    retention_interval_seconds: float = number(300.0, "how often the limits are enforced while running",
                                               10.0, 86400.0, unit="seconds")


@config_model
class WebConfig:
    """The review and live web UI inside `motionwatch run`."""

    enabled: bool = flag(False, "serve the review and live UI inside `motionwatch run`")
    host: str = text("127.0.0.1", "address to bind; anything but loopback needs a password")
    port: int = integer(8765, "TCP port", 1, 65535)
    password: Optional[str] = text(None, "password for the web UI (required off loopback)")
    password_env: Optional[str] = text("MOTIONWATCH_WEB_PASSWORD",
                                       "environment variable that may hold the password instead",
                                       notes="It keeps the password out of this file.")
    live_fps: float = number(5.0, "frame rate of the live MJPEG view", 0.2, 30.0)
    allowed_hosts: Hosts = parsed((), "extra names the browser may use for this server (the Host header, no port)",
                                  notes=(
        "The bound address, localhost, 127.0.0.1 and ::1 are always allowed. Without a\n"
        "password only these names are answered (a DNS-rebinding page is refused); with\n"
        "a password and an empty list any name is."))
    trusted_proxies: Proxies = parsed((), "reverse proxies whose X-Forwarded-For names the client (login throttle)",
                                      notes=(
        "Only their X-Forwarded-For header is believed, so the login throttle counts each\n"
        "client behind them apart; empty: the header is ignored and every client is the\n"
        "address it connects from."))
    tls_cert: Optional[str] = text(None, "PEM certificate (chain) file: serve HTTPS instead of HTTP",
                                   notes="HTTPS without a reverse proxy.")
    tls_key: Optional[str] = text(None, "PEM private key file of tls_cert (null when the cert file holds it)")


@config_model
class HooksConfig:
    """Commands run without a shell, as a list: the program and its arguments, e.g.
    ["/usr/local/bin/notify", "--fast"]. They get the event's JSON on stdin and MOTIONWATCH_*
    environment variables. A program that cannot be found or run is a config error
    (check-config and run say so at start)."""

    on_event_start: Command = parsed(None, "command run when an event starts")
    on_event_end: Command = parsed(None, "command run when an event ends")
    on_camera_lost: Command = parsed(None, "command run when a camera stops delivering frames")
    on_camera_found: Command = parsed(None, "command run when a lost camera delivers frames again")
    timeout_seconds: float = number(30.0, "a hook still running after this long is killed", 0.1, 3600.0,
                                    unit="seconds")


@config_model
class WebhookConfig:
    """Each receives every ended event as a JSON POST, retried when it fails."""

    url: WebhookUrl = Field(description="the http:// or https:// URL that receives each ended event as a JSON POST",
                            json_schema_extra=Doc())
    snapshot: bool = flag(False, "send the snapshot too, as multipart/form-data")
    timeout_seconds: float = number(10.0, "per-request timeout", 0.1, 300.0, unit="seconds")
    retries: int = integer(3, "attempts after the first before the event is dropped", 0, 100)


@config_model
class MqttConfig:
    """MQTT and Home Assistant (needs: pip install '.[mqtt]' in the checkout)."""

    enabled: bool = flag(False, "publish motion state and events to an MQTT broker")
    host: str = text("localhost", "broker host name or address")
    port: int = integer(1883, "broker TCP port", 1, 65535)
    username: Optional[str] = text(None, "broker user name")
    password: Optional[str] = text(None, "broker password")
    tls: bool = flag(False, "connect with TLS")
    ca_file: Optional[str] = text(None, "CA certificate file for TLS (null = the system's CAs)")
    topic_prefix: str = text("motionwatch", "first part of every topic: <prefix>/<camera>/motion, .../event, "
                             ".../snapshot")
    discovery: bool = flag(True, "publish Home Assistant MQTT discovery messages")
    discovery_prefix: str = text("homeassistant", "Home Assistant discovery topic prefix")


Cameras = Annotated[tuple[CameraConfig, ...], _no_entries_when_null(CameraConfig)]
Webhooks = Annotated[tuple[WebhookConfig, ...], _no_entries_when_null(WebhookConfig)]


def _section(cls: type):
    return Annotated[cls, _empty_when_null(cls)]


@config_model
class Config:
    """motionwatch configuration: every option, with its meaning, unit, default and range."""

    cameras: Cameras = section(lambda: (CameraConfig(),), "the cameras to watch")
    detection: _section(DetectionConfig) = section(DetectionConfig, "how motion is found")
    events: _section(EventsConfig) = section(EventsConfig, "how motion becomes events")
    recordings: _section(RecordingsConfig) = section(RecordingsConfig, "where and how much is kept")
    web: _section(WebConfig) = section(WebConfig, "the review and live web UI")
    hooks: _section(HooksConfig) = section(HooksConfig, "commands run on events")
    webhooks: Webhooks = section(tuple, "URLs that receive events")
    mqtt: _section(MqttConfig) = section(MqttConfig, "MQTT and Home Assistant")
    # Where the config was loaded from, for messages; not a setting (the loader
    # refuses it in a file, and the schema and generated files leave it out).
    source_file: SkipJsonSchema[Optional[str]] = None

    @field_validator("cameras")
    @classmethod
    def _cameras_named_once(cls, cams: tuple) -> tuple:
        if not cams:
            raise Invalid("a list of at least one camera", problem="empty", value=None)
        seen = set()
        for i, cam in enumerate(cams):
            if cam.name in seen:
                raise Invalid("unique names", problem="is used twice", at=(i, "name"), value=cam.name)
            seen.add(cam.name)
        return cams

    def camera_detection(self, cam: CameraConfig) -> DetectionConfig:
        """The detection settings of one camera: globals plus its overrides."""
        changed = overrides_set(cam.detection)
        return replace(self.detection, **changed) if changed else self.detection


def overrides_set(overrides: Any) -> dict:
    """The keys a camera overrides, with their values."""
    return {f.name: getattr(overrides, f.name) for f in fields(overrides)
            if getattr(overrides, f.name) is not None}

