"""Settings of the mesh and of the MQTT sink: the ``[mesh]`` and ``[mqtt]`` config sections.

The commands take the same values as explicit options, which win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from zeke.errors import ConfigError


class MeshSettings(BaseModel):
    """How the appliance finds, pairs with and feeds gateways."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: Addresses or interface names to speak mDNS on; empty means every interface.
    interfaces: list[str] = Field(default_factory=list)
    #: Events kept per gateway while it is away; beyond this the oldest are dropped (counted).
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    #: Reconnect backoff: first delay, cap (seconds).
    backoff_initial_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    #: A link that has been silent this long (no ACK/HB) is considered dead and reconnected.
    heartbeat_s: float = Field(default=5.0, gt=0)
    #: TTL (seconds) of a gateway's mDNS records; a crashed gateway vanishes after this.
    mdns_ttl_s: int = Field(default=120, ge=1, le=4500)
    #: Where pairings (per-gateway keys) live; None: the default state directory.
    pairing_file: Path | None = None
    #: Serial baud rate for direct mode and the software gateway (emotion-mesh wired 115200).
    baud: int = 115200


class MqttSettings(BaseModel):
    """Optional fleet sink: events and state to an MQTT broker, Home Assistant discovery."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    #: A file holding the broker password (keep it 0600); ``$ZEKE_MQTT_PASSWORD`` wins. The
    #: password itself never goes into zeke.toml, which every user may read.
    password_file: Path | None = None
    tls: bool = False
    #: CA bundle for the broker's certificate (None: the system store when tls is on).
    ca_file: Path | None = None
    #: Client certificate and key for brokers that require them.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Topic prefix for events, state and availability: <prefix>/<device>/...
    topic_prefix: str = "zeke"
    #: Home Assistant discovery prefix.
    discovery_prefix: str = "homeassistant"
    keepalive_s: int = Field(default=30, ge=5)
    #: Tracks not updated for this long no longer count as faces in the published state.
    track_timeout_s: float = Field(default=10.0, gt=0)

    def resolve_password(self) -> str | None:
        """``$ZEKE_MQTT_PASSWORD``, else the first line of ``password_file``, else None."""
        if os.environ.get("ZEKE_MQTT_PASSWORD"):
            return os.environ["ZEKE_MQTT_PASSWORD"]
        if self.password_file is None:
            return None
        try:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ConfigError(
                f"cannot read the MQTT password file {self.password_file}: {err.strerror}",
                hint="check [mqtt] password_file (or --mqtt-password-file) and its permissions",
            ) from None
        return lines[0].strip() if lines else ""
