"""The `zeke flash-node` error catalogue: one class per failure family, one exit code each.

Exit codes (documented in the command help):

==== =================================================================================
code meaning
==== =================================================================================
2    no Particle device found, or several and no ``--port``
3    the port cannot be used: permission denied, busy, or another program (ModemManager)
     writing to it
4    the device is not in listening mode
5    the firmware file is invalid for this device (corrupt, not an app, wrong platform,
     address range)
6    this device or Device OS cannot be flashed over serial (Device OS 6+, Core): use DFU
7    a phase timed out (the message names the phase and the time allowed)
8    the device rejected the image after the transfer (``Validation failed: ...``)
9    the transfer was aborted: cancelled by the device, NAK, or the device disconnected
==== =================================================================================
"""

from __future__ import annotations

from zeke.errors import ZekeError


class ParticleError(ZekeError):
    """Base of every Particle serial failure a user can act on."""

    exit_code = 1


class NoDeviceError(ParticleError):
    exit_code = 2


class AmbiguousDeviceError(ParticleError):
    exit_code = 2


class PortAccessError(ParticleError):
    """Permission denied or the port could not be opened."""

    exit_code = 3


class PortBusyError(PortAccessError):
    """Another program holds or writes to the port (serial monitor, ModemManager)."""


class NotListeningError(ParticleError):
    exit_code = 4


class FirmwareError(ParticleError):
    """The file is not a valid application for this device; nothing was sent."""

    exit_code = 5


class PlatformMismatchError(FirmwareError):
    pass


class SerialFlashUnsupportedError(ParticleError):
    """Serial flashing does not exist for this device (Device OS 6+, Core)."""

    exit_code = 6


class DeviceOSTooNewError(SerialFlashUnsupportedError):
    pass


class PhaseTimeoutError(ParticleError):
    exit_code = 7

    def __init__(self, phase: str, seconds: float, detail: str = "", hint: str | None = None):
        message = f"timed out after {seconds:.1f} s waiting for the {phase}"
        if detail:
            message += f" ({detail})"
        super().__init__(message, hint)
        self.phase = phase
        self.seconds = seconds


class DeviceRejectedError(ParticleError):
    exit_code = 8

    def __init__(self, code: str, reason: str, hint: str | None = None):
        super().__init__(f"device rejected the image: Validation failed: {code} ({reason})", hint)
        self.code = code
        self.reason = reason


class TransferAbortedError(ParticleError):
    exit_code = 9


class DeviceDisconnectedError(TransferAbortedError):
    """The serial port vanished (reset, unplug, DFU) while zeke was using it."""

    reason: str = ""  # what the serial layer said
