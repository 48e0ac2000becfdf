"""Which board this is and which accelerators it has.

The board is read from the device-tree model (Pi, Coral, Jetson), ``/etc/nv_tegra_release``
(Jetson's L4T release, mapped to its JetPack version), ``/etc/mendel_version`` (Coral) and DMI
(x86). An Edge TPU shows up as ``/dev/apex_N`` (PCIe/M.2, and the Coral Dev Board's own) or as
a USB device: ``1a6e:089a`` before its firmware is loaded, ``18d1:9302`` after. Whether
``libedgetpu.so.1`` loads decides whether the TPU can actually be used.

Everything is read below ``root`` so tests and users can run detection against fixture
trees (``zeke.testing.fake_boards``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

EDGETPU_USB_IDS = {
    ("1a6e", "089a"): "needs-firmware",  # Global Unichip: bootloader, firmware not yet loaded
    ("18d1", "9302"): "ready",  # Google: firmware loaded, running
}
LIBEDGETPU = "libedgetpu.so.1"

#: L4T release -> JetPack version (NVIDIA's release tables)
JETPACK = {
    "32.4.3": "4.4", "32.4.4": "4.4.1", "32.5.0": "4.5", "32.5.1": "4.5.1", "32.5.2": "4.5.1",
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6", "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1",
    "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4", "35.6.1": "5.1.5",
    "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
}  # fmt: skip
_JETPACK_MAJOR = {"32": "4.x", "35": "5.x", "36": "6.x"}


@dataclass(frozen=True)
class EdgeTpu:
    """One Edge TPU: on PCIe (``/dev/apex_N``) or USB."""

    bus: str  # "pcie" or "usb"
    location: str  # "/dev/apex_0" or "usb 2-1"
    state: str  # "ready" or "needs-firmware" (USB before first use: normal)
    accessible: bool | None = None  # can this user open it (None: not checked)


@dataclass(frozen=True)
class BoardInfo:
    """What this machine is, in the terms zeke cares about."""

    kind: str  # "coral-dev-board", "jetson", "raspberry-pi", "generic"
    model: str
    arch: str
    os: str
    details: dict[str, Any] = field(default_factory=dict)
    edgetpus: tuple[EdgeTpu, ...] = ()
    libedgetpu: bool | None = None  # None: not probed
    libedgetpu_error: str | None = None

    @property
    def has_edgetpu(self) -> bool:
        return bool(self.edgetpus)

    @property
    def edgetpu_usable(self) -> bool:
        return self.has_edgetpu and self.libedgetpu is True

    def recommended_backend(self) -> str:
        return "edgetpu" if self.edgetpu_usable else "cpu"

    def recommended_detector(self) -> str:
        return "ssd" if self.edgetpu_usable else "short"

    def plan(self) -> dict[str, str]:
        """Where the detector and the emotion model will run on this board, and why."""
        if self.edgetpu_usable:
            tpu = self.edgetpus[0]
            return {
                "detector": f"SSD face model on the Edge TPU ({tpu.bus}, {tpu.location})",
                "emotion": "int8 emotion model on the CPU",
                "reason": f"Edge TPU found and {LIBEDGETPU} loads",
            }
        if self.has_edgetpu:
            reason = f"Edge TPU found but {LIBEDGETPU} " + (
                "was not checked" if self.libedgetpu is None else "does not load"
            )
        else:
            reason = "no Edge TPU found"
        return {
            "detector": "BlazeFace on the CPU",
            "emotion": "int8 emotion model on the CPU",
            "reason": reason,
        }

    def summary(self) -> str:
        tpu = ", Edge TPU " + "/".join(t.bus for t in self.edgetpus) if self.edgetpus else ""
        return f"{self.model} ({self.arch}, {self.os}){tpu}"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["edgetpus"] = [asdict(t) for t in self.edgetpus]
        doc["plan"] = self.plan()
        return doc


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\0", "\n").strip()
    except OSError:
        return None


def _os_release(root: Path) -> dict[str, str]:
    text = _read(root / "etc/os-release") or _read(root / "usr/lib/os-release") or ""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def parse_nv_tegra_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 3.0, ...`` -> ``"36.3.0"``."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return None
    parts = [match.group(1), *match.group(2).split(".")]
    while len(parts) < 3:
        parts.append("0")
    return ".".join(parts[:3])


def jetpack_for(l4t: str) -> str:
    """The JetPack version that ships L4T ``l4t`` (best effort for unlisted patch releases)."""
    if l4t in JETPACK:
        return JETPACK[l4t]
    prefix = ".".join(l4t.split(".")[:2])
    same_minor = [v for k, v in JETPACK.items() if k.startswith(prefix + ".")]
    if same_minor:
        return same_minor[-1]
    return _JETPACK_MAJOR.get(l4t.split(".")[0], "unknown")


def _arch(root: Path, machine: str | None) -> str:
    if machine:
        return machine
    recorded = _read(root / "proc/sys/kernel/arch")
    if recorded:
        return recorded
    return platform.machine()


def _cpus(root: Path) -> int | None:
    present = _read(root / "sys/devices/system/cpu/present")
    if not present:
        return None
    count = 0
    for part in present.split(","):
        low, _, high = part.partition("-")
        with contextlib.suppress(ValueError):
            count += int(high or low) - int(low) + 1
    return count or None


def _memory_mb(root: Path) -> int | None:
    match = re.search(r"MemTotal:\s+(\d+)\s*kB", _read(root / "proc/meminfo") or "")
    return int(match.group(1)) // 1024 if match else None


def find_edgetpus(
    root: str | os.PathLike = "/", *, check_access: bool | None = None
) -> list[EdgeTpu]:
    """Edge TPUs on PCIe (``/dev/apex_N``) and USB (by vendor:product id in sysfs)."""
    base = Path(root)
    if check_access is None:
        check_access = base.resolve() == Path("/")
    found: list[EdgeTpu] = []
    names: set[str] = set()
    with contextlib.suppress(OSError):
        names |= {p.name for p in (base / "dev").glob("apex_*")}
    with contextlib.suppress(OSError):
        names |= {p.name for p in (base / "sys/class/apex").iterdir()}
    for name in sorted(names):
        node = base / "dev" / name
        access = os.access(node, os.R_OK | os.W_OK) if check_access and node.exists() else None
        found.append(EdgeTpu("pcie", f"/dev/{name}", "ready", access))
    usb = base / "sys/bus/usb/devices"
    with contextlib.suppress(OSError):
        for dev in sorted(usb.iterdir()):
            ids = (_read(dev / "idVendor"), _read(dev / "idProduct"))
            state = EDGETPU_USB_IDS.get(ids)  # type: ignore[arg-type]
            if state is None:
                continue
            access = None
            if check_access:
                busnum, devnum = _read(dev / "busnum"), _read(dev / "devnum")
                if busnum and devnum:
                    node = Path(f"/dev/bus/usb/{int(busnum):03d}/{int(devnum):03d}")
                    access = os.access(node, os.R_OK | os.W_OK) if node.exists() else None
            found.append(EdgeTpu("usb", f"usb {dev.name}", state, access))
    return found


@lru_cache(maxsize=4)
def probe_library(name: str = LIBEDGETPU) -> tuple[bool, str | None]:
    """Whether a shared library loads in this process, and why not."""
    try:
        ctypes.CDLL(name)
    except OSError as err:
        return False, str(err)
    return True, None


def detect_board(
    root: str | os.PathLike = "/",
    *,
    machine: str | None = None,
    probe_libraries: bool | None = None,
) -> BoardInfo:
    """Identify the board below ``root``. Libraries are probed only for the live root."""
    base = Path(root)
    live = base.resolve() == Path("/")
    if probe_libraries is None:
        probe_libraries = live
    dt_model = _read(base / "proc/device-tree/model") or _read(
        base / "sys/firmware/devicetree/base/model"
    )
    compatible = (
        _read(base / "proc/device-tree/compatible")
        or _read(base / "sys/firmware/devicetree/base/compatible")
        or ""
    ).split("\n")
    os_info = _os_release(base)
    os_name = os_info.get("PRETTY_NAME", "unknown OS")
    arch = _arch(base, machine)
    details: dict[str, Any] = {"cpus": _cpus(base), "memory_mb": _memory_mb(base)}
    if live:
        details["cpus"] = details["cpus"] or os.cpu_count()
    mendel = _read(base / "etc/mendel_version")
    tegra = _read(base / "etc/nv_tegra_release")

    if mendel or "Phanbell" in (dt_model or "") or "fsl,imx8mq-phanbell" in compatible:
        kind, model = "coral-dev-board", "Coral Dev Board"
        details["dt_model"] = dt_model
        if mendel:
            details["mendel"] = mendel
            os_name = f"Mendel Linux {mendel}"
    elif (
        tegra
        or (dt_model or "").startswith("NVIDIA Jetson")
        or any(c.startswith("nvidia,tegra") for c in compatible)
    ):
        kind, model = "jetson", dt_model or "NVIDIA Jetson"
        l4t = parse_nv_tegra_release(tegra or "")
        if l4t:
            details["l4t"] = l4t
            details["jetpack"] = jetpack_for(l4t)
            os_name = f"L4T R{l4t} (JetPack {details['jetpack']})"
    elif (dt_model or "").startswith("Raspberry Pi") or any(
        c.startswith("raspberrypi,") for c in compatible
    ):
        kind, model = "raspberry-pi", dt_model or "Raspberry Pi"
        match = re.match(r"Raspberry Pi (\d+)", model)
        if match:
            details["generation"] = int(match.group(1))
    else:
        kind = "generic"
        dmi = base / "sys/class/dmi/id"
        vendor, product = _read(dmi / "sys_vendor"), _read(dmi / "product_name")
        board_name = _read(dmi / "board_name")
        if vendor or product:
            details["dmi"] = {"vendor": vendor, "product": product, "board": board_name}
        model = " ".join(p for p in (vendor, product) if p) or dt_model or f"generic {arch}"
    edgetpus = tuple(find_edgetpus(base, check_access=live))
    lib_ok: bool | None = None
    lib_error = None
    if probe_libraries:
        lib_ok, lib_error = probe_library(LIBEDGETPU)
    return BoardInfo(kind, model, arch, os_name, details, edgetpus, lib_ok, lib_error)
