"""Board health for the watch screen: CPU load and temperature, memory, this process's RSS.

On a Jetson with jetson-stats installed, its readings are used instead; jetson-stats is
AGPL-3.0, so it is an optional extra imported lazily and only there.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Health:
    cpu_percent: float
    load1: float
    mem_used_mb: float
    mem_total_mb: float
    temp_c: float | None
    rss_mb: float
    provider: str


def read_cpu_temperature(root: str = "/") -> float | None:
    """Hottest thermal zone in degrees C (sysfs), or None where the board exposes none."""
    best = None
    for zone in glob.glob(os.path.join(root, "sys/class/thermal/thermal_zone*/temp")):
        try:
            value = int(Path(zone).read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
        if 0 < value < 150:
            best = value if best is None else max(best, value)
    return best


class HealthMonitor:
    """Cheap, cached health readings (at most one real read per ``interval`` seconds)."""

    def __init__(self, interval: float = 2.0):
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self.interval = interval
        self._last: Health | None = None
        self._at = 0.0
        self._jtop = self._open_jtop()

    @staticmethod
    def _open_jtop():
        if not os.path.exists("/etc/nv_tegra_release"):
            return None
        try:
            from jtop import jtop  # AGPL-3.0: optional, Jetson only
        except ImportError:
            return None
        try:
            handle = jtop()
            handle.start()
            return handle
        except Exception:
            return None

    def sample(self) -> Health:
        now = time.monotonic()
        if self._last is not None and now - self._at < self.interval:
            return self._last
        ps = self._psutil
        vm = ps.virtual_memory()
        temp = read_cpu_temperature()
        provider = "psutil"
        if self._jtop is not None and self._jtop.ok():
            temps = {k: v.get("temp") for k, v in self._jtop.temperature.items()}
            values = [v for v in temps.values() if isinstance(v, (int, float)) and v > -200]
            temp = max(values) if values else temp
            provider = "jetson-stats"
        self._last = Health(
            cpu_percent=ps.cpu_percent(None),
            load1=os.getloadavg()[0],
            mem_used_mb=(vm.total - vm.available) / 2**20,
            mem_total_mb=vm.total / 2**20,
            temp_c=temp,
            rss_mb=self._proc.memory_info().rss / 2**20,
            provider=provider,
        )
        self._at = now
        return self._last

    def close(self) -> None:
        if self._jtop is not None:
            with contextlib.suppress(Exception):
                self._jtop.close()
