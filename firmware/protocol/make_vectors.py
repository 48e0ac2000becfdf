#!/usr/bin/env python3
"""Writes vectors.txt, the test vectors of the zeke line protocol v2.

Run it only when PROTOCOL.md changes. It needs nothing but the standard library: valid lines
get their tags from hmac/hashlib, and every expected verdict below is written by hand from
PROTOCOL.md, so the file checks the Python and the C++ implementation alike.

Format of vectors.txt (tab-separated, one vector a line, '#' starts a comment):
  key <32 hex>                      the key that tags in this file are made with
  ok <TAB> <sender> <TAB> <canonical dump> <TAB> <escaped line>
  drop <TAB> <sender> <TAB> <reason> <TAB> <escaped line>
  stream <TAB> <sender> <TAB> <verdicts, comma-separated> <TAB> <escaped byte stream>
<sender> is the tag context the receiver checks with: app, node, or gw:<appliance nonce>.
Escapes in lines and streams: \\\\ \\t \\n \\r \\xHH.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

KEY = bytes(range(16))
OTHER = bytes(range(16, 32))


def tag(body: str, sender: str = "app", key: bytes = KEY) -> str:
    """The line tagged by ``sender`` (PROTOCOL.md, "Tags"): HMAC over context, LF, body."""
    context = sender.replace(":", " ")
    mac = hmac.new(key, context.encode() + b"\n" + body.encode(), hashlib.sha256)
    return body + " #" + mac.hexdigest()[:16]


def v1_tag(body: str, key: bytes = KEY) -> str:
    """A version 1 tag (no sender context), for the downgrade vectors."""
    return body + " #" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:16]


def esc(data: bytes) -> str:
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


N1 = "0123456789abcdef"
N2 = "fedcba9876543210"
EVT = "Z2 EVT 42 enter 7 happy 873 1700000000123"
#: The sender context of a gateway's lines in the session appliance nonce N1 opened.
GW = f"gw:{N1}"
GW2 = f"gw:{N2}"

OK = [
    (tag(EVT), "EVT seq=42 kind=enter track=7 emotion=happy score=873 ts=1700000000123"),
    (tag("Z2 EVT 1 change 0 neutral 0 0"), "EVT seq=1 kind=change track=0 emotion=neutral score=0 ts=0"),
    (tag("Z2 EVT 4294967295 update 4294967295 surprise 1000 999999999999999"),
     "EVT seq=4294967295 kind=update track=4294967295 emotion=surprise score=1000 ts=999999999999999"),
    (tag("Z2 EVT 9 leave 3 angry 500 1"), "EVT seq=9 kind=leave track=3 emotion=angry score=500 ts=1"),
    (tag("Z2 EVT 10 update 3 disgust 1 2"), "EVT seq=10 kind=update track=3 emotion=disgust score=1 ts=2"),
    (tag("Z2 EVT 11 update 3 fear 1 2"), "EVT seq=11 kind=update track=3 emotion=fear score=1 ts=2"),
    (tag("Z2 EVT 12 update 3 sad 1 2"), "EVT seq=12 kind=update track=3 emotion=sad score=1 ts=2"),
    (f"Z2 HELLO app kitchen-cam 0.1.0 {N1} - 0",
     f"HELLO role=app id=kitchen-cam fw=0.1.0 nonce={N1} peer=- last=0"),
    (tag(f"Z2 HELLO gw gw_01.lab 1.2.3+dev {N2} {N1} 4294967295", GW),
     f"HELLO role=gw id=gw_01.lab fw=1.2.3+dev nonce={N2} peer={N1} last=4294967295"),
    (tag(f"Z2 HELLO node e00fce68aabbccddeeff0011 0.1.0 {N1} {N2} 17", "node"),
     f"HELLO role=node id=e00fce68aabbccddeeff0011 fw=0.1.0 nonce={N1} peer={N2} last=17"),
    (tag("Z2 CMD 1 node-7 yes 7", "node"), "CMD seq=1 node=node-7 cmd=yes track=7"),
    (tag("Z2 CMD 2 node-7 no 0", "node"), "CMD seq=2 node=node-7 cmd=no track=0"),
    (tag("Z2 CMD 3 N capture 12", "node"), "CMD seq=3 node=N cmd=capture track=12"),
    (tag("Z2 CMD 4294967295 n reset 1", "node"), "CMD seq=4294967295 node=n cmd=reset track=1"),
    (tag("Z2 ACK 0", GW), "ACK seq=0"),
    (tag("Z2 ACK 4294967295", GW), "ACK seq=4294967295"),
    (tag("Z2 HB 3600 2 0", GW), "HB uptime=3600 nodes=2 dropped=0"),
    (tag("Z2 HB 0 65535 4294967295", GW), "HB uptime=0 nodes=65535 dropped=4294967295"),
    ("Z2 KEY 00112233445566778899aabbccddeeff", "KEY key=00112233445566778899aabbccddeeff"),
]

good = tag(EVT)
DROP: list[tuple[bytes, str]] = [
    # size: 127 bytes is the limit (PROTOCOL.md "Framing").
    (b"Z2 " + b"A" * 125, "oversize"),
    (b"Z" * 300, "oversize"),
    # encoding: printable ASCII only.
    (good.encode().replace(b"happy", b"h\x00ppy"), "encoding"),
    (good.encode().replace(b" enter", b"\tenter"), "encoding"),
    ("Z2 EVT 42 enter 7 happy 873 1700000000123 #é".encode(), "encoding"),
    (b"\xff\xfe", "encoding"),
    (b"Z2 EVT 1 enter 7 happy 873 1\x7f", "encoding"),
    # version
    (v1_tag(EVT.replace("Z2", "Z1")).encode(), "version"),  # a valid v1 line: no downgrade
    (tag(EVT.replace("Z2", "Z3")).encode(), "version"),
    (b"Z0 EVT", "version"),
    (b"Z999 HELLO", "version"),
    (b"Z20 EVT 1", "version"),
    # not a zeke line
    (b"hello world", "syntax"),
    (b"Z", "syntax"),
    (b"Z2", "syntax"),
    (b"Z2 ", "syntax"),
    (b"z1 EVT 1 enter 7 happy 873 1", "syntax"),
    (b"Z01 EVT", "syntax"),
    (b"Z2000 EVT", "syntax"),
    (b"ZX EVT", "syntax"),
    (b" Z2 ACK 1", "syntax"),
    # unknown type
    (tag("Z2 PING 1").encode(), "unknown"),
    (b"Z2 evt 1 enter 7 happy 873 1", "unknown"),
    (b"Z2 EVENT", "unknown"),
    # tags
    (EVT.encode(), "tag"),
    (tag(EVT, key=OTHER).encode(), "tag"),
    (good.encode()[:-1] + b"0" if not good.endswith("0") else good.encode()[:-1] + b"1", "tag"),
    ((EVT + " #" + "A" * 16).encode(), "tag"),
    ((EVT + " #0123").encode(), "tag"),
    ((EVT + " #").encode(), "tag"),
    (tag(EVT).replace("873", "874").encode(), "tag"),
    (b"Z2 CMD 1 node-7 yes 7", "tag"),
    (tag("Z2 CMD 1 node-7 yes 7", "node", OTHER).encode(), "tag"),
    (b"Z2 ACK 5", "tag"),
    (b"Z2 HB 1 1 1", "tag"),
    (f"Z2 HELLO gw g 1 {N2} {N1} 0".encode(), "tag"),
    # fields
    (tag("Z2 EVT 0 enter 7 happy 873 1").encode(), "syntax"),
    (tag("Z2 EVT 4294967296 enter 7 happy 873 1").encode(), "syntax"),
    (tag("Z2 EVT 042 enter 7 happy 873 1").encode(), "syntax"),
    (tag("Z2 EVT -1 enter 7 happy 873 1").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 1001 1").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 87.3 1").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 joy 873 1").encode(), "syntax"),
    (tag("Z2 EVT 1 Enter 7 happy 873 1").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 873 1000000000000000").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 873").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 873 1 2").encode(), "syntax"),
    (tag("Z2 EVT 1 enter  7 happy 873 1").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 873 1 ").encode(), "syntax"),
    (tag("Z2 EVT 1 enter 7 happy 873 99999999999999999999").encode(), "syntax"),
    (tag("Z2 CMD 1 node-7 maybe 7").encode(), "syntax"),
    (tag("Z2 CMD 1 node/7 yes 7").encode(), "syntax"),
    (tag("Z2 CMD 1 " + "n" * 25 + " yes 7").encode(), "syntax"),
    (tag("Z2 CMD 0 n yes 7").encode(), "syntax"),
    (tag("Z2 ACK").encode(), "syntax"),
    (tag("Z2 ACK 1 2").encode(), "syntax"),
    (tag("Z2 HB 1 65536 0").encode(), "syntax"),
    (tag(f"Z2 HELLO boss g 1 {N2} {N1} 0").encode(), "syntax"),
    (tag(f"Z2 HELLO gw g 1 {N2.upper()} {N1} 0").encode(), "syntax"),
    (tag(f"Z2 HELLO gw g 1 {N2[:15]} {N1} 0").encode(), "syntax"),
    (tag(f"Z2 HELLO gw g 1.0/x {N2} {N1} 0").encode(), "syntax"),
    (tag(f"Z2 HELLO gw g {'1' * 17} {N2} {N1} 0").encode(), "syntax"),
    (tag(f"Z2 HELLO gw g 1 {N2} - 0").encode(), "syntax"),
    (tag("Z2 KEY 00112233445566778899aabbccddeeff").encode(), "syntax"),
    (b"Z2 KEY 00112233445566778899aabbccddeef", "syntax"),
    (b"Z2 KEY 00112233445566778899AABBCCDDEEFF", "syntax"),
]

# Byte streams through the framer: verdict per line in order (ok:<TYPE> or a drop reason).
ack = tag("Z2 ACK 1", GW).encode()
STREAMS: list[tuple[bytes, str]] = [
    (ack + b"\n", "ok:ACK"),
    (ack + b"\r\n", "ok:ACK"),
    (b"\n\r\n\n" + ack + b"\n\n", "ok:ACK"),
    (ack + b"\n" + ack[:10], "ok:ACK,partial"),
    (ack[:6] + b"\n" + ack + b"\n", "syntax,ok:ACK"),
    (ack[:10] + b"\n", "tag"),
    (b"x" * 500 + b"\n" + ack + b"\n", "oversize,ok:ACK"),
    (b"x" * 128 + b"\n", "oversize"),
    (b"Z2 " + b"A" * 124 + b"\r\n", "unknown"),
    (b"x" * 500, "partial"),
    (ack + b"\r\r\n", "encoding"),
    (ack + b"\n" + b"\x00" * 40 + b"\n" + ack + b"\n", "ok:ACK,encoding,ok:ACK"),
]


# Lines that parse but were tagged by someone other than the sender the receiver expects:
# reflection (a gateway's answer offered as the appliance's proof), one session's acks and
# heartbeats replayed in another, and node commands passed off as events or back.
CROSS: list[tuple[bytes, str, str]] = [
    (tag(f"Z2 HELLO gw gw_01.lab 1.2.3+dev {N2} {N1} 0", GW).encode(), "tag", "app"),
    (tag(f"Z2 HELLO app kitchen-cam 0.1.0 {N1} {N2} 0", "app").encode(), "tag", GW),
    (tag(f"Z2 HELLO app kitchen-cam 0.1.0 {N1} {N2} 0", "app").encode(), "tag", "node"),
    (tag(f"Z2 HELLO node n 0.1.0 {N1} {N2} 17", "node").encode(), "tag", "app"),
    (tag("Z2 ACK 7", GW).encode(), "tag", GW2),
    (tag("Z2 HB 1 1 0", GW).encode(), "tag", GW2),
    (tag("Z2 ACK 7", GW).encode(), "tag", "app"),
    (tag("Z2 ACK 7", "app").encode(), "tag", GW),
    (tag(EVT, "node").encode(), "tag", "app"),
    (tag(EVT, GW).encode(), "tag", "app"),
    (tag("Z2 CMD 1 node-7 yes 7", "app").encode(), "tag", "node"),
    (tag("Z2 CMD 1 node-7 yes 7", "node").encode(), "tag", GW),
    (v1_tag(EVT).encode(), "tag", "app"),  # a version 1 tag on a version 2 line
]


def sender_of(line: str) -> str:
    """The sender a receiver checks a valid line against (the line's type and role fix it)."""
    kind = line.split(" ")[1]
    if kind == "EVT":
        return "app"
    if kind == "CMD":
        return "node"
    if kind in ("ACK", "HB"):
        return GW
    if kind == "HELLO":
        role = line.split(" ")[2]
        return GW if role == "gw" else role
    return "app"


def main() -> None:
    out = [
        "# zeke line protocol v2 test vectors: written by make_vectors.py, see PROTOCOL.md",
        "# valid lines, dropped lines with their reason, and framer streams (tab-separated);",
        "# the second field is the sender the receiver checks tags against",
        f"key\t{KEY.hex()}",
    ]
    out += [f"ok\t{sender_of(line)}\t{dump}\t{esc(line.encode())}" for line, dump in OK]
    out += [f"drop\tapp\t{reason}\t{esc(line)}" for line, reason in DROP]
    out += [f"drop\t{sender}\t{reason}\t{esc(line)}" for line, reason, sender in CROSS]
    out += [f"stream\t{GW}\t{verdicts}\t{esc(data)}" for data, verdicts in STREAMS]
    Path(__file__).with_name("vectors.txt").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
