"""The zeke line protocol (version 2): one text line per message, parseable without a heap.

The byte-level rules live in ``firmware/PROTOCOL.md``; this module and the C++ library in
``firmware/lib/zekeproto`` implement them and are held to the same test vectors
(``firmware/protocol/vectors.txt``). Every line that is not valid is dropped and counted by
reason, never raised past the reader: the MCU on the other end may be rebooting, noisy or hostile.
"""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from hashlib import sha256

from zeke.events import EmotionEvent

PROTOCOL_VERSION = 2
_HEAD = f"Z{PROTOCOL_VERSION}"
#: Longest line in bytes, not counting the LF (and an optional CR before it).
MAX_LINE = 127
TAG_BYTES = 8
KEY_BYTES = 16
NONCE_HEX = 16

ROLES = ("app", "gw", "node")
KINDS = ("enter", "change", "update", "leave")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
COMMANDS = ("yes", "no", "capture", "reset")
TYPES = ("HELLO", "EVT", "CMD", "ACK", "HB", "KEY")

_U32 = 0xFFFFFFFF
_TS_MAX = 10**15 - 1
_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_FW_CHARS = _ID_CHARS | {ord("+")}
_HEX = frozenset(b"0123456789abcdef")
_DIGITS = frozenset(b"0123456789")


class Drop(str, Enum):
    """Why a line was dropped. The names are part of the protocol (counters, vectors)."""

    OVERSIZE = "oversize"
    ENCODING = "encoding"
    VERSION = "version"
    SYNTAX = "syntax"
    UNKNOWN = "unknown"
    TAG = "tag"
    PARTIAL = "partial"
    DUPLICATE = "duplicate"


class LineError(ValueError):
    """A line that is not a valid protocol line; ``reason`` says which rule it broke."""

    def __init__(self, reason: Drop, detail: str = ""):
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Hello:
    """Version exchange and key proof. ``peer_nonce`` None: an opening hello (untagged)."""

    role: str
    id: str
    fw: str
    nonce: str
    peer_nonce: str | None
    last: int


@dataclass(frozen=True, slots=True)
class Event:
    """One emotion event: score in permille, ts in milliseconds since the epoch."""

    seq: int
    kind: str
    track: int
    emotion: str
    score: int
    ts: int


@dataclass(frozen=True, slots=True)
class Command:
    """Button feedback from a node about the track it shows."""

    seq: int
    node: str
    command: str
    track: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Cumulative: every event up to ``seq`` has been delivered downstream."""

    seq: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    uptime: int
    nodes: int
    dropped: int


@dataclass(frozen=True, slots=True)
class KeyProvision:
    """Sets a node's key; accepted by firmware only on its USB serial port."""

    key: bytes


Message = Hello | Event | Command | Ack | Heartbeat | KeyProvision


@dataclass(frozen=True, slots=True)
class Parsed:
    """A syntactically valid line: the message, the signed span and the tag (if any)."""

    message: Message
    body: bytes
    tag: bytes | None

    @property
    def type(self) -> str:
        return _TYPE_OF[type(self.message)]


# --- tags -------------------------------------------------------------------------------------

#: Tag contexts: who made a tag. A receiver names the sender it expects, never the line's own
#: claim, so a line tagged by one role can never pass as another's (no reflection). Gateways
#: bind what they send an appliance to that appliance's session nonce (``gateway_to``).
APP = "app"
NODE = "node"


def gateway_to(app_nonce: str) -> str:
    """The context of lines a gateway sends in the session the appliance opened with this nonce."""
    return f"gw {app_nonce}"


def compute_tag(key: bytes, body: bytes, sender: str) -> bytes:
    """First 8 bytes of HMAC-SHA256(key, sender context, LF, body); body ends before `` #``."""
    return hmac.new(key, sender.encode("ascii") + b"\n" + body, sha256).digest()[:TAG_BYTES]


def verify(parsed: Parsed, key: bytes, sender: str) -> bool:
    """True if ``sender`` tagged the line with ``key``. Untagged lines never verify."""
    if parsed.tag is None:
        return False
    return hmac.compare_digest(compute_tag(key, parsed.body, sender), parsed.tag)


def sender_of(message: Message) -> str | None:
    """The context a sender tags ``message`` with, where its type fixes it (None: say it)."""
    if isinstance(message, Event):
        return APP
    if isinstance(message, Command):
        return NODE
    if isinstance(message, Hello) and message.peer_nonce is not None:
        if message.role == "gw":
            return gateway_to(message.peer_nonce)
        return message.role
    return None


# --- parsing ----------------------------------------------------------------------------------


def _uint(raw: bytes, maximum: int, minimum: int = 0) -> int:
    if not raw or len(raw) > len(str(maximum)) or not _DIGITS.issuperset(raw):
        raise LineError(Drop.SYNTAX, "bad number")
    if raw[0] == 0x30 and len(raw) > 1:
        raise LineError(Drop.SYNTAX, "leading zero")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise LineError(Drop.SYNTAX, "number out of range")
    return value


def _word(raw: bytes, allowed: tuple[str, ...]) -> str:
    text = raw.decode("ascii")
    if text not in allowed:
        raise LineError(Drop.SYNTAX, f"unexpected {text!r}")
    return text


def _ident(raw: bytes, chars: frozenset[int], max_len: int) -> str:
    if not 1 <= len(raw) <= max_len or not chars.issuperset(raw):
        raise LineError(Drop.SYNTAX, "bad identifier")
    return raw.decode("ascii")


def _hex(raw: bytes, length: int) -> str:
    if len(raw) != length or not _HEX.issuperset(raw):
        raise LineError(Drop.SYNTAX, "bad hex field")
    return raw.decode("ascii")


def _hello(f: list[bytes]) -> Hello:
    if len(f) != 6:
        raise LineError(Drop.SYNTAX, "HELLO needs 6 fields")
    peer = None if f[4] == b"-" else _hex(f[4], NONCE_HEX)
    return Hello(
        role=_word(f[0], ROLES),
        id=_ident(f[1], _ID_CHARS, 24),
        fw=_ident(f[2], _FW_CHARS, 16),
        nonce=_hex(f[3], NONCE_HEX),
        peer_nonce=peer,
        last=_uint(f[5], _U32),
    )


def _event(f: list[bytes]) -> Event:
    if len(f) != 6:
        raise LineError(Drop.SYNTAX, "EVT needs 6 fields")
    return Event(
        seq=_uint(f[0], _U32, 1),
        kind=_word(f[1], KINDS),
        track=_uint(f[2], _U32),
        emotion=_word(f[3], EMOTIONS),
        score=_uint(f[4], 1000),
        ts=_uint(f[5], _TS_MAX),
    )


def _command(f: list[bytes]) -> Command:
    if len(f) != 4:
        raise LineError(Drop.SYNTAX, "CMD needs 4 fields")
    return Command(
        seq=_uint(f[0], _U32, 1),
        node=_ident(f[1], _ID_CHARS, 24),
        command=_word(f[2], COMMANDS),
        track=_uint(f[3], _U32),
    )


def _ack(f: list[bytes]) -> Ack:
    if len(f) != 1:
        raise LineError(Drop.SYNTAX, "ACK needs 1 field")
    return Ack(seq=_uint(f[0], _U32))


def _heartbeat(f: list[bytes]) -> Heartbeat:
    if len(f) != 3:
        raise LineError(Drop.SYNTAX, "HB needs 3 fields")
    return Heartbeat(uptime=_uint(f[0], _U32), nodes=_uint(f[1], 65535), dropped=_uint(f[2], _U32))


def _key(f: list[bytes]) -> KeyProvision:
    if len(f) != 1:
        raise LineError(Drop.SYNTAX, "KEY needs 1 field")
    return KeyProvision(key=bytes.fromhex(_hex(f[0], KEY_BYTES * 2)))


_PARSERS = {
    b"HELLO": _hello,
    b"EVT": _event,
    b"CMD": _command,
    b"ACK": _ack,
    b"HB": _heartbeat,
    b"KEY": _key,
}
_TYPE_OF = {
    Hello: "HELLO",
    Event: "EVT",
    Command: "CMD",
    Ack: "ACK",
    Heartbeat: "HB",
    KeyProvision: "KEY",
}


def _tag_rule(message: Message) -> bool:
    """Whether this message must carry a tag (True) or must not (False)."""
    if isinstance(message, KeyProvision):
        return False
    if isinstance(message, Hello):
        return message.peer_nonce is not None
    return True


def parse(line: bytes) -> Parsed:
    """Parse one line (without its LF). Raises ``LineError`` with the rule it broke.

    Checks run in the order of PROTOCOL.md: size, encoding, version, type, tag shape, fields,
    tag presence. Authenticity (``verify``) is a separate step because it needs the key.
    """
    if len(line) > MAX_LINE:
        raise LineError(Drop.OVERSIZE)
    if line and (min(line) < 0x20 or max(line) > 0x7E):
        raise LineError(Drop.ENCODING)
    fields = line.split(b" ")
    head = fields[0]
    digits = head[1:]
    if head[:1] != b"Z" or not 1 <= len(digits) <= 3 or not _DIGITS.issuperset(digits):
        raise LineError(Drop.SYNTAX, "not a zeke line")
    if len(digits) > 1 and digits[0] == 0x30:
        raise LineError(Drop.SYNTAX, "leading zero in version")
    if int(digits) != PROTOCOL_VERSION:
        raise LineError(Drop.VERSION, f"version {digits.decode()}")
    if len(fields) < 2 or not fields[1]:
        raise LineError(Drop.SYNTAX, "no type")
    parser = _PARSERS.get(fields[1])
    if parser is None:
        raise LineError(Drop.UNKNOWN, "unknown type")
    tag = None
    body = line
    if fields[-1][:1] == b"#":
        raw_tag = fields.pop()[1:]
        if len(raw_tag) != TAG_BYTES * 2 or not _HEX.issuperset(raw_tag):
            raise LineError(Drop.TAG, "malformed tag")
        tag = bytes.fromhex(raw_tag.decode())
        body = line[: -(TAG_BYTES * 2 + 2)]
    message = parser(fields[2:])
    if _tag_rule(message):
        if tag is None:
            raise LineError(Drop.TAG, "missing tag")
    elif tag is not None:
        raise LineError(Drop.SYNTAX, "tag not allowed here")
    return Parsed(message, body, tag)


def check(line: bytes, key: bytes, sender: str) -> Parsed:
    """Parse and, where a tag is required, verify that ``sender`` made it: the acceptance test."""
    parsed = parse(line)
    if parsed.tag is not None and not verify(parsed, key, sender):
        raise LineError(Drop.TAG, "wrong tag")
    return parsed


# --- encoding ---------------------------------------------------------------------------------


def _body(message: Message) -> str:
    if isinstance(message, Event):
        m = message
        return f"{_HEAD} EVT {m.seq} {m.kind} {m.track} {m.emotion} {m.score} {m.ts}"
    if isinstance(message, Hello):
        m = message
        peer = m.peer_nonce or "-"
        return f"{_HEAD} HELLO {m.role} {m.id} {m.fw} {m.nonce} {peer} {m.last}"
    if isinstance(message, Command):
        return f"{_HEAD} CMD {message.seq} {message.node} {message.command} {message.track}"
    if isinstance(message, Ack):
        return f"{_HEAD} ACK {message.seq}"
    if isinstance(message, Heartbeat):
        return f"{_HEAD} HB {message.uptime} {message.nodes} {message.dropped}"
    if isinstance(message, KeyProvision):
        return f"{_HEAD} KEY {message.key.hex()}"
    raise TypeError(f"not a protocol message: {message!r}")


def encode(message: Message, key: bytes | None = None, sender: str | None = None) -> bytes:
    """The line for ``message`` including its LF, tagged with ``key`` where the rules say so.

    ``sender`` is the tag context; events, commands and hellos imply theirs, acks and
    heartbeats must say it (``gateway_to(nonce)`` or ``NODE``). Encoded lines are checked
    against the parser so nothing invalid ever leaves this process.
    """
    body = _body(message).encode("ascii")
    if _tag_rule(message):
        context = sender or sender_of(message)
        if key is None or context is None:
            raise ValueError(f"{_TYPE_OF[type(message)]} lines must be tagged: a key is needed")
        body += b" #" + compute_tag(key, body, context).hex().encode()
    parse(body)
    return body + b"\n"


def encode_head(type_name: str) -> bytes:
    """How every line of this type starts on the wire (``b"Z2 EVT "``)."""
    return f"{_HEAD} {type_name} ".encode("ascii")


def line_of(parsed: Parsed) -> bytes:
    """The wire form of a parsed line again, LF included (to relay it verbatim)."""
    if parsed.tag is None:
        return parsed.body + b"\n"
    return parsed.body + b" #" + parsed.tag.hex().encode() + b"\n"


def describe(parsed: Parsed) -> str:
    """Canonical one-line dump of a parsed message, shared with the C++ tests via vectors."""
    m = parsed.message
    if isinstance(m, Hello):
        peer = m.peer_nonce or "-"
        return f"HELLO role={m.role} id={m.id} fw={m.fw} nonce={m.nonce} peer={peer} last={m.last}"
    if isinstance(m, Event):
        return (
            f"EVT seq={m.seq} kind={m.kind} track={m.track} emotion={m.emotion} "
            f"score={m.score} ts={m.ts}"
        )
    if isinstance(m, Command):
        return f"CMD seq={m.seq} node={m.node} cmd={m.command} track={m.track}"
    if isinstance(m, Ack):
        return f"ACK seq={m.seq}"
    if isinstance(m, Heartbeat):
        return f"HB uptime={m.uptime} nodes={m.nodes} dropped={m.dropped}"
    return f"KEY key={m.key.hex()}"


# --- framing ----------------------------------------------------------------------------------


class DropCounters:
    """Counts of good lines and of dropped lines by reason; cheap enough for every line."""

    __slots__ = ("dropped", "ok")

    def __init__(self) -> None:
        self.ok = 0
        self.dropped: Counter[str] = Counter()

    def drop(self, reason: Drop) -> None:
        self.dropped[reason.value] += 1

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, int]:
        return {"ok": self.ok, **{r.value: self.dropped.get(r.value, 0) for r in Drop}}


class Framer:
    """Splits a byte stream into lines; oversize lines are skipped to the next LF and counted.

    Empty lines are ignored (they make a harmless keepalive). ``close`` counts a trailing
    partial line. The buffer never grows past ``MAX_LINE`` + 1 bytes.
    """

    __slots__ = ("_buf", "_discarding", "counters")

    def __init__(self, counters: DropCounters | None = None):
        self._buf = bytearray()
        self._discarding = False
        self.counters = counters if counters is not None else DropCounters()

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._take(data[start:])
                return lines
            self._take(data[start:end])
            start = end + 1
            if self._discarding:
                self._discarding = False
                self.counters.drop(Drop.OVERSIZE)
            else:
                line = bytes(self._buf)
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    lines.append(line)
            self._buf.clear()

    def _take(self, chunk: bytes) -> None:
        if self._discarding or not chunk:
            return
        # One byte of slack for the CR that may precede the LF.
        if len(self._buf) + len(chunk) > MAX_LINE + 1:
            self._discarding = True
            self._buf.clear()
        else:
            self._buf += chunk

    def close(self) -> None:
        """The stream ended: whatever is buffered is a partial line."""
        if self._buf or self._discarding:
            self.counters.drop(Drop.PARTIAL)
        self._buf.clear()
        self._discarding = False


class LineReader:
    """Framer plus parser plus optional tag check: bytes in, valid messages out, drops counted.

    With a key, every tagged line must verify as made by ``sender``.
    """

    def __init__(
        self, key: bytes | None = None, counters: DropCounters | None = None, sender: str = APP
    ):
        self.key = key
        self.sender = sender
        self.counters = counters if counters is not None else DropCounters()
        self.framer = Framer(self.counters)

    def feed(self, data: bytes) -> list[Parsed]:
        out: list[Parsed] = []
        for line in self.framer.feed(data):
            parsed = self.accept(line)
            if parsed is not None:
                out.append(parsed)
        return out

    def accept(self, line: bytes) -> Parsed | None:
        """Parse one line; with a key, tagged lines must verify. Drops are counted."""
        try:
            parsed = parse(line) if self.key is None else check(line, self.key, self.sender)
        except LineError as err:
            self.counters.drop(err.reason)
            return None
        self.counters.ok += 1
        return parsed

    def close(self) -> None:
        self.framer.close()


def event_from_emotion(event: EmotionEvent, seq: int) -> Event:
    """Map a pipeline event to a protocol event carrying link sequence ``seq``."""
    score = min(1000, max(0, round(event.score * 1000)))
    ts = min(_TS_MAX, max(0, round(event.ts * 1000)))
    kind = event.kind if event.kind in KINDS else "update"
    emotion = event.emotion if event.emotion in EMOTIONS else "neutral"
    return Event(seq, kind, int(event.track_id) & _U32, emotion, score, ts)
