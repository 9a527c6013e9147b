"""Every setting, its bounds and meaning (models.py), YAML loading with messages a user
can act on (load.py), and the files generated from the models (render.py).

Import from here: `from motionwatch.config import Config, load_config`.
"""

from __future__ import annotations

from motionwatch.config.fields import RESERVED_NAME_PREFIX, Invalid, parse_folder, parse_name
from motionwatch.config.load import MAX_CONFIG_BYTES, MAX_KEY_PATHS, load_config, parse_config
from motionwatch.config.models import (
    CameraConfig, Config, DetectionConfig, DetectionOverrides, EventsConfig, HooksConfig, MqttConfig,
    RecordingsConfig, WebConfig, WebhookConfig, overrides_set,
)
from motionwatch.config.plain import to_plain

__all__ = [
    "CameraConfig", "Config", "DetectionConfig", "DetectionOverrides", "EventsConfig", "HooksConfig",
    "Invalid", "MAX_CONFIG_BYTES", "MAX_KEY_PATHS", "MqttConfig", "RESERVED_NAME_PREFIX",
    "RecordingsConfig", "WebConfig", "WebhookConfig", "load_config", "overrides_set", "parse_config",
    "parse_folder", "parse_name", "to_plain",
]
