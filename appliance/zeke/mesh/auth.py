"""Keys and nonces for the protocol's tags: generation, text form, file form."""

from __future__ import annotations

import secrets

from zeke.errors import UsageError
from zeke.mesh.protocol import KEY_BYTES, NONCE_HEX


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_nonce() -> str:
    return secrets.token_hex(NONCE_HEX // 2)


def format_key(key: bytes) -> str:
    """A key as users copy it: 32 hex digits in groups of four."""
    text = key.hex()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_key(text: str) -> bytes:
    """Accepts a key as printed by ``format_key`` or as plain hex, any case, any separators."""
    cleaned = "".join(ch for ch in text.strip().lower() if ch not in "-: ")
    try:
        key = bytes.fromhex(cleaned)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise UsageError(
            "not a gateway key: expected 32 hex digits",
            hint="copy the key printed by `zeke gateway --show-key` on the gateway",
        )
    return key
