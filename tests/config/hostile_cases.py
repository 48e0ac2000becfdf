"""Generated hostile config files: structure, types, ranges, encodings, sizes, special files.

Each case builds one file (or special file, or link) in a directory of its own and names what
a user expects: ``refuse`` (a one-line ``ConfigError``), or ``accept`` for the odd edge that a
strict loader must still take. The suites in this package run every case in-process against
the loader and a sample through the real ``zeke`` command.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: What the loader may read at most (the suite checks the refusal just past it).
LIMIT = 256 * 1024


@dataclass(frozen=True)
class Case:
    """One hostile config: how to build it in a directory, and what a user expects."""

    id: str
    build: Callable[[Path], Path]
    expect: str = "refuse"  # or "accept"
    group: str = "values"
    #: The path (or a link's target) is a system file such as /dev/zero: only ever read it.
    #: A writer under test gets the same kind of file made inside the case's directory.
    system: bool = False


def _text(body: str | bytes, name: str = "zeke.toml") -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
        return path

    return build


def _value(section: str, key: str, literal: str) -> Callable[[Path], Path]:
    return _text(f"[{section}]\n{key} = {literal}\n")


# -- values: every key, with what its type must not take ----------------------------------

INT_KEYS = [
    "camera.width", "camera.height", "vision.threads", "mesh.queue_size", "mesh.mdns_ttl_s",
    "mesh.baud", "mqtt.port", "mqtt.keepalive_s",
]  # fmt: skip
FLOAT_KEYS = [
    "camera.fps", "vision.min_score", "mesh.backoff_initial_s", "mesh.backoff_max_s",
    "mesh.heartbeat_s", "mqtt.track_timeout_s",
]  # fmt: skip
BOOL_KEYS = ["camera.loop", "camera.pace", "watch.preview", "watch.kiosk", "mqtt.enabled",
             "mqtt.tls"]  # fmt: skip
PATH_KEYS = [
    "vision.models_dir", "events.socket", "mesh.pairing_file", "mqtt.password_file",
    "mqtt.ca_file", "mqtt.cert_file", "mqtt.key_file",
]  # fmt: skip

NOT_AN_INT = [
    "true", "false", '"640"', "640.0", "1e3", "[640]", "{ v = 640 }", "1979-05-27", "inf",
    "nan", "-1", "0", "99999999999", "0x7fffffffffffffff", "9" * 5000, "-" + "9" * 4400,
]  # fmt: skip
NOT_A_FLOAT = [
    "true", '"30"', "inf", "-inf", "nan", "+nan", "-nan", "0.0", "-1.0", "1e309", "1e20",
    "[1.0]", "1979-05-27T07:32:00Z", "{ v = 1.0 }", "9" * 5000,
]  # fmt: skip
NOT_A_BOOL = ["1", "0", '"yes"', '"true"', '"no"', '"on"', "1.0", "[true]", "{}", "07:32:00"]
NOT_A_PATH = [
    '"a\\u0000b"', '""', "1", "true", '["/x"]', '"/tmp/' + "n" * 300 + '"',
    '"/' + "a/" * 2100 + '"', '"/x\\ny"', "{ p = '/x' }",
]  # fmt: skip
STRINGS = {
    "device.name": ['"a\\u0000b"', "1", "true", '""', '"' + "d" * 64 + '"', '"-x"',
                    '"a b"', '["door"]'],
    "mqtt.host": ['""', '"a\\u0000b"', "1", '"mqtt://broker"', '"broker:1883"', '"a b"',
                  '"' + "h" * 300 + '"', '"bro/ker"', '" "', "true", '"-bad-"'],
    "mqtt.username": ['"a\\u0000b"', "1", "true", '"a\\nb"'],
    "mqtt.topic_prefix": ['"zeke/#"', '"+"', '"a/+/b"', '"a\\u0000b"', '""', "1",
                          '"$SYS"', '"/zeke"', '"zeke/"', '"a//b"'],
    "mqtt.discovery_prefix": ['"home/#"', '"+"', '""', '"a\\u0000"', "false"],
    "mesh.interfaces": ['"eth0"', "[1]", '["eth0", ""]', '["a\\u0000b"]', "[true]",
                        '[["eth0"]]', '["' + "i" * 300 + '"]', '["eth 0"]'],
    "vision.detector": ['"huge"', "1", "true", '"Short"', '["short"]', '"short\\u0000"'],
    "vision.backend": ['"gpu"', "0", '"CPU"', '""'],
}  # fmt: skip
CAMERA_URIS = [
    "rtsp://u:p@127.0.0.1:99999/x", "rtsp://[::1", "rtsp://[::1]:99999/x",
    "rtsp://host:0/x", "rtsp://host:abc/x", "rtsp://host:-1/x", "rtsp://" + "h" * 300 + "/x",
    "rtsp://" + ".".join(["a" * 63] * 5) + "/x", "rtsp://ho st/x", "rtsp://u:p@/x",
    "/tmp/" + "n" * 300 + ".mp4", "~nosuchuser/x.mp4", "file://~nosuchuser/x.mp4",
    "file:///tmp/" + "n" * 300 + ".jpg", "/" + "a/" * 2100 + "x.mp4", "csi://" + "9" * 5000,
    "csi://\u00b2", "v4l2://\u00b2", "csi://99", "v4l2:///dev/video0?width=inf",
    "v4l2:///dev/video0?fps=nan", "v4l2:///dev/video0?fps=inf", "v4l2:///dev/video0?fps=1e999",
    "v4l2:///dev/video0?width=" + "9" * 5000, "v4l2:///dev/video0?width=99999999",
    "v4l2:///dev/video0?width=1_000", "file:///x.mp4?loop=2", "demo\u0000", "x\u0007.mp4",
    "rtsp://h/" + "p" * 5000, "v4l2:///dev/video\u0000", "v4l2://" + "9" * 5000,
]  # fmt: skip


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string for these


def value_cases() -> list[Case]:
    cases: list[Case] = []
    for keys, bad in (
        (INT_KEYS, NOT_AN_INT),
        (FLOAT_KEYS, NOT_A_FLOAT),
        (BOOL_KEYS, NOT_A_BOOL),
        (PATH_KEYS, NOT_A_PATH),
    ):
        for key in keys:
            section, name = key.split(".")
            for number, literal in enumerate(bad):
                cases.append(Case(f"{key}-{number}", _value(section, name, literal)))
    for key, bad in STRINGS.items():
        section, name = key.split(".")
        for number, literal in enumerate(bad):
            cases.append(Case(f"{key}-{number}", _value(section, name, literal)))
    for number, uri in enumerate(CAMERA_URIS):
        cases.append(
            Case(f"camera.uri-{number}", _value("camera", "uri", _toml_string(uri)), group="uri")
        )
    ranges = [
        ("mesh", "baud", "-1"), ("mesh", "baud", "0"), ("mesh", "baud", "1"),
        ("mesh", "baud", "1e20"), ("mesh", "baud", "100000000"), ("mqtt", "port", "65536"),
        ("mqtt", "port", "0"), ("mqtt", "keepalive_s", "1000000"),
        ("mesh", "backoff_initial_s", "1e6"), ("mesh", "heartbeat_s", "1e9"),
        ("mqtt", "track_timeout_s", "1e12"),
    ]  # fmt: skip
    for section, key, literal in ranges:
        cases.append(Case(f"range-{section}.{key}={literal}", _value(section, key, literal)))
    cases.append(
        Case(
            "backoff-initial-over-max",
            _text("[mesh]\nbackoff_initial_s = 20.0\nbackoff_max_s = 1.0\n"),
        )
    )
    for literal in ("1", '"x"', "[]", "true", "[[1]]"):
        cases.append(Case(f"section-not-a-table-{literal}", _text(f"camera = {literal}\n")))
    edges = [
        "[camera]\nwidth = 7680\nheight = 16\nfps = 240\nloop = false\n",
        "[mqtt]\nport = 65535\nhost = 'broker.lan'\ntopic_prefix = 'home/zeke'\n",
        "[mqtt]\nhost = '::1'\nkeepalive_s = 65535\n",
        "[mesh]\nbaud = 4000000\nbackoff_initial_s = 1\nbackoff_max_s = 3600\n",
        "[mesh]\nbaud = 300\ninterfaces = ['eth0', '192.168.1.2']\n",
        "[vision]\nmodels_dir = '/opt/zeke models/\u00e9t\u00e9'\nmin_score = 0.01\n",
        "[camera]\nuri = 'rtsp://u:p@[::1]:8554/x'\n",
        "[camera]\nuri = 'v4l2:///dev/video0?width=1280&fps=29.97'\n",
    ]
    for number, text in enumerate(edges):
        cases.append(Case(f"edge-accepted-{number}", _text(text), "accept"))
    cases.append(Case("array-of-tables", _text("[[camera]]\nuri = 'demo'\n")))
    cases.append(Case("unknown-section", _text("[cmaera]\nuri = 'demo'\n")))
    cases.append(Case("unknown-key-long", _text("[camera]\n" + "k" * 100_000 + " = 1\n")))
    cases.append(Case("unknown-section-long", _text("[" + "s" * 100_000 + "]\n")))
    return cases


# -- structure ----------------------------------------------------------------------------


def structure_cases() -> list[Case]:
    cases = []
    for depth in (200, 999, 2000, 10_000, 100_000):
        cases.append(Case(f"deep-array-{depth}", _text("x = " + "[" * depth + "]" * depth + "\n")))
        cases.append(
            Case(
                f"deep-array-in-key-{depth}",
                _text("[camera]\nuri = " + "[" * depth + "1" + "]" * depth + "\n"),
            )
        )
        inline = "x = " + "{a = " * depth + "1" + "}" * depth + "\n"
        cases.append(Case(f"deep-inline-table-{depth}", _text(inline)))
        cases.append(
            Case(f"deep-mixed-{depth}", _text("x = " + "[{a=" * depth + "1" + "}]" * depth))
        )
    for depth in (2000, 20_000):
        cases.append(Case(f"deep-dotted-key-{depth}", _text(".".join(["a"] * depth) + " = 1\n")))
        cases.append(Case(f"deep-header-{depth}", _text("[" + ".".join(["a"] * depth) + "]\n")))
        cases.append(Case(f"deep-unclosed-{depth}", _text("x = " + "[" * depth + "\n")))
    cases.append(Case("int-4301-digits", _text("x = " + "1" * 4301 + "\n")))
    cases.append(Case("int-100k-digits", _text("[camera]\nwidth = " + "7" * 100_000 + "\n")))
    cases.append(Case("float-100k-digits", _text("[camera]\nfps = " + "7" * 100_000 + ".0\n")))
    cases.append(Case("duplicate-key", _text("[camera]\nwidth = 1\nwidth = 2\n")))
    cases.append(Case("duplicate-section", _text("[camera]\n[camera]\n")))
    cases.append(Case("many-unknown-keys", _text("".join(f"k{i} = 1\n" for i in range(25_000)))))
    cases.append(
        Case("many-bad-values", _text("[camera]\n" + "".join(f"k{i}=1\n" for i in range(20_000))))
    )
    cases.append(Case("long-string-value", _text('[device]\nname = "' + "n" * 200_000 + '"\n')))
    cases.append(Case("long-uri-value", _text('[camera]\nuri = "' + "/x" * 100_000 + '"\n')))
    return cases


# -- encodings ----------------------------------------------------------------------------

VALID = '[camera]\nuri = "demo"\n'


def encoding_cases() -> list[Case]:
    body = VALID
    return [
        Case("utf-16-le-bom", _text(body.encode("utf-16")), group="encoding"),
        Case("utf-16-be", _text(body.encode("utf-16-be")), group="encoding"),
        Case("utf-32", _text(body.encode("utf-32")), group="encoding"),
        Case("latin-1", _text('[device]\nname = "caf\xe9"\n'.encode("latin-1")), group="encoding"),
        Case("overlong-utf8", _text(b'[device]\nname = "\xc0\xaf"\n'), group="encoding"),
        Case("lone-continuation", _text(b"\x80\x80\x80"), group="encoding"),
        Case("raw-nul", _text(b'[camera]\nuri = "de\x00mo"\n'), group="encoding"),
        Case("raw-nul-in-comment", _text(b"# \x00\n"), group="encoding"),
        Case("raw-escape-char", _text(b'[camera]\nuri = "de\x1bmo"\n'), group="encoding"),
        Case("surrogate-escape", _text('[device]\nname = "\\ud800"\n'), group="encoding"),
        Case("cr-only-newlines", _text(body.replace("\n", "\r")), group="encoding"),
        Case("binary-noise", _text(os.urandom(4096)), group="encoding"),
        Case("png-header", _text(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), group="encoding"),
        Case("utf-8-bom", _text(b"\xef\xbb\xbf" + body.encode()), "accept", group="encoding"),
        Case("crlf", _text(body.replace("\n", "\r\n")), "accept", group="encoding"),
    ]


# -- sizes --------------------------------------------------------------------------------


def _sparse(size: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "zeke.toml"
        with open(path, "wb") as stream:
            stream.truncate(size)
        return path

    return build


def _million_keys(folder: Path) -> Path:
    path = folder / "zeke.toml"
    with open(path, "w") as stream:
        stream.write("[camera]\n")
        for i in range(1_000_000):
            stream.write(f"k{i} = 1\n")
    return path


def size_cases() -> list[Case]:
    pad = "# " + "p" * 77 + "\n"
    at_limit = VALID + pad * ((LIMIT - len(VALID)) // len(pad))
    at_limit += "#" * (LIMIT - len(at_limit.encode()) - 1) + "\n"
    return [
        Case("just-over-limit", _text(at_limit + "#\n"), group="size"),
        Case("at-limit", _text(at_limit), "accept", group="size"),
        Case("ten-mb-value", _text('[device]\nname = "' + "v" * 10_000_000 + '"\n'), group="size"),
        Case("million-keys", _million_keys, group="size"),
        Case("sparse-1gb", _sparse(1 << 30), group="size"),
        Case("sparse-1tb", _sparse(1 << 40), group="size"),
    ]


# -- special files and links --------------------------------------------------------------


def _fifo(folder: Path) -> Path:
    path = folder / "zeke.toml"
    os.mkfifo(path)
    return path


def _link(target: str | Callable[[Path], Path]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        dest = target(folder) if callable(target) else target
        path = folder / "link.toml"
        os.symlink(dest, path)
        return path

    return build


def _socket(folder: Path) -> Path:
    path = folder / "zeke.toml"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return path


def _directory(folder: Path) -> Path:
    path = folder / "zeke.toml"
    path.mkdir()
    (path / "inside").write_text("x")
    return path


def _loop(folder: Path) -> Path:
    os.symlink("b.toml", folder / "a.toml")
    os.symlink("a.toml", folder / "b.toml")
    return folder / "a.toml"


def _through_a_file(folder: Path) -> Path:
    (folder / "plain").write_text(VALID)
    return folder / "plain" / "zeke.toml"


def _long_name(folder: Path) -> Path:
    return folder / ("n" * 300 + ".toml")


def _long_path(folder: Path) -> Path:
    return folder.joinpath(*["d" * 200] * 25, "zeke.toml")


def _missing(folder: Path) -> Path:
    return folder / "missing.toml"


def _block_device(folder: Path) -> Path:
    for candidate in ("/dev/loop0", "/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/ram0"):
        if os.path.exists(candidate):
            return _link(candidate)(folder)
    return _link("/dev/null")(folder)


def _device(name: str, kind: int, major: int, minor: int) -> Callable[[Path], Path]:
    """A device node inside the case's directory (root only), the same as /dev's: a writer
    that wrongly replaced it would replace this copy, never the system's."""

    def build(folder: Path) -> Path:
        if os.geteuid() != 0:
            import pytest

            pytest.skip("making a device node needs root")
        path = folder / name
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
        return path

    return build


def special_cases() -> list[Case]:
    group = "special"
    char, block = stat.S_IFCHR, stat.S_IFBLK
    return [
        Case("fifo", _fifo, group=group),
        Case("link-to-fifo", _link(_fifo), group=group),
        Case("dev-zero", lambda _f: Path("/dev/zero"), group=group, system=True),
        Case("dev-urandom", lambda _f: Path("/dev/urandom"), group=group, system=True),
        Case("dev-null", lambda _f: Path("/dev/null"), group=group, system=True),
        Case("link-to-dev-zero", _link("/dev/zero"), group=group, system=True),
        Case("link-to-dev-urandom", _link("/dev/urandom"), group=group, system=True),
        Case("link-to-block-device", _block_device, group=group, system=True),
        Case("proc-self-mem", lambda _f: Path("/proc/self/mem"), group=group, system=True),
        Case("proc-kcore-like", lambda _f: Path("/proc/self/pagemap"), group=group, system=True),
        Case("node-null", _device("zeke.toml", char, 1, 3), group=group),
        Case("node-zero", _device("zeke.toml", char, 1, 5), group=group),
        Case("node-urandom", _device("zeke.toml", char, 1, 9), group=group),
        Case("node-block", _device("zeke.toml", block, 7, 0), group=group),
        Case("link-to-node-null", _link(_device("null", char, 1, 3)), group=group),
        Case("socket", _socket, group=group),
        Case("directory", _directory, group=group),
        Case("link-to-directory", _link(_directory), group=group),
        Case("symlink-loop", _loop, group=group),
        Case("dangling-link", _link("nowhere.toml"), group=group),
        Case("through-a-file", _through_a_file, group=group),
        Case("name-over-name-max", _long_name, group=group),
        Case("path-over-path-max", _long_path, group=group),
        Case("missing", _missing, group=group),
        Case("link-to-valid", _link(_text(VALID, "real.toml")), "accept", group=group),
    ]


def all_cases() -> list[Case]:
    return [
        *value_cases(), *structure_cases(), *encoding_cases(), *size_cases(), *special_cases()
    ]  # fmt: skip


# -- running one call in a child, bounded -------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str  # "clean" (a ZekeError), "ok", "traceback" (any other exception) or "hung"
    message: str = ""
    hint: str = ""
    seconds: float = 0.0


def in_fork(call: Callable[[], object], deadline: float = 20.0, memory_mb: int = 768) -> Outcome:
    """Run ``call`` in a forked child with a memory cap; a hang is killed at ``deadline``.

    The loader is exercised in-process (no interpreter start per case) while a case that
    would read without bound, hang or blow the stack cannot take the suite down with it.
    """
    from zeke.errors import ZekeError

    read_end, write_end = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        try:
            with open("/proc/self/status") as status:
                vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
            cap = vm * 1024 + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            call()
            doc = {"kind": "ok"}
        except ZekeError as err:
            doc = {"kind": "clean", "message": err.message[:20_000], "hint": err.hint or ""}
        except BaseException as err:
            doc = {"kind": "traceback", "message": f"{type(err).__name__}: {err}"[:2000]}
        data = json.dumps(doc).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
        os._exit(0)
    os.close(write_end)
    os.set_blocking(read_end, False)
    chunks = []
    while True:
        try:
            chunk = os.read(read_end, 65536)
            if chunk:
                chunks.append(chunk)
        except BlockingIOError:
            pass
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return Outcome("hung", seconds=time.monotonic() - start)
        time.sleep(0.002)
    os.set_blocking(read_end, True)
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    seconds = time.monotonic() - start
    if not chunks:
        return Outcome("traceback", "the child died without a word", seconds=seconds)
    doc = json.loads(b"".join(chunks))
    return Outcome(doc["kind"], doc.get("message", ""), doc.get("hint", ""), seconds)
