"""Settings of the mesh and of the MQTT sink: the ``[mesh]`` and ``[mqtt]`` config sections.

The commands take the same values as explicit options, which win over the file. Values are
strict (see ``zeke.config_values``): every duration is finite and bounded, the baud rate is one
a serial port can run at, the broker host is a host, and a topic prefix has no wildcards.
"""

from __future__ import annotations

import os

from pydantic import Field, ValidationError, model_validator

from zeke.config_values import (
    ConfigPath,
    Host,
    Interface,
    MqttText,
    StrictModel,
    TopicPrefix,
)
from zeke.errors import ConfigError, UsageError
from zeke.inputs import read_regular

#: Longest backoff, heartbeat or timeout that still makes sense for a LAN appliance (seconds).
HOUR_S = 3600.0


class MeshSettings(StrictModel):
    """How the appliance finds, pairs with and feeds gateways."""

    #: Addresses or interface names to speak mDNS on; empty means every interface.
    interfaces: list[Interface] = Field(default_factory=list, max_length=64)
    #: Events kept per gateway while it is away; beyond this the oldest are dropped (counted).
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    #: Reconnect backoff: first delay, cap (seconds).
    backoff_initial_s: float = Field(default=0.2, gt=0, le=HOUR_S)
    backoff_max_s: float = Field(default=10.0, gt=0, le=HOUR_S)
    #: A link that has been silent this long (no ACK/HB) is considered dead and reconnected.
    heartbeat_s: float = Field(default=5.0, gt=0, le=HOUR_S)
    #: TTL (seconds) of a gateway's mDNS records; a crashed gateway vanishes after this.
    mdns_ttl_s: int = Field(default=120, ge=1, le=4500)
    #: Where pairings (per-gateway keys) live; None: the default state directory.
    pairing_file: ConfigPath | None = None
    #: Serial baud rate for direct mode and the software gateway (emotion-mesh wired 115200).
    baud: int = Field(default=115200, ge=300, le=4_000_000)

    @model_validator(mode="after")
    def _backoff_in_order(self) -> MeshSettings:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_initial_s ({self.backoff_initial_s}) must not exceed backoff_max_s "
                f"({self.backoff_max_s})"
            )
        return self


class MqttSettings(StrictModel):
    """Optional fleet sink: events and state to an MQTT broker, Home Assistant discovery."""

    enabled: bool = False
    host: Host = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: MqttText | None = None
    #: A file holding the broker password (keep it 0600); ``$ZEKE_MQTT_PASSWORD`` wins. The
    #: password itself never goes into zeke.toml, which every user may read.
    password_file: ConfigPath | None = None
    tls: bool = False
    #: CA bundle for the broker's certificate (None: the system store when tls is on).
    ca_file: ConfigPath | None = None
    #: Client certificate and key for brokers that require them.
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    #: Topic prefix for events, state and availability: <prefix>/<device>/...
    topic_prefix: TopicPrefix = "zeke"
    #: Home Assistant discovery prefix.
    discovery_prefix: TopicPrefix = "homeassistant"
    #: MQTT carries the keepalive in 16 bits.
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    #: Tracks not updated for this long no longer count as faces in the published state.
    track_timeout_s: float = Field(default=10.0, gt=0, le=24 * HOUR_S)

    def with_options(self, update: dict[str, object]) -> MqttSettings:
        """This section with a command's options on top, validated as strictly as the file: a
        bad option is a ``UsageError`` naming it, not a traceback."""
        try:
            return MqttSettings.model_validate({**self.model_dump(), **update})
        except ValidationError as err:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'mqtt'}: "
                + e["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
                for e in err.errors(include_url=False, include_context=False)[:4]
            ]
            raise UsageError(
                "bad MQTT setting: " + "; ".join(problems),
                hint="check the --mqtt-* options (and [mqtt] in the config file)",
            ) from None

    def resolve_password(self) -> str | None:
        """``$ZEKE_MQTT_PASSWORD``, else the first line of ``password_file``, else None."""
        if os.environ.get("ZEKE_MQTT_PASSWORD"):
            return os.environ["ZEKE_MQTT_PASSWORD"]
        if self.password_file is None:
            return None
        hint = "check [mqtt] password_file (or --mqtt-password-file) and its permissions"
        raw = read_regular(
            self.password_file, "MQTT password file", max_bytes=4096, error=ConfigError,
            hint=hint, missing="cannot read the MQTT password file {}: no such file",
        )  # fmt: skip
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ConfigError(
                f"the MQTT password file {self.password_file} is not UTF-8 text", hint=hint
            ) from None
        return lines[0].strip() if lines else ""
