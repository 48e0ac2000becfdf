"""Reader for firmware/protocol/vectors.txt, the vectors shared with the C++ host tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[2] / "firmware" / "protocol" / "vectors.txt"


@dataclass(frozen=True)
class Vector:
    kind: str  # ok, drop or stream
    sender: str  # the tag context to check with, as zeke.mesh.protocol spells it
    expect: str
    data: bytes


def unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("ascii")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
            continue
        out.append({"\\": 0x5C, "t": 0x09, "n": 0x0A, "r": 0x0D}[nxt])
        i += 2
    return bytes(out)


def load() -> tuple[bytes, list[Vector]]:
    key = b""
    vectors: list[Vector] = []
    for raw in VECTORS.read_text(encoding="ascii").splitlines():
        if not raw or raw.startswith("#"):
            continue
        parts = raw.split("\t")
        if parts[0] == "key":
            key = bytes.fromhex(parts[1])
            continue
        kind, sender, expect, data = parts
        vectors.append(Vector(kind, sender.replace(":", " "), expect, unescape(data)))
    return key, vectors


def escape(data: bytes) -> str:
    """The vectors file's escaping (the inverse of ``unescape``)."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)
