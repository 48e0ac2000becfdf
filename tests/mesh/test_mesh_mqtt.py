"""The MQTT sink against a real mosquitto started by the test (plain, then TLS with a password)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import Proc, read_json, wait_until, zeke_cmd

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is in the test extra")
pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None, reason="mosquitto not installed (Debian package mosquitto)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A private mosquitto on a loopback port with its own config file."""

    def __init__(self, tmp: Path, extra: str = "", port: int | None = None):
        self.port = port or free_port()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        # Persistence keeps the listener's session (and what was queued for it) over a
        # restart, as a real broker does; the sink must not rely on it.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\npersistence true\npersistence_location {tmp}/\n"
            f"{user}{extra or 'allow_anonymous true'}\n"
        )
        self.log = tmp / f"mosquitto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log
            )
        assert wait_until(self._listening, 30), self.log.read_text()
        return self

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


class Listener:
    """A subscriber that records every message on the topics it was given."""

    def __init__(self, port: int, topics: list[str], tls: dict | None = None, auth=None):  # type: ignore[no-untyped-def]
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="zeke-test-listener", clean_session=False
        )
        if auth:
            self.client.username_pw_set(*auth)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_connect = lambda c, u, f, rc, pr: [c.subscribe(t, qos=1) for t in topics]
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_run(event_source, mesh_env, tmp_path: Path, *mqtt_args: str) -> Proc:  # type: ignore[no-untyped-def]
    return Proc(
        zeke_cmd(
            "mesh",
            "run",
            "--events-socket",
            str(event_source.path),
            "--pairing-file",
            str(tmp_path / "none.json"),
            "--interface",
            "127.0.0.1",
            "--device-name",
            "lobby",
            "--status-file",
            str(tmp_path / "run.json"),
            "-v",
            *mqtt_args,
        ),
        mesh_env,
        tmp_path,
        "mqtt-run",
    ).start()


def test_home_assistant_discovery_events_and_broker_restart(
    event_source, mesh_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    broker = Broker(tmp_path).start()
    listener = Listener(broker.port, ["homeassistant/#", "zeke/#"])
    run = start_run(
        event_source,
        mesh_env,
        tmp_path,
        "--mqtt-host",
        "127.0.0.1",
        "--mqtt-port",
        str(broker.port),
    )
    events_topic, avail = "zeke/lobby/events", "zeke/lobby/availability"
    configs = [
        f"homeassistant/sensor/zeke_lobby/{s}/config" for s in ("dominant_emotion", "face_count")
    ]
    try:
        assert wait_until(lambda: all(listener.on(t) for t in configs), 60), run.stderr()
        config = json.loads(listener.on(configs[0])[-1])
        assert config["state_topic"] == "zeke/lobby/state"
        assert config["availability_topic"] == avail
        assert config["device"]["identifiers"] == ["zeke_lobby"]
        assert json.loads(listener.on(configs[1])[-1])["state_class"] == "measurement"
        assert wait_until(lambda: listener.on(avail)[-1:] == [b"online"], 30)

        event_source.wait_for_reader()
        first = event_source.emit(20, interval_s=0.005)
        assert wait_until(lambda: len(listener.on(events_topic)) == 20, 30)
        got = [json.loads(m) for m in listener.on(events_topic)]
        assert [e["seq"] for e in got] == [e.seq for e in first]
        state = json.loads(listener.on("zeke/lobby/state")[-1])
        assert state["face_count"] >= 1 and state["dominant_emotion"] in {e.emotion for e in first}

        broker.stop()  # the sink must ride this out
        during = event_source.emit(10, interval_s=0.01)
        time.sleep(1.0)
        broker = Broker(tmp_path, port=broker.port).start()
        # The sink publishes discovery and availability again on every connect.
        before = len(listener.on(configs[0]))
        assert wait_until(lambda: len(listener.on(configs[0])) > before, 60), run.stderr()
        assert wait_until(lambda: listener.on(avail)[-1:] == [b"online"], 30)
        after = event_source.emit(10, interval_s=0.005)
        seqs = {e.seq for e in after}
        assert wait_until(
            lambda: seqs <= {json.loads(m)["seq"] for m in listener.on(events_topic)}, 60
        ), run.stderr()
        # Events published while the broker was down were queued (QoS 1), not lost.
        received = {json.loads(m)["seq"] for m in listener.on(events_topic)}
        assert {e.seq for e in during} <= received

        def status() -> dict:
            return read_json(tmp_path / "run.json").get("mqtt", {})

        assert wait_until(lambda: status().get("connects", 0) >= 2, 30), status()
        assert wait_until(lambda: status().get("published") == 40, 30), status()

        # A crash (no clean disconnect) leaves the last will: offline, retained.
        run.kill()
        assert wait_until(lambda: listener.on(avail)[-1:] == [b"offline"], 30)
    finally:
        run.stop()
        listener.close()
        broker.stop()


def make_certs(tmp: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zeke test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd missing")
def test_tls_and_credentials(event_source, mesh_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca, cert, key = make_certs(tmp_path)
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "zeke", "s3cret"],
        check=True,
        capture_output=True,
    )
    broker = Broker(
        tmp_path,
        extra=(
            f"allow_anonymous false\npassword_file {passwd}\ncafile {ca}\ncertfile {cert}\n"
            f"keyfile {key}\n"
        ),
    ).start()
    listener = Listener(broker.port, ["zeke/#"], tls={"ca_certs": str(ca)}, auth=("zeke", "s3cret"))
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    # Everything from the config file's [mqtt] section, as the service runs it.
    config = tmp_path / "zeke.toml"
    config.write_text(
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\ntls = true\n'
        f'ca_file = "{ca}"\nusername = "zeke"\npassword_file = "{secret}"\n'
    )
    assert subprocess.run(zeke_cmd("config", "validate", str(config)), env=mesh_env).returncode == 0
    run = start_run(event_source, mesh_env, tmp_path, "--config", str(config))
    try:
        assert wait_until(lambda: listener.on("zeke/lobby/availability")[-1:] == [b"online"], 60), (
            run.stderr()
        )
        event_source.wait_for_reader()
        event_source.emit(5, interval_s=0)
        assert wait_until(lambda: len(listener.on("zeke/lobby/events")) == 5, 30)
    finally:
        run.stop()
        listener.close()
        broker.stop()


def test_a_password_in_the_config_file_is_refused_with_the_way_out(
    mesh_env, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "zeke.toml"
    config.write_text('[mqtt]\nenabled = true\nusername = "zeke"\npassword = "s3cret"\n')
    done = subprocess.run(
        zeke_cmd("mesh", "run", "--config", str(config), "--interface", "127.0.0.1"),
        env=mesh_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5, done.stderr
    assert "unknown key 'password' in [mqtt]" in done.stderr
    assert "password_file" in done.stderr
    assert "Traceback" not in done.stderr
