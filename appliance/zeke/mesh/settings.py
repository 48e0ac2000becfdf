"""Settings of the mesh and of the MQTT sink, as pydantic models with working defaults.

The commands take the same values as explicit options; the root config embeds these models.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MeshSettings(BaseModel):
    """How the appliance finds, pairs with and feeds gateways."""

    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
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
