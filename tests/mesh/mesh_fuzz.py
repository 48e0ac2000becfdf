"""Random and mutated protocol lines for fuzzing both parsers (deterministic per seed)."""

from __future__ import annotations

import hashlib
import hmac
import random

from mesh_vectors import load

WORDS = [
    b"Z2",
    b"Z1",
    b"EVT",
    b"HELLO",
    b"CMD",
    b"ACK",
    b"HB",
    b"KEY",
    b"#",
    b"-",
    b"happy",
    b"0",
    b" ",
    b"4294967296",
    b"gw",
    b"node",
    b"enter",
    b"yes",
]


def seeds() -> list[bytes]:
    return [v.data for v in load()[1] if v.kind in ("ok", "drop")]


def mutate(rng: random.Random, line: bytes, pool: list[bytes], edits: int = 4) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, edits)):
        pos = rng.randrange(len(data)) if data else 0
        op = rng.randrange(6)
        if op == 0 and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(pos, rng.randrange(0x20, 0x7F))
        elif op == 2 and data:
            del data[pos]
        elif op == 3:
            del data[pos:]
        elif op == 4:
            data += rng.choice(pool)[: rng.randrange(40)]
        elif data:
            data[pos] = rng.choice(b"0123456789abcdef #-")
    return bytes(data)


def fuzz_lines(count: int, seed: int) -> list[bytes]:
    """``count`` lines without LF: random bytes, random words, and mutated vectors."""
    rng = random.Random(seed)
    pool = seeds()
    key, vectors = load()
    valid = [v.data for v in vectors if v.kind == "ok" and b" #" in v.data]
    out = []
    for _ in range(count):
        kind = rng.randrange(8)
        if kind == 2:  # mutate a valid line's fields, then tag it as the appliance's: reaches
            # the fields (the fuzz readers check tags as the appliance's)
            body = rng.choice(valid).rsplit(b" #", 1)[0]
            body = mutate(rng, body, pool, edits=1)
            mac = hmac.new(key, b"app\n" + body, hashlib.sha256)
            line = body + b" #" + mac.hexdigest()[:16].encode()
        elif kind == 0:
            line = rng.randbytes(rng.randrange(200))
        elif kind == 1:
            line = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 10)))
        else:
            line = mutate(rng, rng.choice(pool), pool)
        out.append(line.replace(b"\n", b" "))
    return out
