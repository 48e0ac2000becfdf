"""Fuzz the Python parser: random and mutated lines never crash or hang it, all are counted."""

from __future__ import annotations

import random
import signal

import pytest
from mesh_fuzz import fuzz_lines, seeds
from mesh_vectors import load

from zeke.mesh import protocol as p

KEY, _ = load()


@pytest.fixture
def hang_guard():  # type: ignore[no-untyped-def]
    """Fail (not hang) if the parser ever loops: a generous alarm, not a timing assertion."""

    def on_alarm(signum, frame):  # type: ignore[no-untyped-def]
        raise AssertionError("the parser hung")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_fuzz_lines_one_by_one(hang_guard) -> None:  # type: ignore[no-untyped-def]
    lines = fuzz_lines(20_000, seed=1)
    reader = p.LineReader(KEY)
    expected = 0
    accepted = 0
    for line in lines:
        stripped = line[:-1] if line.endswith(b"\r") else line
        expected += bool(stripped)
        before = reader.counters.ok + reader.counters.total_dropped
        for parsed in reader.feed(line + b"\n"):
            accepted += 1
            # Anything accepted re-encodes to exactly the bytes that came in.
            assert p.line_of(parsed) == stripped + b"\n"
        after = reader.counters.ok + reader.counters.total_dropped
        assert after - before == (1 if stripped else 0), line
    assert reader.counters.ok == accepted
    assert reader.counters.ok + reader.counters.total_dropped == expected
    dropped = reader.counters.as_dict()
    assert all(dropped[r] > 0 for r in ("oversize", "encoding", "version", "syntax", "tag"))


def test_fuzz_streams_in_random_chunks(hang_guard) -> None:  # type: ignore[no-untyped-def]
    """Lines glued together with junk and cut at random points: the framer never loses count."""
    rng = random.Random(2)
    pool = seeds()
    gw = p.gateway_to("00000000000000aa")  # not the vectors' session: their acks are junk here
    good = [p.encode(p.Ack(i), KEY, gw) for i in range(1, 2001)]
    chunks = []
    for line in good:
        chunks.append(line)
        if rng.random() < 0.5:
            junk = rng.choice(pool)[: rng.randrange(60)] + rng.randbytes(rng.randrange(10))
            chunks.append(junk.replace(b"\n", b"") + b"\n")
    stream = b"".join(chunks)
    lines = [c[:-1] for c in chunks]
    expected_lines = sum(1 for c in lines if (c[:-1] if c.endswith(b"\r") else c))
    reader = p.LineReader(KEY, sender=gw)
    acks = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 300)
        for parsed in reader.feed(stream[pos : pos + step]):
            if isinstance(parsed.message, p.Ack) and 1 <= parsed.message.seq <= 2000:
                acks.append(parsed.message.seq)
        pos += step
    reader.close()
    assert acks == list(range(1, 2001))
    assert reader.counters.ok + reader.counters.total_dropped == expected_lines
    assert reader.counters.total_dropped > 500
