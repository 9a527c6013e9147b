"""Source strings as the user writes them: which kind of source one names, and how
messages show it. Shared by the sources and by sinks that name a camera's source
(hooks, webhooks, MQTT) without importing the sources."""

from __future__ import annotations

import re
from pathlib import PurePath

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")


def is_index(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '¹' and '٣', which int() refuses."""
    return text.isascii() and text.isdigit()


def redact(spec: str) -> str:
    """The spec as messages show it: a password in rtsp://user:pass@host hidden, and
    quoted when it holds line breaks or other unprintables, so a message stays one line."""
    shown = re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", spec)
    return shown if shown.isprintable() else repr(shown)


def source_kind(spec: str) -> str:
    """Which kind of source a spec names, for messages and the camera's default name."""
    if spec == "demo" or spec.startswith("demo:"):
        return "demo"
    if spec.startswith("pipe:"):
        return "pipe"
    if spec == "picamera2" or spec.startswith("picamera2:"):
        return "picamera2"
    if is_index(spec) or spec.startswith("/dev/"):
        return "camera"
    if spec.lower().startswith(URL_SCHEMES):
        return "stream"
    return "file"


def camera_name_for(source: str) -> str:
    """A readable default camera name for a source string."""
    kind = source_kind(source)
    if kind == "demo":
        return "demo"
    if kind == "file":
        stem = PurePath(source).stem
    elif kind == "camera":
        stem = "cam" + re.sub(r"\D", "", source) or "camera"
    elif kind == "stream":
        stem = re.sub(r"^[a-z]+://([^@/]*@)?", "", source.lower()).split("/")[0].split(":")[0]
    elif kind == "picamera2":
        stem = "-".join(source.split(":")[:2])   # picamera2, picamera2-1
    else:
        stem = "pipe"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "camera"
    if not stem[0].isalnum():
        stem = "c" + stem
    return stem[:64]
