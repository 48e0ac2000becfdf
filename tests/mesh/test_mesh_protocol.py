"""The Python protocol implementation against the shared vectors and its own invariants."""

from __future__ import annotations

import pytest
from mesh_vectors import load

from zeke.events import EmotionEvent
from zeke.mesh import protocol as p

KEY, VECTORS = load()
LINES = [v for v in VECTORS if v.kind in ("ok", "drop")]
STREAMS = [v for v in VECTORS if v.kind == "stream"]


def test_vectors_cover_every_type_and_reason() -> None:
    types = {v.expect.split()[0] for v in LINES if v.kind == "ok"}
    reasons = {v.expect for v in LINES if v.kind == "drop"}
    assert types == set(p.TYPES)
    assert reasons >= {"oversize", "encoding", "version", "syntax", "unknown", "tag"}
    assert {v.expect for v in STREAMS} >= {"ok:ACK,partial", "oversize,ok:ACK"}


@pytest.mark.parametrize("vector", LINES, ids=lambda v: f"{v.kind}-{v.expect}-{v.data[:24]!r}")
def test_line_vector(vector) -> None:  # type: ignore[no-untyped-def]
    if vector.kind == "ok":
        parsed = p.check(vector.data, KEY, vector.sender)
        assert p.describe(parsed) == vector.expect
        # A valid line has exactly one encoding: re-encoding gives the same bytes.
        key = KEY if parsed.tag is not None else None
        sender = vector.sender if parsed.tag is not None else None
        assert p.encode(parsed.message, key, sender) == vector.data + b"\n"
        assert p.line_of(parsed) == vector.data + b"\n"
    else:
        with pytest.raises(p.LineError) as err:
            p.check(vector.data, KEY, vector.sender)
        assert err.value.reason.value == vector.expect


@pytest.mark.parametrize("vector", STREAMS, ids=lambda v: v.expect)
def test_stream_vector(vector) -> None:  # type: ignore[no-untyped-def]
    """Fed one byte at a time, the framer yields lines and counts drops in stream order."""
    reader = p.LineReader(KEY, sender=vector.sender)
    got: list[str] = []
    for byte in vector.data:
        before = reader.counters.as_dict()
        for parsed in reader.feed(bytes([byte])):
            got.append(f"ok:{parsed.type}")
        after = reader.counters.as_dict()
        got += [r for r in after if r != "ok" and after[r] != before[r]]
    before = reader.counters.as_dict()
    reader.close()
    got += [r for r, n in reader.counters.as_dict().items() if n != before[r]]
    assert ",".join(got) == vector.expect


def test_event_from_emotion_maps_units() -> None:
    ev = EmotionEvent(3, "change", 12, "surprise", 0.87349, (1, 2, 3, 4), 1700000000.1234)
    msg = p.event_from_emotion(ev, seq=99)
    assert msg == p.Event(99, "change", 12, "surprise", 873, 1700000000123)
    line = p.encode(msg, KEY)
    assert p.check(line[:-1], KEY, p.APP).message == msg


def test_encode_refuses_untagged_events_and_bad_fields() -> None:
    with pytest.raises(ValueError):
        p.encode(p.Event(1, "enter", 1, "happy", 10, 1))
    with pytest.raises(p.LineError):
        p.encode(p.Event(0, "enter", 1, "happy", 10, 1), KEY)
    with pytest.raises(p.LineError):
        p.encode(p.Command(1, "bad node", "yes", 1), KEY)


def test_line_reader_counts_every_drop() -> None:
    gw = p.gateway_to("0123456789abcdef")
    good = p.encode(p.Ack(5), KEY, gw)
    forged = p.encode(p.Ack(6), bytes(16), gw)
    stream = good + b"garbage\n" + forged + b"Z3 ACK 1\n" + b"x" * 400 + b"\n" + b"Z2 ACK"
    reader = p.LineReader(KEY, sender=gw)
    parsed = reader.feed(stream)
    reader.close()
    assert [m.message for m in parsed] == [p.Ack(5)]
    counts = reader.counters.as_dict()
    assert counts == {
        **counts,
        "ok": 1,
        "syntax": 1,
        "tag": 1,
        "version": 1,
        "oversize": 1,
        "partial": 1,
    }
    assert reader.counters.total_dropped == 5


def test_framer_buffer_stays_bounded() -> None:
    framer = p.Framer()
    for _ in range(1000):
        framer.feed(b"y" * 1000)
        assert len(framer._buf) <= p.MAX_LINE + 1
    assert framer.feed(b"\n") == []
    assert framer.counters.dropped["oversize"] == 1
