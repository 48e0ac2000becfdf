"""Fuzz: hundreds of mutated bundles, every one refused cleanly, the active bundle untouched.

Every byte of a bundle is covered by the signature, a sha256 or the canonical layout, so any
mutation at all must be refused, and before the self-test (verification never unpacks).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from zeke.bundles.archive import BLOCK
from zeke.bundles.errors import BundleError
from zeke.bundles.install import install
from zeke.bundles.verify import verify_bundle, verify_installed

from .conftest import run_zeke, snapshot

SEED = 20240917
PER_STRATEGY = 45


def _layout(data: bytes) -> tuple[list[int], list[int], list[range]]:
    """Header byte offsets, zero padding/trailer offsets and member data ranges of a bundle."""
    headers, zeros, ranges, offset = [], [], [], 0
    while offset + BLOCK <= len(data) and data[offset : offset + BLOCK] != bytes(BLOCK):
        size = int(data[offset + 124 : offset + 135], 8)
        headers.extend(range(offset, offset + BLOCK))
        end = offset + BLOCK + size
        padded_end = offset + BLOCK + -(-size // BLOCK) * BLOCK
        zeros.extend(range(end, padded_end))
        ranges.append(range(offset + BLOCK, end))
        offset = padded_end
    zeros.extend(range(offset, len(data)))
    return headers, zeros, ranges


def mutations(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    headers, zeros, ranges = _layout(data)
    signed = [*ranges[0], *ranges[1]]  # bundle.json and bundle.sig
    size = len(data)

    def put(at: int, value: bytes) -> bytes:
        return data[:at] + value + data[at + len(value) :]

    def other_byte(at: int) -> bytes:
        return bytes([(data[at] + rng.randrange(1, 256)) % 256])

    strategies = {
        "flip-bit": lambda: (lambda at: put(at, bytes([data[at] ^ (1 << rng.randrange(8))])))(
            rng.randrange(size)
        ),
        "random-byte": lambda: (lambda at: put(at, other_byte(at)))(rng.randrange(size)),
        "header-byte": lambda: (lambda at: put(at, other_byte(at)))(rng.choice(headers)),
        "signed-byte": lambda: (lambda at: put(at, other_byte(at)))(rng.choice(signed)),
        "signed-bit": lambda: (lambda at: put(at, bytes([data[at] ^ (1 << rng.randrange(8))])))(
            rng.choice(signed)
        ),
        "padding-byte": lambda: (lambda at: put(at, other_byte(at)))(rng.choice(zeros)),
        "truncate": lambda: data[: rng.randrange(size)],
        "insert": lambda: (lambda at: data[:at] + rng.randbytes(rng.randint(1, 600)) + data[at:])(
            rng.randrange(size)
        ),
        "delete": lambda: (lambda at: data[:at] + data[at + rng.randint(1, 2000) :])(
            rng.randrange(size - 1)
        ),
        "duplicate-blocks": lambda: (
            lambda at, n: data[: at + n] + data[at : at + n] + data[at + n :]
        )(rng.randrange(size // BLOCK) * BLOCK, BLOCK * rng.randint(1, 4)),
        "swap-blocks": lambda: _swap(data, rng),
        "append": lambda: data + rng.randbytes(rng.randint(1, 2048)),
        "overwrite-run": lambda: (lambda at: put(at, rng.randbytes(min(64, size - at))))(
            rng.randrange(size)
        ),
        "zero-run": lambda: (lambda at: put(at, bytes(min(rng.randint(1, 700), size - at))))(
            rng.randrange(size)
        ),
    }
    cases = []
    for name, make in strategies.items():
        made = 0
        while made < PER_STRATEGY:
            mutated = make()
            if mutated != data:
                cases.append((name, mutated))
                made += 1
    return cases


def _swap(data: bytes, rng: random.Random) -> bytes:
    blocks = [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]
    a, b = rng.sample(range(len(blocks)), 2)
    blocks[a], blocks[b] = blocks[b], blocks[a]
    return b"".join(blocks)


def test_fuzzed_bundles_are_all_refused(tmp_path, store, trusted, make_bundle):
    good = make_bundle("v3").read_bytes()
    assert verify_bundle(make_bundle("v3"), trusted).manifest.version == "v3"
    cases = mutations(good, random.Random(SEED))
    assert len(cases) >= 500
    before = snapshot(store.root)
    reached_self_test: list[Path] = []
    reasons: Counter[str] = Counter()
    target = tmp_path / "fuzzed.bundle"
    for index, (strategy, data) in enumerate(cases):
        target.write_bytes(data)
        with pytest.raises(BundleError) as caught:
            install(target, store=store, trusted=trusted, self_test=reached_self_test.append)
        message = caught.value.message
        assert message and "\n" not in message, (strategy, index)
        reasons[re.sub(r'"[^"]*"|\d+', "_", message)[:40]] += 1
        assert snapshot(store.root) == before, (strategy, index, message)
    assert reached_self_test == []
    assert verify_installed(store.active_dir(), trusted).manifest.version == "v2"
    assert len(reasons) >= 10, reasons  # refused for many different, specific reasons


def test_fuzzed_bundles_through_the_cli_never_print_a_traceback(tmp_path, store, env, make_bundle):
    good = make_bundle("v3").read_bytes()
    rng = random.Random(SEED + 1)
    cases = mutations(good, rng)
    before = snapshot(store.root)
    for strategy, data in rng.sample(cases, 6):
        target = tmp_path / f"{strategy}.bundle"
        target.write_bytes(data)
        done = run_zeke("models", "install", str(target), env=env)
        assert done.returncode == 4, (strategy, done.stderr)
        assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert snapshot(store.root) == before
