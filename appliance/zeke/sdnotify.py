"""Tell systemd how the service is doing: readiness, status and a watchdog heartbeat.

This speaks the ``sd_notify`` protocol directly (one datagram of ``KEY=value`` lines sent to
the AF_UNIX socket named by ``$NOTIFY_SOCKET``; a leading ``@`` names an abstract socket), so
it needs no library and works under ``RestrictAddressFamilies=AF_UNIX``. Outside systemd every
call is a cheap no-op that returns ``False``, so the same code runs at a desk and in the kiosk.

The pipeline loop uses it like this::

    watchdog = Watchdog()          # reads $WATCHDOG_USEC / $WATCHDOG_PID
    ready(status="watching")      # after the camera is open and the models are loaded
    for frame in frames:
        ...process the frame...
        watchdog.kick()            # at most one WATCHDOG=1 per interval/2
    stopping()

A hung loop stops kicking, systemd sees no heartbeat within ``WatchdogSec=`` and restarts the
unit.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = [
    "Watchdog",
    "extend_timeout",
    "notify",
    "notify_address",
    "ready",
    "status",
    "stopping",
]


def notify_address(env: Mapping[str, str] | None = None) -> str | None:
    """The socket address from ``$NOTIFY_SOCKET`` in the form ``socket.sendto`` takes.

    ``/path`` is a filesystem socket, ``@name`` an abstract one (sent as ``\\0name``). Anything
    else (unset, empty, relative, other transports) gives ``None``: not under a supervisor we
    can talk to.
    """
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one ``sd_notify`` message, e.g. ``"READY=1\\nSTATUS=watching"``.

    Returns ``True`` when the datagram was sent, ``False`` when there is no notify socket or
    the send failed: a supervisor that went away must never take the pipeline down with it.
    """
    address = notify_address(env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError:
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start a new assignment in the message.
    return " ".join(text.splitlines())


def ready(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """The service is up (``Type=notify`` units count as started from here on)."""
    message = "READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}"
    return notify(message, env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """A one-line status that ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}", env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    """The service is shutting down on purpose (so systemd does not count a failure)."""
    return notify("STOPPING=1", env)


def extend_timeout(seconds: float, env: Mapping[str, str] | None = None) -> bool:
    """Ask for more time to start or stop (a slow first model load on a small board)."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}", env)


class Watchdog:
    """The ``WatchdogSec=`` heartbeat, rate-limited so it can be kicked once per frame.

    Enabled only when ``$WATCHDOG_USEC`` is a positive number, ``$NOTIFY_SOCKET`` names a
    socket and ``$WATCHDOG_PID`` (when set) is this process; otherwise ``kick`` does nothing.
    ``kick`` sends ``WATCHDOG=1`` at most once per half interval, as systemd recommends, so a
    fast loop costs one clock read per frame and a stalled loop stops the heartbeat.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        env = os.environ if env is None else env
        self._env = dict(env)
        self._clock = clock
        self.interval_s: float | None = None
        self.sent = 0
        self.failed = 0
        self._last: float | None = None
        self.enabled = self._read_interval(env)

    def _read_interval(self, env: Mapping[str, str]) -> bool:
        if notify_address(env) is None:
            return False
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return False
        if usec <= 0:
            return False
        pid = env.get("WATCHDOG_PID")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return False  # meant for our parent, not for us
            except ValueError:
                return False
        self.interval_s = usec / 1_000_000
        return True

    def kick(self) -> bool:
        """Report that the loop is alive; returns ``True`` when a heartbeat was sent now."""
        if not self.enabled:
            return False
        assert self.interval_s is not None
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s / 2:
            return False
        self._last = now
        if notify("WATCHDOG=1", self._env):
            self.sent += 1
            return True
        self.failed += 1
        return False

    def __repr__(self) -> str:
        if not self.enabled:
            return "Watchdog(disabled)"
        return f"Watchdog(interval_s={self.interval_s}, sent={self.sent}, failed={self.failed})"
