"""A simulated IP camera: an RTSP server streaming Motion-JPEG over RTP (RFC 2326, RFC 2435).

It speaks what many real IP cameras speak: RTSP 1.0 (OPTIONS, DESCRIBE, SETUP, PLAY,
GET_PARAMETER, TEARDOWN), optional Basic authentication, and RTP/JPEG (payload type 26)
interleaved on the RTSP TCP connection. Frames come from a video file (the demo clip by
default), each encoded as a baseline JPEG and packetised as RFC 2435 asks: the entropy-coded
scan in fragments, the quantisation tables in-band (Q=255) in each frame's first packet.

``stop()`` drops every connection like a camera losing power; ``start()`` brings it back on
the same port, so clients can be tested for reconnection.

    python -m zeke.testing.rtsp_camera --port 8554        # rtsp://127.0.0.1:8554/stream
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import random
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np

MAX_FRAGMENT = 1400
RTP_CLOCK = 90000
PAYLOAD_JPEG = 26


def split_jpeg(data: bytes) -> tuple[int, int, int, list[bytes], bytes]:
    """Take a baseline JFIF apart: (RFC 2435 type, width, height, quant tables, scan data).

    Raises ``ValueError`` for what RTP/JPEG cannot carry (progressive, restart intervals,
    sampling other than 4:2:0 or 4:2:2, 16-bit tables).
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos, tables, kind, width, height = 2, {}, None, 0, 0
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"bad marker at {pos}")
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xDB:  # DQT: one or more tables
            i = 0
            while i < len(body):
                precision, ident = body[i] >> 4, body[i] & 0x0F
                if precision:
                    raise ValueError("16-bit quantisation tables cannot be sent")
                tables[ident] = body[i + 1 : i + 65]
                i += 65
        elif marker == 0xC0:  # SOF0: baseline
            height, width = struct.unpack(">HH", body[1:5])
            luma = body[7]  # component 1 sampling: h << 4 | v
            kind = {0x21: 0, 0x22: 1}.get(luma)
            if kind is None or body[5] != 3:
                raise ValueError("RTP/JPEG needs 3 components sampled 4:2:2 or 4:2:0")
        elif marker in (0xC1, 0xC2, 0xC3):
            raise ValueError("only baseline JPEG can be sent")
        elif marker == 0xDD:
            raise ValueError("restart intervals are not supported here")
        elif marker == 0xDA:  # SOS: the scan runs to EOI
            scan = data[pos + 2 + length :]
            if scan.endswith(b"\xff\xd9"):
                scan = scan[:-2]
            if kind is None:
                raise ValueError("no SOF0 before the scan")
            return kind, width, height, [tables[0], tables[1]], scan
        pos += 2 + length
    raise ValueError("no scan in JPEG")


def rtp_jpeg_packets(jpeg: bytes, seq: int, timestamp: int, ssrc: int) -> tuple[list[bytes], int]:
    """The RTP packets of one JPEG frame; returns them and the next sequence number."""
    kind, width, height, tables, scan = split_jpeg(jpeg)
    if width > 2040 or height > 2040 or width % 8 or height % 8:
        raise ValueError("RTP/JPEG frames must be multiples of 8 up to 2040 pixels")
    qheader = struct.pack(">BBH", 0, 0, 128) + tables[0] + tables[1]
    packets, offset = [], 0
    while offset < len(scan) or offset == 0:
        first = offset == 0
        room = MAX_FRAGMENT - (len(qheader) if first else 0)
        chunk = scan[offset : offset + room]
        last = offset + len(chunk) >= len(scan)
        rtp = struct.pack(
            ">BBHII", 0x80, (0x80 if last else 0) | PAYLOAD_JPEG, seq & 0xFFFF, timestamp, ssrc
        )
        jpeg_header = struct.pack(">I", offset & 0xFFFFFF) + bytes(
            [kind, 255, width // 8, height // 8]
        )
        packets.append(rtp + jpeg_header + (qheader if first else b"") + chunk)
        seq += 1
        offset += len(chunk)
        if last:
            break
    return packets, seq


class _Frames:
    """Loops over a video file's frames as JPEG bytes (decoded once, kept in memory)."""

    def __init__(self, path: Path, max_frames: int, quality: int):
        import cv2

        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise ValueError(f"cannot read {path}")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
        self.jpegs: list[bytes] = []
        while len(self.jpegs) < max_frames:
            ok, image = cap.read()
            if not ok:
                break
            h, w = image.shape[:2]
            image = np.ascontiguousarray(image[: h - h % 8, : w - w % 8])
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            self.jpegs.append(buf.tobytes())
        cap.release()
        if not self.jpegs:
            raise ValueError(f"no frames in {path}")
        self.width, self.height = image.shape[1], image.shape[0]


class RtspCamera:
    """The server. ``url`` is what a client opens; ``frames_sent`` counts frames delivered."""

    def __init__(
        self,
        clip: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/stream",
        fps: float | None = None,
        username: str | None = None,
        password: str | None = None,
        max_frames: int = 120,
        quality: int = 80,
    ):
        if clip is None:
            from zeke.resources import DEMO_CLIP

            clip = DEMO_CLIP
        self.frames = _Frames(Path(clip), max_frames, quality)
        self.fps = fps or self.frames.fps
        self.host, self.port, self.path = host, port, path
        self.credentials = (username, password) if username is not None else None
        self.frames_sent = 0
        self.sessions = 0
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._running = threading.Event()

    @property
    def url(self) -> str:
        auth = ""
        if self.credentials:
            auth = f"{self.credentials[0]}:{self.credentials[1]}@"
        return f"rtsp://{auth}{self.host}:{self.port}{self.path}"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> RtspCamera:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(8)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._running.set()
        threading.Thread(target=self._accept, name="rtsp-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        """Drop everything at once, like a camera that loses power."""
        self._running.clear()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol -------------------------------------------------------------------------
    def _accept(self) -> None:
        sock = self._sock
        while self._running.is_set() and sock is not None:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return headers.get("authorization", "") == f"Basic {expected}"

    def _serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        send_lock = threading.Lock()
        session = f"{random.getrandbits(32):08X}"
        player: threading.Thread | None = None
        playing = threading.Event()
        try:
            while self._running.is_set():
                first = stream.read(1)
                if not first:
                    return
                if first == b"$":  # interleaved RTCP from the client: read and ignore
                    header = stream.read(3)
                    stream.read(struct.unpack(">H", header[1:3])[0])
                    continue
                line = (first + stream.readline()).decode("latin-1").strip()
                if not line:
                    continue
                method, url, _ = ([*line.split(" "), "", ""])[:3]
                headers: dict[str, str] = {}
                while True:
                    header_line = stream.readline().decode("latin-1").strip()
                    if not header_line:
                        break
                    key, _, value = header_line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0") or 0):
                    stream.read(int(headers["content-length"]))
                cseq = headers.get("cseq", "0")
                if not self._authorized(headers):
                    self._reply(conn, send_lock, cseq, "401 Unauthorized",
                                {"WWW-Authenticate": 'Basic realm="zeke camera"'})  # fmt: skip
                    continue
                if method == "OPTIONS":
                    public = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"
                    self._reply(conn, send_lock, cseq, "200 OK", {"Public": public})
                elif method == "DESCRIBE":
                    sdp = (
                        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=zeke simulated camera\r\n"
                        "c=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                        f"m=video 0 RTP/AVP {PAYLOAD_JPEG}\r\na=rtpmap:26 JPEG/90000\r\n"
                        f"a=framerate:{self.fps:g}\r\na=control:track1\r\n"
                    ).encode()
                    base = url.rstrip("/") + "/"
                    self._reply(conn, send_lock, cseq, "200 OK",
                                {"Content-Base": base, "Content-Type": "application/sdp"},
                                sdp)  # fmt: skip
                elif method == "SETUP":
                    transport = headers.get("transport", "")
                    if "TCP" not in transport.upper():
                        self._reply(conn, send_lock, cseq, "461 Unsupported Transport")
                        continue
                    self._reply(conn, send_lock, cseq, "200 OK", {
                        "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1",
                        "Session": f"{session};timeout=60",
                    })  # fmt: skip
                elif method == "PLAY":
                    self._reply(conn, send_lock, cseq, "200 OK",
                                {"Session": session, "Range": "npt=0.000-"})  # fmt: skip
                    if player is None:
                        self.sessions += 1
                        playing.set()
                        player = threading.Thread(
                            target=self._play, args=(conn, send_lock, playing), daemon=True
                        )
                        player.start()
                elif method == "GET_PARAMETER":
                    self._reply(conn, send_lock, cseq, "200 OK", {"Session": session})
                elif method == "TEARDOWN":
                    playing.clear()
                    self._reply(conn, send_lock, cseq, "200 OK", {"Session": session})
                    return
                else:
                    self._reply(conn, send_lock, cseq, "405 Method Not Allowed")
        except OSError:
            return
        finally:
            playing.clear()
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    @staticmethod
    def _reply(conn, lock, cseq, status, headers=None, body: bytes = b"") -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: zeke-rtsp-camera"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        with lock:
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _play(self, conn: socket.socket, lock: threading.Lock, playing: threading.Event) -> None:
        seq, ssrc = random.getrandbits(16), random.getrandbits(32)
        ts0 = random.getrandbits(31)
        start = time.monotonic()
        index = 0
        while playing.is_set() and self._running.is_set():
            due = start + index / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            jpeg = self.frames.jpegs[index % len(self.frames.jpegs)]
            timestamp = (ts0 + int(index * RTP_CLOCK / self.fps)) & 0xFFFFFFFF
            packets, seq = rtp_jpeg_packets(jpeg, seq, timestamp, ssrc)
            try:
                with lock:
                    for packet in packets:
                        conn.sendall(b"$\x00" + struct.pack(">H", len(packet)) + packet)
            except OSError:
                return
            self.frames_sent += 1
            index += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zeke.testing.rtsp_camera", description=__doc__)
    parser.add_argument("--clip", type=Path, default=None, help="video to stream (the demo clip)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--fps", type=float, default=None)
    args = parser.parse_args(argv)
    camera = RtspCamera(args.clip, host=args.host, port=args.port, fps=args.fps).start()
    print(f"streaming {camera.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        camera.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
