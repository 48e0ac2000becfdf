"""Privacy enforced by the kernel: the pixel-holding process has no network to reach.

Three layers, each shown on its own:

1. a network namespace with nothing but loopback (``unshare --net``, what
   ``PrivateNetwork=yes`` creates): the vision pipeline works there, and an address off this
   host cannot even be routed;
2. the kiosk unit's own settings (``systemd-run`` where systemd is PID 1, otherwise the same
   network namespace and seccomp filters rebuilt from the unit's text by ``unitsandbox``):
   an IP socket cannot even be created, while AF_UNIX works;
3. the real ``zeke watch --kiosk`` under those settings: it runs, says READY=1, keeps the
   watchdog fed and serves its events on the Unix socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from zeke.events import EMOTIONS, EmotionEvent

from .unitsandbox import (
    UnitFile,
    have_sandbox_tools,
    sandbox_command,
    systemd_is_pid1,
    systemd_run_command,
)

REPO = Path(__file__).resolve().parents[2]
KIOSK = REPO / "systemd" / "zeke-kiosk.service"
MESH = REPO / "systemd" / "zeke-mesh.service"
#: TEST-NET-1 (RFC 5737): reserved for documentation, never routed anywhere.
OFF_HOST = ("192.0.2.1", 9)

#: The vision pipeline, bounded, as scripts and tests run it.
PIPELINES = {
    "watch": [
        "-m",
        "zeke",
        "watch",
        "--demo",
        "--frames",
        "45",
        "--no-pace",
        "--json",
        "--no-events-socket",
    ],
    "detect": ["-m", "zeke", "detect", "--json"],
}

_missing = have_sandbox_tools()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


def run(command: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def in_network_namespace(command: list[str]) -> list[str]:
    """``command`` in a new network namespace: only a loopback device, no routes."""
    return ["unshare", "--net", *command]


def check_pipeline_output(name: str, stdout: str) -> None:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert lines, "the pipeline printed nothing"
    if name == "detect":
        faces = [face for doc in lines for face in doc["faces"]]
        assert len(faces) >= 2 and all(face["emotion"] in EMOTIONS for face in faces)
    else:
        events = [EmotionEvent.from_json(json.dumps(doc)) for doc in lines]
        assert any(e.kind == "enter" for e in events)
        assert all(e.emotion in EMOTIONS for e in events)


# Run inside the namespace: which interfaces exist, and what connecting off-host does.
NETNS_PROBE = textwrap.dedent(
    """
    import errno, json, socket, sys
    # /proc/self/net/dev lists the devices of this process's network namespace.
    devices = [l.split(":")[0].strip() for l in open("/proc/self/net/dev").read().splitlines()[2:]]
    if devices != ["lo"]:
        print(json.dumps({"devices": devices}))  # not isolated: never try to connect
        sys.exit(0)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
        outcome = "connected"
    except OSError as exc:
        outcome = errno.errorcode.get(exc.errno, str(exc))
    print(json.dumps({"devices": devices, "connect": outcome}))
    """
)


def test_off_host_addresses_cannot_be_routed_in_the_namespace():
    result = run(in_network_namespace([sys.executable, "-c", NETNS_PROBE, *map(str, OFF_HOST)]))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["devices"] == ["lo"]
    assert found["connect"] == "ENETUNREACH"


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_works_in_a_network_namespace(name):
    result = run(in_network_namespace([sys.executable, *PIPELINES[name]]))
    assert result.returncode == 0, result.stderr
    check_pipeline_output(name, result.stdout)


# Run under the unit's settings: every socket family the unit must refuse, and the rest.
SANDBOX_PROBE = textwrap.dedent(
    """
    import ctypes, errno, json, mmap, os, socket, threading

    def attempt(fn):
        try:
            fn()
            return "ok"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc))

    def sock(family, kind):
        socket.socket(family, kind).close()

    result = {
        "AF_INET stream": attempt(lambda: sock(socket.AF_INET, socket.SOCK_STREAM)),
        "AF_INET dgram": attempt(lambda: sock(socket.AF_INET, socket.SOCK_DGRAM)),
        "AF_INET6 stream": attempt(lambda: sock(socket.AF_INET6, socket.SOCK_STREAM)),
        "AF_NETLINK": attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_DGRAM)),
        "AF_PACKET": attempt(lambda: sock(socket.AF_PACKET, socket.SOCK_RAW)),
        "AF_UNIX stream": attempt(lambda: sock(socket.AF_UNIX, socket.SOCK_STREAM)),
        "AF_UNIX dgram": attempt(lambda: sock(socket.AF_UNIX, socket.SOCK_DGRAM)),
        # MemoryDenyWriteExecute=: no memory both writable and executable
        "W+X mapping": attempt(
            lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        ),
        # SystemCallFilter=~@resources: no renicing
        "setpriority": attempt(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)),
    }
    # RestrictNamespaces=: not even a user namespace, which needs no privilege at all.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) == 0:  # CLONE_NEWUSER, before any thread exists
        result["user namespace"] = "ok"
    else:
        result["user namespace"] = errno.errorcode.get(ctypes.get_errno(), "?")
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    result["threads"] = "ok"
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    result["CapEff"] = status["CapEff"].strip()
    result["NoNewPrivs"] = status["NoNewPrivs"].strip()
    result["devices"] = [
        l.split(":")[0].strip() for l in open("/proc/self/net/dev").read().splitlines()[2:]
    ]
    print(json.dumps(result))
    """
)


def kiosk_command(command: list[str]) -> list[str]:
    if systemd_is_pid1():
        return systemd_run_command(KIOSK, command)
    return sandbox_command(KIOSK, command)


def test_the_kiosk_cannot_open_an_ip_socket():
    print("\nusing", "systemd-run" if systemd_is_pid1() else "unshare + setpriv + seccomp")
    result = run(kiosk_command([sys.executable, "-c", SANDBOX_PROBE]))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    print(json.dumps(found, indent=1))
    for family in ("AF_INET stream", "AF_INET dgram", "AF_INET6 stream", "AF_NETLINK"):
        assert found[family] == "EAFNOSUPPORT", family
    assert found["AF_PACKET"] in ("EAFNOSUPPORT", "EPERM")
    assert found["AF_UNIX stream"] == found["AF_UNIX dgram"] == "ok"
    assert found["devices"] == ["lo"]
    assert found["CapEff"] == "0000000000000000"
    assert found["NoNewPrivs"] == "1"
    assert found["threads"] == "ok"
    assert UnitFile(KIOSK).flag("MemoryDenyWriteExecute")
    assert found["W+X mapping"] in ("EPERM", "EACCES")
    assert found["setpriority"] == "EPERM"
    assert found["user namespace"] == "EPERM"


def test_the_mesh_may_use_the_network_but_nothing_else():
    result = run(sandbox_command(MESH, [sys.executable, "-c", SANDBOX_PROBE]))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["AF_INET stream"] == found["AF_INET6 stream"] == found["AF_NETLINK"] == "ok"
    assert found["AF_PACKET"] == "EAFNOSUPPORT"
    assert found["W+X mapping"] in ("EPERM", "EACCES")
    assert found["CapEff"] == "0000000000000000"


MESH_STACK = textwrap.dedent(
    """
    # What zeke mesh run is built from, exercised under MemoryDenyWriteExecute= and the
    # system call filter: zeroconf on loopback, Ed25519 signatures, the event record.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from zeroconf import Zeroconf
    from zeke.events import EmotionEvent

    key = Ed25519PrivateKey.generate()
    key.public_key().verify(key.sign(b"event"), b"event")
    zc = Zeroconf(interfaces=["127.0.0.1"])
    zc.close()
    event = EmotionEvent(1, "enter", 1, "happy", 0.9, (1.0, 2.0, 3.0, 4.0), 0.0)
    assert EmotionEvent.from_json(event.to_json()) == event
    print("mesh stack ok")
    """
)


def test_the_mesh_stack_runs_under_the_mesh_sandbox():
    result = run(sandbox_command(MESH, [sys.executable, "-c", MESH_STACK]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mesh stack ok"


def test_zeke_watch_kiosk_runs_under_the_kiosk_sandbox(tmp_path):
    """The real kiosk loop in the unit's sandbox: READY, heartbeat, events on the socket."""
    notify_path = tmp_path / "notify.sock"
    events_path = tmp_path / "events.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"}
    command = [
        sys.executable,
        "-m",
        "zeke",
        "watch",
        "--demo",
        "--frames",
        "90",
        "--json",
        "--kiosk",
        "--events-socket",
        str(events_path),
    ]
    proc = subprocess.Popen(
        sandbox_command(KIOSK, command),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []
    received = b""
    reader = None
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if reader is None and events_path.exists():
                reader = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                reader.connect(str(events_path))
                reader.settimeout(0.02)
            if reader is not None:
                with contextlib.suppress(TimeoutError):
                    received += reader.recv(65536)
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                time.sleep(0.01)
        stdout, stderr = proc.communicate(timeout=60)
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
        if reader is not None:
            reader.close()
    assert proc.returncode == 0, stderr
    assert messages.count("READY=1") + sum(m.startswith("READY=1\n") for m in messages) == 1
    assert any(m.startswith("STATUS=") for m in messages)
    assert messages.count("WATCHDOG=1") >= 2, messages
    check_pipeline_output("watch", stdout)
    served = [EmotionEvent.from_json(line) for line in received.splitlines() if line.strip()]
    assert served, "no event reached the Unix socket"
    assert all(e.emotion in EMOTIONS for e in served)
    print(f"\n{len(messages)} notify messages, {len(served)} events on the socket")


# systemd >= 253 on Linux >= 6.3 enforces MemoryDenyWriteExecute= with prctl(PR_SET_MDWE)
# instead of seccomp; the flag survives execve, so set it and become the pipeline.
KERNEL_MDWE = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(77)  # kernel without PR_SET_MDWE
    assert libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) == PR_MDWE_REFUSE_EXEC_GAIN
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
    """
)


def test_pipeline_runs_under_kernel_memory_deny_write_execute():
    result = run([sys.executable, "-c", KERNEL_MDWE, *PIPELINES["watch"]])
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stderr
    check_pipeline_output("watch", result.stdout)
