"""Find the cameras on this board: V4L2 devices from sysfs, Pi and Jetson CSI sensors.

Everything is read below an injectable ``root`` ("/" on the device), so the same code runs
against fixture trees (``zeke.testing.fake_boards``). V4L2 capabilities come from the
``VIDIOC_QUERYCAP`` ioctl on the device node; in a fixture tree the node is a regular file
holding the 104-byte answer the driver would give, parsed by the same code.

Nodes that are not cameras are left out of ``discover_cameras``: UVC metadata nodes, codecs
(memory-to-memory devices), and the CSI receiver/ISP nodes of a Pi or Jetson, whose sensors
are listed as ``csi://N`` instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability), struct of 104 bytes
VIDIOC_QUERYCAP = 0x80685600
_CAP_STRUCT = struct.Struct("<16s32s32sIII12x")

CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_OUTPUT = 0x00000002
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_VIDEO_OUTPUT_MPLANE = 0x00002000
CAP_VIDEO_M2M_MPLANE = 0x00004000
CAP_VIDEO_M2M = 0x00008000
CAP_EXT_PIX_FORMAT = 0x00200000
CAP_META_CAPTURE = 0x00800000
CAP_READWRITE = 0x01000000
CAP_STREAMING = 0x04000000
CAP_META_OUTPUT = 0x08000000
CAP_IO_MC = 0x20000000
CAP_DEVICE_CAPS = 0x80000000

_CAP_NAMES = {
    CAP_VIDEO_CAPTURE: "video-capture",
    CAP_VIDEO_OUTPUT: "video-output",
    CAP_VIDEO_CAPTURE_MPLANE: "video-capture-mplane",
    CAP_VIDEO_OUTPUT_MPLANE: "video-output-mplane",
    CAP_VIDEO_M2M_MPLANE: "video-m2m-mplane",
    CAP_VIDEO_M2M: "video-m2m",
    CAP_EXT_PIX_FORMAT: "ext-pix-format",
    CAP_META_CAPTURE: "meta-capture",
    CAP_READWRITE: "readwrite",
    CAP_STREAMING: "streaming",
    CAP_META_OUTPUT: "meta-output",
    CAP_IO_MC: "io-mc",
}

#: drivers of memory-to-memory codec/scaler nodes (never cameras)
CODEC_DRIVERS = frozenset(
    {"bcm2835-codec", "rpi-hevc-dec", "hantro-vpu", "vsi_v4l2", "nvv4l2", "rockchip-rga"}
)
#: drivers of a Pi's CSI receiver and ISP nodes: their sensors are opened through libcamera
PI_CSI_DRIVERS = frozenset({"rp1-cfe", "unicam", "bcm2835-unicam", "pispbe", "bcm2835-isp"})
#: CSI sensors a Pi's libcamera supports (the I2C device's name or its driver's)
PI_SENSORS = frozenset(
    {
        "imx219",
        "imx477",
        "imx708",
        "imx296",
        "imx500",
        "imx290",
        "imx327",
        "imx378",
        "imx462",
        "imx519",
        "imx283",
        "ov5647",
        "ov9281",
        "ov7251",
        "ov64a40",
        "arducam_64mp",
    }
)


@dataclass(frozen=True)
class V4l2Caps:
    """The answer of ``VIDIOC_QUERYCAP``: who drives the node and what it can do."""

    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int

    @property
    def node_caps(self) -> int:
        """Capabilities of this node (``device_caps`` when the driver reports it)."""
        return self.device_caps if self.capabilities & CAP_DEVICE_CAPS else self.capabilities

    @property
    def names(self) -> list[str]:
        return [name for bit, name in _CAP_NAMES.items() if self.node_caps & bit]

    @property
    def captures_video(self) -> bool:
        return bool(self.node_caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE))

    @property
    def metadata_only(self) -> bool:
        return bool(self.node_caps & CAP_META_CAPTURE) and not self.captures_video

    @property
    def memory_to_memory(self) -> bool:
        caps = self.node_caps
        both = caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE) and caps & (
            CAP_VIDEO_OUTPUT | CAP_VIDEO_OUTPUT_MPLANE
        )
        return bool(caps & (CAP_VIDEO_M2M | CAP_VIDEO_M2M_MPLANE) or both)


def pack_querycap(
    driver: str, card: str, bus_info: str, capabilities: int, device_caps: int, version: int
) -> bytes:
    """The 104 bytes a driver writes for ``VIDIOC_QUERYCAP`` (fixture trees store these)."""
    return _CAP_STRUCT.pack(
        driver.encode()[:15],
        card.encode()[:31],
        bus_info.encode()[:31],
        version,
        capabilities,
        device_caps,
    )


def parse_querycap(data: bytes) -> V4l2Caps:
    driver, card, bus, version, caps, dev_caps = _CAP_STRUCT.unpack(bytes(data[: _CAP_STRUCT.size]))

    def text(raw: bytes) -> str:
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    return V4l2Caps(text(driver), text(card), text(bus), version, caps, dev_caps)


def querycap(node: Path, *, allow_recorded: bool = False) -> V4l2Caps | None:
    """Ask a V4L2 node what it is; ``None`` when it cannot be asked (absent, no permission).

    ``allow_recorded`` accepts a regular file holding the answer (fixture trees).
    """
    try:
        info = node.stat()
    except OSError:
        return None
    if stat.S_ISCHR(info.st_mode):
        try:
            fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            buf = bytearray(_CAP_STRUCT.size)
            fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf, True)
        except OSError:
            return None
        finally:
            os.close(fd)
        return parse_querycap(buf)
    if allow_recorded and stat.S_ISREG(info.st_mode) and info.st_size == _CAP_STRUCT.size:
        return parse_querycap(node.read_bytes())
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip().strip("\0").strip()
    except OSError:
        return None


def _link_name(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return Path(os.readlink(path)).name
    return None


def _node_number(name: str) -> int:
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else 1 << 30


@dataclass(frozen=True)
class V4l2Device:
    """One ``/dev/videoN`` node as sysfs and the driver describe it."""

    node: str  # "video0"
    path: str  # "/dev/video0" on the device
    name: str
    driver: str
    index: int
    bus: str  # "usb", "platform", "pci", ...
    role: str  # "capture", "metadata", "codec", "csi-internal", "other"
    caps: V4l2Caps | None = None
    usb_id: str | None = None  # "046d:082d"
    usb_product: str | None = None
    stable_path: str | None = None  # /dev/v4l/by-id/... when udev made one
    accessible: bool | None = None  # can this user open it (None: unknown)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["caps"] = (
            None
            if self.caps is None
            else {"driver": self.caps.driver, "card": self.caps.card, "names": self.caps.names}
        )
        return doc


@dataclass(frozen=True)
class CameraInfo:
    """A camera zeke can open, with the URI that opens it."""

    uri: str
    name: str
    kind: str  # "usb", "csi", "platform"
    device: str | None = None  # the /dev node, when there is one
    driver: str | None = None
    stable_uri: str | None = None  # survives re-plugging and renumbering
    accessible: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def best_uri(self) -> str:
        return self.stable_uri or self.uri

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stable_paths(root: Path) -> dict[str, str]:
    """Map /dev/videoN -> /dev/v4l/by-id/... (capture interfaces only, as udev names them)."""
    result: dict[str, str] = {}
    by_id = root / "dev/v4l/by-id"
    with contextlib.suppress(OSError):
        for link in sorted(by_id.iterdir()):
            target = _link_name(link)
            if target and link.name.endswith("-index0"):
                result.setdefault(f"/dev/{target}", f"/dev/v4l/by-id/{link.name}")
    return result


def _role(name: str, driver: str, index: int, caps: V4l2Caps | None) -> str:
    if name.startswith("vi-output") or driver in PI_CSI_DRIVERS:
        return "csi-internal"
    if caps is not None:
        if caps.metadata_only:
            return "metadata"
        if caps.memory_to_memory or caps.driver in CODEC_DRIVERS:
            return "codec"
        return "capture" if caps.captures_video else "other"
    if driver in CODEC_DRIVERS:
        return "codec"
    if driver == "uvcvideo" and index != 0:
        return "metadata"  # UVC registers the metadata node as index 1
    return "capture"


def list_v4l2(root: str | os.PathLike = "/") -> list[V4l2Device]:
    """Every V4L2 node sysfs knows, with its role, sorted by node number."""
    base = Path(root)
    class_dir = base / "sys/class/video4linux"
    try:
        nodes = sorted((p for p in class_dir.iterdir()), key=lambda p: _node_number(p.name))
    except OSError:
        return []
    stable = _stable_paths(base)
    fixture = base.resolve() != Path("/")
    devices = []
    for entry in nodes:
        node = entry.name
        name = _read(entry / "name") or node
        index_text = _read(entry / "index")
        index = int(index_text) if index_text and index_text.isdigit() else 0
        parent = entry / "device"
        driver = _link_name(parent / "driver") or ""
        bus = _link_name(parent / "subsystem") or ""
        usb_id = usb_product = None
        if bus == "usb":
            usb_dev = parent.resolve().parent  # the interface's parent is the USB device
            vid, pid = _read(usb_dev / "idVendor"), _read(usb_dev / "idProduct")
            usb_id = f"{vid}:{pid}" if vid and pid else None
            usb_product = _read(usb_dev / "product")
        uevent = _read(entry / "uevent") or ""
        devname = next(
            (line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("DEVNAME=")),
            node,
        )
        dev_path = f"/dev/{devname}"
        node_file = base / dev_path.lstrip("/")
        caps = querycap(node_file, allow_recorded=fixture)
        if caps is not None and not driver:
            driver = caps.driver
        accessible = (
            os.access(node_file, os.R_OK | os.W_OK) if not fixture and node_file.exists() else None
        )
        devices.append(
            V4l2Device(
                node=node,
                path=dev_path,
                name=name,
                driver=driver,
                index=index,
                bus=bus,
                role=_role(name, driver, index, caps),
                caps=caps,
                usb_id=usb_id,
                usb_product=usb_product,
                stable_path=stable.get(dev_path),
                accessible=accessible,
            )
        )
    return devices


def pi_csi_sensors(root: str | os.PathLike = "/") -> list[dict[str, str]]:
    """CSI sensors on a Pi's camera I2C buses, in the order libcamera numbers them."""
    base = Path(root) / "sys/bus/i2c/devices"
    found = []
    with contextlib.suppress(OSError):
        for dev in base.iterdir():
            name = (_read(dev / "name") or "").lower()
            driver = _link_name(dev / "driver")
            sensor = name if name in PI_SENSORS else (driver if driver in PI_SENSORS else None)
            if sensor:
                found.append({"sensor": sensor, "i2c": dev.name, "bound": str(bool(driver))})

    def order(item: dict[str, str]) -> tuple[int, str]:
        bus = item["i2c"].split("-", 1)[0]
        return (int(bus) if bus.isdigit() else 1 << 30, item["i2c"])

    return sorted(found, key=order)


def jetson_csi_sensors(devices: list[V4l2Device]) -> list[dict[str, str]]:
    """Jetson CSI sensors: the VI capture nodes are named ``vi-output, <sensor> <bus-addr>``."""
    found = []
    for dev in devices:
        if dev.name.startswith("vi-output"):
            desc = dev.name.split(",", 1)[1].strip() if "," in dev.name else dev.name
            sensor, _, address = desc.partition(" ")
            found.append({"sensor": sensor, "i2c": address, "node": dev.path})
    return found


def discover_cameras(
    root: str | os.PathLike = "/", board_kind: str | None = None
) -> list[CameraInfo]:
    """Cameras zeke can open, CSI sensors first, then V4L2 capture devices by node number.

    ``board_kind`` (from ``zeke.board``) decides how CSI sensors are found; by default it is
    detected from the same root.
    """
    if board_kind is None:
        from zeke.board import detect_board

        board_kind = detect_board(root, probe_libraries=False).kind
    devices = list_v4l2(root)
    cameras: list[CameraInfo] = []
    if board_kind == "raspberry-pi":
        for number, sensor in enumerate(pi_csi_sensors(root)):
            bound = sensor["bound"] == "True"
            cameras.append(
                CameraInfo(
                    uri=f"csi://{number}",
                    name=f"{sensor['sensor']} (CSI, libcamera)",
                    kind="csi",
                    driver=sensor["sensor"],
                    details={"i2c": sensor["i2c"], "driver_bound": bound},
                )
            )
    elif board_kind == "jetson":
        for number, sensor in enumerate(jetson_csi_sensors(devices)):
            cameras.append(
                CameraInfo(
                    uri=f"csi://{number}",
                    name=f"{sensor['sensor']} (CSI, Argus)",
                    kind="csi",
                    device=sensor["node"],
                    driver=sensor["sensor"],
                    details={"i2c": sensor["i2c"]},
                )
            )
    for dev in devices:
        if dev.role != "capture":
            continue
        cameras.append(
            CameraInfo(
                uri=f"v4l2://{dev.path}",
                name=dev.usb_product or dev.name,
                kind="usb" if dev.bus == "usb" else "platform",
                device=dev.path,
                driver=dev.driver,
                stable_uri=f"v4l2://{dev.stable_path}" if dev.stable_path else None,
                accessible=dev.accessible,
                details={
                    "usb_id": dev.usb_id,
                    "capabilities": dev.caps.names if dev.caps else None,
                    "card": dev.caps.card if dev.caps else dev.name,
                },
            )
        )
    return cameras
