"""Value types every config section shares: strict, finite, and free of control characters.

TOML already says what type a value is, so nothing is coerced: ``true`` is not 1, ``"640"``
is not a width and ``"yes"`` is not a flag. Floats must be finite, because ``inf`` and ``nan``
would reach timers and JSON. Paths and names are checked where a user would expect them to
be: a NUL byte or an over-long name is refused here, not by the kernel long after startup.
The ``[mesh]`` and ``[mqtt]`` models use these too, so they live apart from ``zeke.config``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

#: The kernel's limits (Linux): a whole path, and one name in it, in bytes.
PATH_MAX = 4095
NAME_MAX = 255

STRICT = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, no coercion, no inf/nan, assignments checked."""

    model_config = STRICT


def clip(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters so a huge value is never echoed whole."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, (str, bytes)) else ""
    return text[: limit - 1] + "…" + size


def _no_control(value: str) -> str:
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"must not contain control characters such as {bad!r}")
    return value


def check_path(value: object) -> Path:
    """``value`` as a path a user can mean: a non-empty string, no control characters, within
    the kernel's limits (raises ValueError saying which)."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("must be a path, as a quoted string")
    if not value:
        raise ValueError("must not be empty (leave the key out to use the default)")
    _no_control(value)
    encoded = os.fsencode(value)
    if len(encoded) > PATH_MAX:
        raise ValueError(f"is {len(encoded)} bytes long; a path may have at most {PATH_MAX}")
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX:
        raise ValueError(f"has a name of {longest} bytes; a file name may have at most {NAME_MAX}")
    return Path(value)


#: A filesystem path (a TOML string).
ConfigPath = Annotated[Path, BeforeValidator(check_path)]
#: A one-line string: no NUL, no newline, no other control character.
Text = Annotated[str, AfterValidator(_no_control)]

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def _host(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if "://" in value:
        raise ValueError("must be a host name or address only, without a scheme such as mqtt://")
    _no_control(value)
    try:
        ipaddress.ip_address(value.strip("[]"))
        return value.strip("[]")
    except ValueError:
        pass
    if ":" in value:
        raise ValueError("must be a host name or address only (the port is a key of its own)")
    name = value[:-1] if value.endswith(".") else value
    if len(name) > 253 or not all(_LABEL.fullmatch(part) for part in name.split(".")):
        raise ValueError(
            "must be a host name (letters, digits, '-' and '.', at most 253 characters) "
            "or an IP address"
        )
    return value


#: A host name or IP address.
Host = Annotated[str, AfterValidator(_host)]


def _topic(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    _no_control(value)
    if "#" in value or "+" in value:
        raise ValueError("must not contain the MQTT wildcards '#' or '+'")
    if value.startswith("$"):
        raise ValueError("must not start with '$' (topics the broker reserves)")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError("must not start or end with '/' or have an empty level ('//')")
    if len(value.encode("utf-8")) > 1024:
        raise ValueError("must be at most 1024 bytes")
    return value


#: The start of an MQTT topic: levels separated by '/', no wildcards.
TopicPrefix = Annotated[str, AfterValidator(_topic)]


def _interface(value: str) -> str:
    _no_control(value)
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", value):
        raise ValueError(
            "each entry must be an IP address or an interface name (at most 15 letters, digits, "
            "'.', '_', '-', e.g. eth0)"
        )
    return value


#: An IP address or a network interface name.
Interface = Annotated[str, AfterValidator(_interface)]


def _mqtt_string(value: str) -> str:
    _no_control(value)
    if len(value.encode("utf-8")) > 65535:
        raise ValueError("must be at most 65535 bytes (MQTT's limit)")
    return value


#: A string sent to the broker (user name): MQTT caps them at 65535 bytes.
MqttText = Annotated[str, AfterValidator(_mqtt_string)]
