"""Finding devices: USB ids, fallbacks, several devices, DFU mode, and port open failures."""

from __future__ import annotations

import errno

import pytest
import serial
from serial.tools.list_ports_common import ListPortInfo

from zeke.particle.discovery import classify, find_dfu_devices, scan, select_port
from zeke.particle.errors import (
    AmbiguousDeviceError,
    DeviceDisconnectedError,
    NoDeviceError,
    PortAccessError,
    PortBusyError,
    SerialFlashUnsupportedError,
)
from zeke.particle.port import Link, _open_error


def port_info(device, vid=None, pid=None, serial_number=None, manufacturer=None, product=None):
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number = vid, pid, serial_number
    info.manufacturer, info.product = manufacturer, product
    if vid is not None:
        info.apply_usb_info()
    return info


DEVICE_ID = "e00fce68aabbccddeeff0011"


def test_platform_from_pid_and_device_id_from_serial():
    found = classify(port_info("/dev/ttyACM0", 0x2B04, 0xC00E, DEVICE_ID.upper(), "Particle"))
    assert (found.platform_id, found.platform.name, found.device_id) == (14, "xenon", DEVICE_ID)
    boron = classify(port_info("/dev/ttyACM1", 0x2B04, 0xC00D, DEVICE_ID))
    assert boron.platform.title == "Boron"


def test_fallbacks_and_non_particle_ports():
    # Old stacks: blank ids but the manufacturer string; platform learnt later from `s`.
    blank = classify(port_info("/dev/ttyACM2", manufacturer="Particle"))
    assert blank is not None and blank.platform_id is None
    gen2 = classify(port_info("/dev/ttyACM3", manufacturer="Spark Devices", product="x"))
    assert gen2 is not None
    assert classify(port_info("/dev/ttyUSB0", 0x0403, 0x6001, "FT1", "FTDI")) is None
    assert classify(port_info("/dev/ttyACM4", 0x2B04, 0xD00E)) is None, "DFU PID has no serial"
    old_serial = classify(port_info("/dev/ttyACM5", 0x2B04, 0xC006, f"Particle_Photon_{DEVICE_ID}"))
    assert old_serial.device_id == DEVICE_ID


def test_several_devices_need_port_and_are_listed():
    ports = [
        port_info("/dev/ttyACM0", 0x2B04, 0xC00E, DEVICE_ID),
        port_info("/dev/ttyACM1", 0x2B04, 0xC00C, "e00f" + "1" * 20),
    ]
    with pytest.raises(AmbiguousDeviceError) as err:
        select_port(None, lambda: ports)
    assert err.value.exit_code == 2 and err.value.hint == "choose one with --port"
    assert "/dev/ttyACM0 (Xenon" in err.value.message and "/dev/ttyACM1 (Argon" in err.value.message
    assert select_port("/dev/ttyACM1", lambda: ports).platform_id == 12


def test_no_device_mentions_dfu_and_lists_unidentified_ports(tmp_path):
    unknown = [port_info("/dev/ttyACM7")]
    with pytest.raises(NoDeviceError) as err:
        select_port(None, lambda: unknown, sysfs_root=tmp_path)
    assert err.value.exit_code == 2
    assert err.value.message.startswith("No Particle device found on USB serial")
    assert "DFU mode" in err.value.message and "/dev/ttyACM7" in err.value.hint
    assert scan(lambda: unknown) == ([], ["/dev/ttyACM7"])


def test_device_in_dfu_mode_is_named(tmp_path):
    for name, vid, pid in (("1-1", "2b04", "d00e"), ("1-2", "1d6b", "0002")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "idVendor").write_text(vid + "\n")
        (tmp_path / name / "idProduct").write_text(pid + "\n")
    assert find_dfu_devices(tmp_path) == [("2b04:d00e", 14)]
    with pytest.raises(NoDeviceError, match="is in DFU mode"):
        select_port(None, lambda: [], sysfs_root=tmp_path)


def test_core_cannot_be_serial_flashed():
    core = [port_info("/dev/ttyACM0", 0x1D50, 0x607D, DEVICE_ID)]
    with pytest.raises(SerialFlashUnsupportedError) as err:
        select_port(None, lambda: core)
    assert err.value.exit_code == 6


def test_busy_port_is_exit_3(sims):
    sim = sims("xenon", "1.5.2")
    with serial.Serial(sim.port, 9600, exclusive=True), pytest.raises(PortBusyError) as err:
        Link.open(sim.port)
    assert err.value.exit_code == 3
    assert err.value.message == (
        f"{sim.port} is busy (another program has it open). Close serial monitors; on Linux "
        "check ModemManager."
    )


def test_missing_port_is_exit_2(tmp_path):
    with pytest.raises(NoDeviceError) as err:
        Link.open(str(tmp_path / "ttyACM9"))
    assert err.value.exit_code == 2 and "DFU mode" in err.value.message


def test_permission_denied_names_dialout():
    # As root the kernel never refuses the open, so map pyserial's own exception for EACCES.
    err = _open_error(
        "/dev/ttyACM0",
        serial.SerialException(errno.EACCES, "could not open port /dev/ttyACM0: Permission denied"),
    )
    assert isinstance(err, PortAccessError) and err.exit_code == 3
    assert err.message == (
        "Permission denied opening /dev/ttyACM0. Add yourself to 'dialout' (or install Particle "
        "udev rules) and replug."
    )
    assert "usermod -aG dialout" in err.hint


def test_every_operation_on_a_vanished_port_is_a_disconnect(sims):
    """tcdrain/tcflush/tcsetattr on a hung-up tty raise termios.error, not OSError."""
    sim = sims("xenon", "1.5.2", reenumerate_delay=1000.0)
    link = Link.open(sim.port)
    try:
        sim.press_reset()  # USB hang-up
        assert sim.wait_for(lambda: sim.state.value == "resetting", 5)
        operations = {
            "read": lambda: link.read(10, 1.0),
            "write": lambda: link.write(b"v"),
            "drain_input": link.drain_input,
            "set_baudrate": lambda: link.set_baudrate(28800),
            "write-nothing": lambda: link.write(b""),  # still runs tcdrain
        }
        for name, operation in operations.items():
            with pytest.raises(DeviceDisconnectedError):
                operation()
                raise AssertionError(f"{name} on a vanished port did not fail")
    finally:
        link.close()
