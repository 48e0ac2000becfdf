"""The MQTT sink for fleets: events, per-device state and Home Assistant discovery.

Topics (``<prefix>`` defaults to ``zeke``, ``<device>`` is the appliance's id):

- ``<prefix>/<device>/events``: every event as its JSON record (QoS 1, not retained)
- ``<prefix>/<device>/state``: ``{"dominant_emotion", "face_count", "ts"}`` (retained)
- ``<prefix>/<device>/availability``: ``online`` / ``offline`` (retained; ``offline`` is also
  the last will, so a crashed appliance shows as unavailable)
- ``<discovery>/sensor/zeke_<device>/{dominant_emotion,face_count}/config``: Home Assistant
  discovery (retained), published again on every connect so a broker restart loses nothing.

paho-mqtt's network thread reconnects with backoff; QoS 1 events published while the broker
is away are queued (bounded) and delivered when it is back.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass

from zeke import __version__
from zeke.errors import ConfigError
from zeke.events import EmotionEvent
from zeke.mesh.settings import MqttSettings

log = logging.getLogger(__name__)
MAX_QUEUED = 10_000


@dataclass
class _Track:
    emotion: str
    score: float
    seen: float


class FleetState:
    """Faces in view and the dominant emotion, from the event stream (tracks time out)."""

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self._tracks: dict[int, _Track] = {}

    def update(self, event: EmotionEvent, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if event.kind == "leave":
            self._tracks.pop(event.track_id, None)
        else:
            self._tracks[event.track_id] = _Track(event.emotion, event.score, now)

    def snapshot(self, now: float | None = None) -> tuple[str, int]:
        now = time.monotonic() if now is None else now
        for track_id in [t for t, tr in self._tracks.items() if now - tr.seen > self.timeout_s]:
            del self._tracks[track_id]
        if not self._tracks:
            return "none", 0
        votes: Counter[str] = Counter()
        weight: Counter[str] = Counter()
        for tr in self._tracks.values():
            votes[tr.emotion] += 1
            weight[tr.emotion] += tr.score  # type: ignore[assignment]
        dominant = max(votes, key=lambda e: (votes[e], weight[e]))
        return dominant, len(self._tracks)


class MqttSink:
    def __init__(self, settings: MqttSettings, device_id: str, device_name: str | None = None):
        self.settings = settings
        self.device_id = device_id
        self.device_name = device_name or device_id
        base = f"{settings.topic_prefix}/{device_id}"
        self.topic_events = f"{base}/events"
        self.topic_state = f"{base}/state"
        self.topic_availability = f"{base}/availability"
        self.state = FleetState(settings.track_timeout_s)
        self.connects = 0
        self.published = 0
        self.last_error = ""
        self._client = None
        self._lock = threading.Lock()
        self._last_state: tuple[str, int] | None = None

    def discovery_topics(self) -> dict[str, dict[str, object]]:
        """Home Assistant discovery config per sensor topic."""
        device = {
            "identifiers": [f"zeke_{self.device_id}"],
            "name": self.device_name,
            "manufacturer": "zeke",
            "model": "zeke appliance",
            "sw_version": __version__,
        }
        common = {
            "state_topic": self.topic_state,
            "availability_topic": self.topic_availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        prefix = f"{self.settings.discovery_prefix}/sensor/zeke_{self.device_id}"
        return {
            f"{prefix}/dominant_emotion/config": {
                **common,
                "name": "Dominant emotion",
                "unique_id": f"zeke_{self.device_id}_dominant_emotion",
                "value_template": "{{ value_json.dominant_emotion }}",
                "icon": "mdi:emoticon-outline",
            },
            f"{prefix}/face_count/config": {
                **common,
                "name": "Face count",
                "unique_id": f"zeke_{self.device_id}_face_count",
                "value_template": "{{ value_json.face_count }}",
                "state_class": "measurement",
                "icon": "mdi:account-group",
            },
        }

    def start(self) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError as err:
            raise ConfigError(
                "MQTT needs paho-mqtt", hint="install it: pip install 'zeke[mqtt]'"
            ) from err
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"zeke-{self.device_id}", clean_session=True
        )
        client.will_set(self.topic_availability, "offline", qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, s.resolve_password())
        if s.tls:
            for path in (s.ca_file, s.cert_file, s.key_file):
                if path is not None and not path.is_file():
                    raise ConfigError(f"MQTT TLS file {path} not found", hint="check the path")
            try:
                client.tls_set(
                    ca_certs=str(s.ca_file) if s.ca_file else None,
                    certfile=str(s.cert_file) if s.cert_file else None,
                    keyfile=str(s.key_file) if s.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (ssl.SSLError, OSError, ValueError) as err:
                raise ConfigError(
                    f"MQTT TLS setup failed: {err}", hint="check the CA file"
                ) from err
        client.max_queued_messages_set(MAX_QUEUED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        client.loop_start()
        self._client = client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        self.connects += 1
        self.last_error = ""
        log.info("MQTT connected to %s:%d", self.settings.host, self.settings.port)
        for topic, config in self.discovery_topics().items():
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        client.publish(self.topic_availability, "online", qos=1, retain=True)
        with self._lock:
            self._last_state = None
        self._publish_state(force=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            self.last_error = f"disconnected: {reason_code}"
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)

    def _publish_state(self, force: bool = False) -> None:
        if self._client is None:
            return
        with self._lock:
            snapshot = self.state.snapshot()
            if not force and snapshot == self._last_state:
                return
            self._last_state = snapshot
        doc = {"dominant_emotion": snapshot[0], "face_count": snapshot[1], "ts": time.time()}
        self._client.publish(self.topic_state, json.dumps(doc), qos=1, retain=True)

    def publish_event(self, event: EmotionEvent) -> None:
        """Publish one event and, if it changed, the device state. Never blocks."""
        if self._client is None:
            return
        with self._lock:
            self.state.update(event)
        self._client.publish(self.topic_events, event.to_json(), qos=1)
        self.published += 1
        self._publish_state()

    def status(self) -> dict[str, object]:
        connected = bool(self._client is not None and self._client.is_connected())
        return {
            "connected": connected,
            "connects": self.connects,
            "published": self.published,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        """Say offline (retained) and disconnect cleanly, so the last will is not needed."""
        client, self._client = self._client, None
        if client is None:
            return
        if client.is_connected():
            info = client.publish(self.topic_availability, "offline", qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        client.disconnect()
        client.loop_stop()
