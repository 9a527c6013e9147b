"""Which notifying sinks a config asks for, and who hears about camera state.

`build_sinks` (commands.py) adds these after the recorder, so by the time they
see an EventEnded its event.json is written and `signal.saved` is set.
"""

from __future__ import annotations

import logging
from pathlib import Path

from motionwatch.config import Config
from motionwatch.sinks.runner import Sink

log = logging.getLogger("motionwatch")


def integration_sinks(cfg: Config) -> list[Sink]:
    """Hooks, webhooks and MQTT, each only when configured."""
    root = Path(cfg.recordings.path)
    out: list[Sink] = []
    h = cfg.hooks
    if any((h.on_event_start, h.on_event_end, h.on_camera_lost, h.on_camera_found)):
        from motionwatch.sinks.notify.hooks import Hooks
        out.append(Hooks(h, root))
    if cfg.webhooks:
        from motionwatch.sinks.notify.webhooks import Webhooks
        out.append(Webhooks(cfg.webhooks, root))
    if cfg.mqtt.enabled:
        from motionwatch.sinks.notify.mqtt import MqttSink
        out.append(MqttSink(cfg))
    return out


def state_listener(sinks: list[Sink]):
    """One `CameraLoop.on_state` callback that tells every sink with `camera_state`.

    It runs on a camera's capture thread; the sinks only queue work there.
    Returns None when no sink cares."""
    listeners = [s.camera_state for s in sinks if hasattr(s, "camera_state")]
    if not listeners:
        return None

    def on_state(kind: str, status) -> None:
        for listen in listeners:
            try:
                listen(kind, status)
            except Exception:  # a notifier's bug must not stop a capture loop
                log.exception("camera state %s: notifying failed", kind)
    return on_state
