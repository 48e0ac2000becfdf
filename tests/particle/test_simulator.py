"""The simulator behaves like the firmware the spec describes, seen through real pyserial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import serial

from zeke.testing.particle_sim import FAULTS, ParticleSimulator, State

CAN2 = b"\x18\x18"


def _exchange(port: serial.Serial, command: bytes, wait: float = 0.5) -> bytes:
    port.reset_input_buffer()
    port.write(command)
    out = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        out += port.read(4096)
    return out


@pytest.fixture
def open_port():
    opened: list[serial.Serial] = []

    def do(path: str) -> serial.Serial:
        port = serial.Serial(path, 9600, timeout=0.05, exclusive=True)
        opened.append(port)
        return port

    yield do
    for port in opened:
        port.close()


def test_console_replies_are_the_firmware_strings(sims, open_port):
    sim = sims("xenon", "1.5.2", has_otp=False)
    port = open_port(sim.port)
    assert _exchange(port, b"v") == b"system firmware version: 1.5.2\n\r\n"
    assert _exchange(port, b"i\r\n") == f"Your device id is {sim.device_id}\r\n".encode()
    modules = _exchange(port, b"s")
    assert modules.endswith(b"\r\n") and json.loads(modules)["p"] == 14
    assert _exchange(port, b"c") == b"Device claimed: no\r\n"
    assert _exchange(port, b"?Q \r\n", wait=0.3) == b"", "unknown bytes are dropped silently"


def test_gen3_identity_with_otp_and_cellular_keys(sims, open_port):
    boron = sims("boron", "4.2.0")
    reply = _exchange(open_port(boron.port), b"i")
    assert reply.startswith(f"Device ID: {boron.device_id}\r\n".encode())
    assert b"Serial Number: " in reply and b"IMEI: " in reply and b"ICCID: " in reply


def test_ready_line_and_idle_timeline_after_f(sims, open_port):
    """No host data after `f`: 'C' every 5 s (scaled), then CAN CAN, then the failure text."""
    sim = sims("xenon", "1.5.2", time_scale=0.02)  # 5 s -> 0.1 s
    out = _exchange(open_port(sim.port), b"f", wait=2.0)
    ready = b"Waiting for the binary file to be sent ... (press 'a' to abort)\r\n"
    assert out == ready + b"CCCCCC" + CAN2 + CAN2 + b"Failed to receive the file!\r\n"
    assert sim.state == State.LISTENING


def test_abort_with_a_and_block_start_shortcut(sims, open_port):
    sim = sims("xenon", "1.5.2", time_scale=1.0)  # no 'C' polls within the read window
    port = open_port(sim.port)
    out = _exchange(port, b"f" + b"a")
    assert out.endswith(CAN2 + CAN2 + b"Aborted by user.\r\n")
    # SOH in listening mode: straight into the receiver, no ready line printed.
    header = b"\x01\x00\xff" + b"x\x00" + b"100 " + bytes(122) + b"\x00\x00"
    assert _exchange(port, header) == b"\x06C"
    assert _exchange(port, CAN2).startswith(b"\x06" + CAN2 + b"Failed to receive the file!")


def test_duplicate_block_gets_nak(sims, open_port):
    sim = sims("xenon", "1.5.2", time_scale=1.0)
    port = open_port(sim.port)
    _exchange(port, b"f")
    header = b"\x01\x00\xff" + b"x\x00" + b"300 " + bytes(122) + b"\x00\x00"
    block1 = b"\x01\x01\xfe" + bytes(128) + b"\x00\x00"
    assert _exchange(port, header) == b"\x06C"
    assert _exchange(port, block1) == b"\x06"
    assert _exchange(port, block1) == b"\x15", "the receiver cannot re-ACK a duplicate"


def test_28800_enters_listening_and_14400_goes_to_dfu(sims, open_port):
    sim = sims("xenon", "1.5.2", listening=False)
    port = open_port(sim.port)
    assert _exchange(port, b"v") == b""
    port.baudrate = 28800
    assert sim.wait_for(lambda: sim.state == State.LISTENING, 5)
    port.baudrate = 9600
    assert _exchange(port, b"v").startswith(b"system firmware version")
    port.baudrate = 14400
    assert sim.wait_for(lambda: sim.state == State.DFU, 5)
    assert sim.comports() == [] and not os.path.exists(sim.port)
    with pytest.raises(serial.SerialException):
        port.write(b"v")
        port.read(10)


def test_device_os_6_console(sims, open_port):
    sim = sims("argon", "6.0.0")
    port = open_port(sim.port)
    assert _exchange(port, b"v") == b"system firmware version: 6.0.0\n\r\n"
    assert _exchange(port, b"f") == CAN2 + b"Serial/YModem flashing is no longer supported\r\n"
    assert _exchange(port, b"\x01\x00\xff") == b"", "no SOH shortcut in 6.x"


def test_reset_hangs_up_and_reenumerates_on_a_new_pty(sims, open_port):
    sim = sims("xenon", "1.5.2", setup_done=False)
    port = open_port(sim.port)
    port.write(b"L")  # reset into listening mode
    with pytest.raises(serial.SerialException, match=r"returned no data|read failed"):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            port.read(10)
    assert sim.wait_for(lambda: sim.boots == 2 and sim.comports(), 5)
    # The old port stays dead; the stable link now points at the new pty (its number may be
    # reused, as a real ttyACM0 is).
    assert os.path.realpath(sim.port) == sim.pty_path
    assert _exchange(open_port(sim.port), b"v").startswith(b"system firmware version: 1.5.2")


def test_comports_entry_looks_like_pyserial_on_linux(sims):
    sim = sims("xenon", "1.5.2")
    (info,) = sim.comports()
    assert (info.vid, info.pid, info.serial_number) == (0x2B04, 0xC00E, sim.device_id)
    assert info.manufacturer == "Particle" and info.product == "Xenon CDC Mode"
    assert info.hwid.startswith("USB VID:PID=2B04:C00E SER=")


def test_unknown_fault_and_platform_are_refused():
    with pytest.raises(ValueError, match="unknown fault"):
        ParticleSimulator("xenon", fault="gremlins")
    with pytest.raises(ValueError, match="unknown platform"):
        ParticleSimulator("zenon")


def test_runs_standalone_and_logs_what_it_receives(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zeke.testing.particle_sim",
            "--platform",
            "xenon",
            "--device-os",
            "1.5.2",
            "--fault",
            "nak",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/"), path
        with serial.Serial(path, 9600, timeout=0.05) as port:
            assert _exchange(port, b"v", wait=1.0) == b"system firmware version: 1.5.2\n\r\n"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "rx command 'v'" in err and "Xenon (id 14), Device OS 1.5.2" in err


def test_fault_list_is_documented_by_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "zeke.testing.particle_sim", "--list-faults"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert all(name in out for name in FAULTS)
