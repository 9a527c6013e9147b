"""MQTT against a real mosquitto broker started on a free loopback port, with a
real paho subscriber: discovery, retained ON/OFF, event JSON, snapshot bytes,
availability with the last will, reconnect after broker loss, and auth."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import events_json, mw

mqtt = pytest.importorskip("paho.mqtt.client")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A mosquitto process with a generated config; restartable on the same port."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None):
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_dest stderr"]
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user mosquitto, who cannot read pytest's tmp dir
        if users:
            pwfile = folder / "passwd"
            pwfile.write_text("")
            for user, pw in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, pw], check=True)
            pwfile.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        # (a TLS listener also accepts the plain TCP probe below; the handshake just fails)
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Listener:
    """A real paho client subscribed to everything, keeping every message."""

    def __init__(self, port: int, user: str | None = None, pw: str | None = None):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            c.username_pw_set(user, pw)
        c.on_message = self._on_message
        c.on_connect = lambda cl, *_: cl.subscribe("#", qos=1)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c

    def _on_message(self, _c, _u, msg) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self.cond.notify_all()

    def payloads(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == topic]

    def wait_for(self, topic: str, payload: bytes | None = None, timeout: float = 20.0, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [p for t, p, _ in self.messages[after:] if t == topic]
                if got and (payload is None or payload in got):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {payload!r} on {topic}; got {[m[0] for m in self.messages]}")
                self.cond.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_config(tmp_path: Path, port: int, **mqtt_keys) -> Path:
    keys = {"enabled": True, "host": "127.0.0.1", "port": port, **mqtt_keys}
    lines = ["mqtt:"] + [f"  {k}: {json.dumps(v)}" for k, v in keys.items()]
    path = tmp_path / "mw.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scan_publishes_discovery_state_event_and_snapshot(tmp_path, broker, recordings, two_visits_video):
    video, _ = two_visits_video
    listener = Listener(broker.port)
    cfg = write_config(tmp_path, broker.port)
    mw("scan", str(video), "--config", str(cfg), "--recordings", str(recordings), "--camera", "hall",
       "--no-progress", check=True)
    listener.wait_for("motionwatch/status", b"offline")
    listener.close()
    events = events_json(recordings)
    assert events, "the two visits must give events"
    n = len(events)

    # Home Assistant discovery: a motion binary sensor and a camera entity for "hall".
    sensor = json.loads(listener.payloads("homeassistant/binary_sensor/motionwatch_hall/motion/config")[0])
    assert sensor["device_class"] == "motion"
    assert sensor["state_topic"] == "motionwatch/hall/motion"
    assert sensor["availability_topic"] == "motionwatch/status"
    camera = json.loads(listener.payloads("homeassistant/camera/motionwatch_hall/snapshot/config")[0])
    assert camera["topic"] == "motionwatch/hall/snapshot"
    assert camera["device"]["identifiers"] == sensor["device"]["identifiers"]

    # ON/OFF per event, ending OFF; then the event JSON at start and at end.
    assert listener.payloads("motionwatch/hall/motion") == [b"OFF"] + [b"ON", b"OFF"] * n
    sent = [json.loads(p) for p in listener.payloads("motionwatch/hall/event")]
    assert [e["state"] for e in sent] == ["start", "end"] * n
    ends = [e for e in sent if e["state"] == "end"]
    by_id = {e["id"]: e for e in events}
    for e in ends:
        stored = by_id[e["id"]]
        for key in ("camera", "start", "end", "start_frame", "end_frame", "peak_fraction", "snapshot"):
            assert e[key] == stored[key]
    # The last snapshot published is the last event's saved JPEG, byte for byte.
    snaps = listener.payloads("motionwatch/hall/snapshot")
    assert snaps[0][:2] == b"\xff\xd8"
    last = max(events, key=lambda e: e["start"])
    assert snaps[-1] == (recordings / last["snapshot"]).read_bytes()
    assert listener.payloads("motionwatch/status") == [b"online", b"offline"]

    # Retained: a late subscriber still learns the state, the last snapshot and availability.
    late = Listener(broker.port)
    late.wait_for("motionwatch/hall/motion", b"OFF")
    late.wait_for("motionwatch/status", b"offline")
    late.wait_for("motionwatch/hall/snapshot")
    assert all(r for t, _, r in late.messages)
    late.close()


def test_reconnects_after_broker_loss_and_last_will_says_offline(tmp_path, broker, recordings):
    cfg = write_config(tmp_path, broker.port, topic_prefix="home/mw", discovery=False)
    proc = subprocess.Popen([sys.executable, "-m", "motionwatch", "run", "--source", "demo", "--config", str(cfg),
                             "--recordings", str(recordings)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        listener = Listener(broker.port)
        listener.wait_for("home/mw/status", b"online")
        assert not [t for t, _, _ in listener.messages if t.startswith("homeassistant/")]
        listener.close()

        broker.stop()                      # the broker goes away while motionwatch runs
        time.sleep(1.5)
        assert proc.poll() is None, "run must survive a lost broker"
        broker.start()
        listener = Listener(broker.port)
        listener.wait_for("home/mw/status", b"online")       # it came back by itself
        listener.wait_for("home/mw/demo/motion")              # and republished the state
        n = len(listener.messages)

        proc.kill()                        # no clean disconnect: the broker sends the last will
        listener.wait_for("home/mw/status", b"offline", after=n)
        listener.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "lost the broker" in err
    assert err.count("MQTT: connected") >= 2


def test_username_and_password(tmp_path, recordings, two_visits_video):
    broker = Broker(tmp_path, users={"cam": "s3cret pass"})
    broker.start()
    try:
        video, _ = two_visits_video
        listener = Listener(broker.port, "cam", "s3cret pass")
        good = write_config(tmp_path, broker.port, username="cam", password="s3cret pass", discovery=False)
        mw("scan", str(video), "--config", str(good), "--recordings", str(recordings), "--no-progress", check=True)
        listener.wait_for("motionwatch/status", b"offline")
        assert listener.payloads("motionwatch/two_visits/motion")[-1] == b"OFF"
        listener.close()

        bad = write_config(tmp_path, broker.port, username="cam", password="wrong", discovery=False)
        proc = mw("scan", str(video), "--config", str(bad), "--recordings", str(tmp_path / "r2"), "--no-progress")
        assert proc.returncode == 0, "a refused broker must not stop the scan"
        assert "refused the connection" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        broker.stop()


def test_missing_paho_is_one_clear_line(tmp_path, recordings):
    """Hides paho from the child process to check the message a user without the extra sees."""
    cfg = write_config(tmp_path, free_port())
    blocker = tmp_path / "block"
    (blocker / "paho").mkdir(parents=True)
    (blocker / "paho" / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    proc = mw("run", "--source", "demo", "--config", str(cfg), "--recordings", str(recordings),
              "--duration", "1", env=env)
    assert proc.returncode == 2
    assert "pip install '.[mqtt]' in the motionwatch checkout" in proc.stderr
    assert "Traceback" not in proc.stderr


def make_certs(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=motionwatch test CA",
        "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
        "-extfile", str(ext), "-out", str(cert))
    return {"ca": ca, "cert": cert, "key": key}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_with_a_private_ca(tmp_path, recordings, two_visits_video):
    certs = make_certs(tmp_path)
    broker = Broker(tmp_path, tls=certs)
    broker.start()
    try:
        video, _ = two_visits_video
        listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        got: list[tuple[str, bytes]] = []
        listener.tls_set(ca_certs=str(certs["ca"]))
        listener.on_connect = lambda cl, *_: cl.subscribe("motionwatch/#", qos=1)
        listener.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
        listener.connect("127.0.0.1", broker.port)
        listener.loop_start()
        cfg = write_config(tmp_path, broker.port, tls=True, ca_file=str(certs["ca"]), discovery=False)
        mw("scan", str(video), "--config", str(cfg), "--recordings", str(recordings), "--no-progress", check=True)
        deadline = time.monotonic() + 10
        while ("motionwatch/status", b"offline") not in got and time.monotonic() < deadline:
            time.sleep(0.05)
        listener.disconnect()
        listener.loop_stop()
        assert ("motionwatch/status", b"online") in got and ("motionwatch/status", b"offline") in got
        assert ("motionwatch/two_visits/motion", b"ON") in got

        # Without the private CA the server is not trusted: no messages, a clear log line, still exit 0.
        plain = write_config(tmp_path, broker.port, tls=True, discovery=False)
        proc = mw("scan", str(video), "--config", str(plain), "--recordings", str(tmp_path / "r2"), "--no-progress")
        assert proc.returncode == 0 and "not reachable" in proc.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr
        bad = write_config(tmp_path, broker.port, tls=True, ca_file=str(tmp_path / "nope.pem"))
        proc = mw("scan", str(video), "--config", str(bad), "--recordings", str(tmp_path / "r3"), "--no-progress")
        assert proc.returncode == 2 and "mqtt.ca_file" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        broker.stop()


def test_motion_on_is_published_once_whichever_thread_is_first(tmp_path, broker):
    """In `run`, ON comes from the capture loop's on_state and again from the sink worker's
    EventStarted; the broker must see exactly one ON and one OFF per event, in either order."""
    import numpy as np
    from motionwatch.config import CameraConfig, Config, MqttConfig, RecordingsConfig
    from motionwatch.events import EventEnded, EventStarted, OpenEvent
    from motionwatch.model import Frame
    from motionwatch.pipeline.camera import CameraStatus
    from motionwatch.sinks.notify.mqtt import MqttSink

    listener = Listener(broker.port)
    cfg = Config(cameras=(CameraConfig(name="cam"),), recordings=RecordingsConfig(path=str(tmp_path)),
                 mqtt=MqttConfig(enabled=True, host="127.0.0.1", port=broker.port, discovery=False))
    sink = MqttSink(cfg)
    listener.wait_for("motionwatch/status", b"online")   # (while offline, queued and republished states may repeat)
    status = CameraStatus("cam", "demo")
    frame = Frame(np.zeros((48, 64, 3), np.uint8), 0, 0.0, time.time())
    for n, capture_first in enumerate((True, False)):
        ev = OpenEvent(f"ev{n}", "cam", frame, [], frame, frame, [], 0.1, 3)
        if capture_first:
            sink.camera_state("event_start", status)
            sink.handle(EventStarted(ev, []))
        else:
            sink.handle(EventStarted(ev, []))
            sink.camera_state("event_start", status)
        sink.camera_state("event_end", status)          # ignored: OFF waits for the saved event
        sink.handle(EventEnded(ev, ev.record(), "gap"))
    sink.close()
    listener.wait_for("motionwatch/status", b"offline")
    listener.close()
    assert listener.payloads("motionwatch/cam/motion") == [b"OFF", b"ON", b"OFF", b"ON", b"OFF"]
    assert [json.loads(p)["id"] for p in listener.payloads("motionwatch/cam/event")] == ["ev0", "ev0", "ev1", "ev1"]
