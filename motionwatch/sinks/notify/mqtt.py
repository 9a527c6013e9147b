"""MQTT: motion state, events and snapshots for Home Assistant and friends.

Topics (prefix `mqtt.topic_prefix`, default motionwatch):

  <prefix>/status                online / offline (retained; offline is the last will)
  <prefix>/<camera>/motion       ON / OFF (retained)
  <prefix>/<camera>/connected    ON / OFF (retained): is the camera delivering frames
  <prefix>/<camera>/event        the event as JSON at its start and at its end
  <prefix>/<camera>/snapshot     JPEG bytes (retained): the trigger frame, then the saved snapshot

With `discovery: true`, Home Assistant finds per camera a motion binary
sensor, a connectivity binary sensor and a camera entity showing the snapshot.

paho's network loop runs on its own thread (`loop_start`) and connects in the
background (`connect_async`), retrying with backoff when the broker goes away,
so publishing never blocks: qos 1 messages wait in a bounded queue while the
broker is down; on reconnect the current state is published again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
from pathlib import Path

from motionwatch import __version__
from motionwatch.config import Config, MqttConfig
from motionwatch.errors import ConfigError
from motionwatch.events import EventEnded, EventStarted
from motionwatch.sinks.worker import event_record
from motionwatch.sinks.recorder import encode_jpeg
from motionwatch.sinks.runner import Sink
from motionwatch.config.source_spec import source_kind

log = logging.getLogger("motionwatch.mqtt")

KEEPALIVE = 30
MAX_QUEUED = 500          # qos 1 messages kept while the broker is unreachable
CLOSE_WAIT = 5.0          # seconds spent at shutdown connecting / flushing


def paho_client():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        # motionwatch is not on the package index: the extra installs from the checkout.
        raise ConfigError("mqtt.enabled is true but paho-mqtt is not installed; install it with: "
                          "pip install '.[mqtt]' in the motionwatch checkout (or: pip install paho-mqtt)") from None
    return mqtt


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, cfg: Config):
        mqtt = paho_client()
        self.cfg: MqttConfig = cfg.mqtt
        self.root = Path(cfg.recordings.path)
        self.jpeg_quality = cfg.recordings.jpeg_quality
        self.prefix = self.cfg.topic_prefix.strip("/") or "motionwatch"
        self.cameras = {c.name: c.source for c in cfg.cameras}
        self._lock = threading.Lock()
        self._motion = dict.fromkeys(self.cameras, False)
        self._online = dict.fromkeys(self.cameras, True)
        self._connected = threading.Event()
        self._last_fail: str | None = None
        self.published = 0
        self.dropped = 0
        self._no_conn = mqtt.MQTT_ERR_NO_CONN
        self.client = self._client(mqtt)
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=KEEPALIVE)
        self.client.loop_start()

    def _client(self, mqtt):
        cid = f"motionwatch-{socket.gethostname()}-{os.getpid()}"
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        c.will_set(self.topic("status"), "offline", qos=1, retain=True)
        if self.cfg.username is not None:
            c.username_pw_set(self.cfg.username, self.cfg.password)
        if self.cfg.tls:
            try:
                c.tls_set(ca_certs=self.cfg.ca_file)
            except (OSError, ValueError) as e:
                raise ConfigError(f"mqtt.ca_file: cannot use {self.cfg.ca_file!r} for TLS: {e}") from None
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.max_queued_messages_set(MAX_QUEUED)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        return c

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # -- connection -----------------------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            if self._last_fail != str(reason_code):
                log.error("MQTT: broker %s:%d refused the connection: %s", self.cfg.host, self.cfg.port,
                          reason_code)
            self._last_fail = str(reason_code)
            return
        log.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.port)
        self._connected.set()
        self._last_fail = None
        if self.cfg.discovery:
            for name in self.cameras:
                for topic, payload in discovery_messages(self, name):
                    self._publish(topic, json.dumps(payload), retain=True)
        with self._lock:
            state = [(n, self._motion[n], self._online[n]) for n in self.cameras]
        for name, motion, online in state:
            self._publish(self.topic(name, "motion"), "ON" if motion else "OFF", retain=True)
            self._publish(self.topic(name, "connected"), "ON" if online else "OFF", retain=True)
        self._publish(self.topic("status"), "online", retain=True)

    def _on_connect_fail(self, _client, _userdata) -> None:
        # paho only says that it failed; find out why once, and say it again only when it changes.
        reason = self._probe()
        if reason != self._last_fail:
            self._last_fail = reason
            log.warning("MQTT: cannot connect to %s:%d: %s; retrying in the background",
                        self.cfg.host, self.cfg.port, reason)

    def _probe(self) -> str:
        try:
            with socket.create_connection((self.cfg.host, self.cfg.port), timeout=3) as sock:
                if self.cfg.tls:
                    ctx = ssl.create_default_context(cafile=self.cfg.ca_file)
                    with ctx.wrap_socket(sock, server_hostname=self.cfg.host):
                        pass
        except OSError as e:  # includes ssl errors and DNS failures
            return str(e) or type(e).__name__
        return "the connection failed"

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and reason_code.is_failure:
            log.warning("MQTT: lost the broker %s:%d (%s); reconnecting in the background",
                        self.cfg.host, self.cfg.port, reason_code)

    # -- signals --------------------------------------------------------------------

    def handle(self, signal) -> None:
        if isinstance(signal, EventStarted):
            self._started(signal)
        elif isinstance(signal, EventEnded):
            self._ended(signal)

    def _started(self, s: EventStarted) -> None:
        name = s.event.camera
        self._set_motion(name, True)
        self._publish_event(name, event_record(s, self.root))
        try:  # the trigger frame now, so a notification need not wait for the event's end
            self._publish(self.topic(name, "snapshot"), encode_jpeg(s.event.best.image, self.jpeg_quality),
                          retain=True, qos=0)
        except OSError as e:
            log.warning("MQTT: cannot encode the snapshot of event %s: %s", s.event.id, e)

    def _ended(self, s: EventEnded) -> None:
        name = s.event.camera
        rec = event_record(s, self.root)
        self._publish_event(name, rec)
        if rec.get("snapshot"):
            try:
                jpeg = (self.root / rec["snapshot"]).read_bytes()
                self._publish(self.topic(name, "snapshot"), jpeg, retain=True, qos=0)
            except OSError as e:
                log.warning("MQTT: snapshot of event %s unreadable: %s", s.event.id, e)
        self._set_motion(name, False)

    def camera_state(self, kind: str, status) -> None:
        """`CameraLoop.on_state` callback (capture thread): publishing only queues.

        Motion ON goes out from here, as soon as the tracker decides, instead of
        after the recorder has written the event's first files (which, with a clip's
        pre-roll to encode, takes most of a second). OFF waits for the saved event."""
        if kind == "event_start":
            self._set_motion(status.name, True)
            return
        if kind not in ("camera_lost", "camera_found"):
            return
        online = kind == "camera_found"
        with self._lock:
            self._online[status.name] = online
        self._publish(self.topic(status.name, "connected"), "ON" if online else "OFF", retain=True)

    def _set_motion(self, name: str, on: bool) -> None:
        """Publish a change of state once, whichever thread learns of it first."""
        with self._lock:
            if self._motion.get(name) == on:
                return
            self._motion[name] = on
        self._publish(self.topic(name, "motion"), "ON" if on else "OFF", retain=True)

    def _publish_event(self, name: str, rec: dict) -> None:
        rec = {k: v for k, v in rec.items() if k != "fractions"}  # the chart series is too big for MQTT
        self._publish(self.topic(name, "event"), json.dumps(rec))

    def _publish(self, topic: str, payload, retain: bool = False, qos: int = 1):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (0, self._no_conn) or (info.rc == self._no_conn and qos == 0):
            # Not connected: qos 1 waits in paho's queue for the reconnect, qos 0 is gone.
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("MQTT: %d message(s) dropped (broker unreachable, queue of %d full)",
                            self.dropped, MAX_QUEUED)
        else:
            self.published += 1
        return info

    def close(self) -> None:
        """Say offline on purpose (a clean disconnect does not fire the last will).

        A short `scan` may end before the background connect is done, so wait a
        little for it, unless connecting already failed (then waiting cannot help)."""
        wait = 0.0 if self._last_fail and not self._connected.is_set() else CLOSE_WAIT
        if not self._connected.wait(wait):
            log.warning("MQTT: broker %s:%d not reachable; messages of this run are lost",
                        self.cfg.host, self.cfg.port)
        else:
            info = self._publish(self.topic("status"), "offline", retain=True)
            try:
                info.wait_for_publish(CLOSE_WAIT)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()


def discovery_messages(sink: MqttSink, name: str) -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery configs for one camera."""
    uid = "motionwatch_" + name.replace(".", "_").replace("-", "_")
    base = sink.cfg.discovery_prefix.strip("/")
    device = {"identifiers": [uid], "name": f"motionwatch {name}", "manufacturer": "motionwatch",
              "model": f"{source_kind(sink.cameras[name])} camera", "sw_version": __version__}
    avail = {"availability_topic": sink.topic("status"), "payload_available": "online",
             "payload_not_available": "offline", "device": device,
             "origin": {"name": "motionwatch", "sw_version": __version__}}
    return [
        (f"{base}/binary_sensor/{uid}/motion/config", {
            "name": "Motion", "unique_id": f"{uid}_motion", "device_class": "motion",
            "state_topic": sink.topic(name, "motion"), "payload_on": "ON", "payload_off": "OFF",
            "json_attributes_topic": sink.topic(name, "event"), **avail}),
        (f"{base}/binary_sensor/{uid}/connected/config", {
            "name": "Camera connected", "unique_id": f"{uid}_connected", "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": sink.topic(name, "connected"), "payload_on": "ON", "payload_off": "OFF", **avail}),
        (f"{base}/camera/{uid}/snapshot/config", {
            "name": "Snapshot", "unique_id": f"{uid}_snapshot", "topic": sink.topic(name, "snapshot"),
            **avail}),
    ]
