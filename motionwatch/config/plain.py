"""A config as plain YAML-able data: what `check-config` prints and the default file holds."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from motionwatch.config.fields import INTERNAL_FIELDS
from motionwatch.config.models import DetectionOverrides, overrides_set


def to_plain(obj: Any) -> Any:
    """Dicts, lists and scalars; a camera's detection shows only the keys it overrides."""
    if isinstance(obj, DetectionOverrides):
        return {k: to_plain(v) for k, v in overrides_set(obj).items()}
    if is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in INTERNAL_FIELDS}
    if isinstance(obj, (tuple, list)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
