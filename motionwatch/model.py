"""Value types shared by the stages: frames, detections and event records."""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # annotations only: `motionwatch events` reads records without OpenCV or numpy
    from fractions import Fraction

    import numpy as np


@dataclass(slots=True)
class Frame:
    """One picture from a source.

    `ts` is seconds since the source's first frame (source time, not the wall
    clock) so event timing is exact in tests; `wall` is the epoch time the
    frame stands for, used only for human-facing timestamps. `gray` may carry
    the decoder's luma plane when the source has it for free.
    """

    image: np.ndarray
    index: int
    ts: float
    wall: float
    gray: np.ndarray | None = None
    # The shape of a stored pixel (width/height, a Fraction) when it is not square:
    # a PAL DVD's or an analogue DVR's 720x576 shown 16:9 has 64/45. `image`, `gray`,
    # `size` and boxes stay in stored pixels; a clip carries it and snapshots are
    # widened by it, as a player shows them (media.frames.pixel_aspect). None: square.
    sar: Fraction | None = None

    # The display turn (degrees counter-clockwise) a clip encoded from the frame's
    # coded picture must carry (media.frames.AvFrame.av_frame). `image`, `gray`
    # and `size` are always upright, as a player shows the picture.
    rotation = 0
    # A frame that passes its turn to be analysed to the next one (sources.undecoded):
    # a disposable picture the next frame shown makes no dearer to analyse.
    passes_turn = False
    # The picture shows damaged data the decoder patched up, or may be predicted from
    # such a picture or from one that did not decode at all (media.damage): it is
    # recorded but not analysed.
    damaged = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the picture in source pixels, what boxes and masks refer to.

        A frame that decodes `image` on demand overrides this to answer without decoding."""
        h, w = self.image.shape[:2]
        return w, h

    @property
    def nbytes(self) -> int:
        """Bytes of the BGR picture, decoded or not yet: what the sink queue budgets,
        asked on the capture thread, where a lazy frame must not be decoded."""
        w, h = self.size
        return w * h * 3

    def detect_picture(self, recording: bool) -> np.ndarray | None:
        """What the detector looks at: `gray` when the frame carries one, else the BGR
        picture. `recording`: an event's clip is being encoded from this frame, so a
        frame that must decode in full for it may take the grey from that decode
        (media.jpeg.JpegFrame). None when the picture does not decode."""
        return self.image if self.gray is None else self.gray

    @property
    def undecodable(self) -> bool:
        """Known not to decode, without decoding it (media.jpeg.JpegFrame); a picture
        already decoded never is."""
        return False

    @property
    def glance(self) -> np.ndarray:
        """The BGR picture for a look on the capture thread (the live view): `image`,
        unless getting that means decoding the frame again (media.frames.AvFrame)."""
        return self.image

    def with_picture(self) -> Frame | None:
        """The frame with its picture: itself, unless the source left it undecoded
        (media.frames.UndecodedFrame); None if that picture cannot be had."""
        return self

    def scaled(self, size: tuple[int, int]) -> Frame:
        """This frame shrunk to `size` (a clip narrower than the source, events.clip_width).
        A frame that can hand its picture over undecoded overrides this."""
        import cv2   # here, not at the top: the event records below need no OpenCV
        small = cv2.resize(self.image, size, interpolation=cv2.INTER_AREA)
        return Frame(small, self.index, self.ts, self.wall, sar=self.sar)   # scaled alike both ways


Box = tuple[int, int, int, int]


def detection_size(src_w: int, src_h: int, width: int) -> tuple[int, int]:
    """The detector's picture size for a source picture: `width` wide (never upscaled),
    aspect kept. Here, below both, because sources shrink pictures for the detector too."""
    w = min(width, src_w)
    h = max(2, int(round(src_h * w / src_w)))
    return max(2, w), h


def detection_width(size: tuple[int, int], width: int, rotation: int) -> int:
    """The detection width for pictures of `size` (upright) shown turned by `rotation`.

    A quarter-turned video (a phone shot upright) is detected on at the turn of its
    stored picture's detection size: as the same video unturned, with the same detail,
    sensitivity and cost, not as a portrait picture `width` wide (3.2 times the pixels
    of a 16:9 one). A picture that is portrait as stored keeps `width`. Never below
    32, the lowest `detection.width` allowed."""
    if rotation % 180 == 90:
        return max(32, detection_size(size[1], size[0], width)[1])
    return width


@dataclass(slots=True)
class Detection:
    """What the detector concluded about one frame.

    `fraction` is the changed share (0..1) of the unmasked area; `boxes` are
    changed regions in source pixels; `mask` is the binary change mask at
    detection size (shared buffer: copy it to keep it). `ready` is False
    during warm-up, when nothing is reported as motion. `raw_fraction` is the
    changed share before the region filter; `shift` the camera shake (dx, dy)
    in detection pixels that was compensated.
    """

    fraction: float
    boxes: list[Box]
    mask: np.ndarray | None
    lighting_change: bool = False
    ready: bool = True
    threshold: float = 0.0
    raw_fraction: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)


# Fields every event.json and `events --json` row carries (DESIGN.md contract).
EVENT_FIELDS = (
    "id", "camera", "start", "end", "start_offset_s", "end_offset_s",
    "start_frame", "end_frame", "peak_fraction", "frames_with_motion",
    "snapshot", "clip", "boxes",
)


@dataclass
class Event:
    """A recorded motion event: the contract fields plus optional extras."""

    id: str
    camera: str
    start: str
    end: str
    start_offset_s: float
    end_offset_s: float
    start_frame: int
    end_frame: int
    peak_fraction: float
    frames_with_motion: int
    snapshot: str | None
    clip: str | None
    boxes: list[list[int]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update({k: v for k, v in extra.items() if k not in d})
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Any) -> Event:
        """An event from event.json (or an index row), every contract field checked:
        ValueError naming the first field that is missing or not what the contract
        allows, so one damaged file is skipped with a clear word instead of breaking
        whoever reads it."""
        if not isinstance(d, dict):
            raise ValueError(f"not a JSON object but {type(d).__name__}")
        names = {f.name for f in fields(cls)} - {"extra"}
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"lacks {', '.join(sorted(missing))}")
        for name in EVENT_FIELDS:
            allowed = _CHECKS[name](d[name])
            if allowed:
                raise ValueError(f"{name}: {_short(d[name])} is not allowed; allowed: {allowed}")
        known = {k: d[k] for k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)


# Event ids as the tracker makes them and as folder names and URLs carry them.
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


# Each check returns None when the value is allowed, else what is allowed. Written by
# hand rather than with pydantic: that is not a core dependency, and these are a few lines.
def _number(v: Any, lo: float = -math.inf, hi: float = math.inf) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _count(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _iso_time(v: Any) -> bool:
    try:
        datetime.fromisoformat(v)
    except (TypeError, ValueError):
        return False
    return True


def _path_or_null(v: Any) -> bool:
    return v is None or (isinstance(v, str) and 0 < len(v) < 4096)


def _boxes(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(b, list) and len(b) == 4 and all(_number(x) for x in b) for b in v)


_CHECKS = {
    "id": lambda v: None if isinstance(v, str) and EVENT_ID.fullmatch(v) else "1-64 letters, digits, _ or -",
    "camera": lambda v: None if isinstance(v, str) and v.strip() else "a camera name (a non-empty string)",
    "start": lambda v: None if _iso_time(v) else "an ISO 8601 time",
    "end": lambda v: None if _iso_time(v) else "an ISO 8601 time",
    "start_offset_s": lambda v: None if _number(v) else "a finite number of seconds",
    "end_offset_s": lambda v: None if _number(v) else "a finite number of seconds",
    "start_frame": lambda v: None if _count(v) else "a frame index (an integer, 0 or more)",
    "end_frame": lambda v: None if _count(v) else "a frame index (an integer, 0 or more)",
    "peak_fraction": lambda v: None if _number(v, 0.0, 1.0) else "a number 0..1",
    "frames_with_motion": lambda v: None if _count(v) else "an integer, 0 or more",
    "snapshot": lambda v: None if _path_or_null(v) else "a path relative to the recordings root, or null",
    "clip": lambda v: None if _path_or_null(v) else "a path relative to the recordings root, or null",
    "boxes": lambda v: None if _boxes(v) else "a list of [x, y, w, h] boxes",
}


def _short(v: Any) -> str:
    text = json.dumps(v, default=repr) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def iso(epoch: float) -> str:
    """ISO 8601 with the local UTC offset, to the millisecond."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")
