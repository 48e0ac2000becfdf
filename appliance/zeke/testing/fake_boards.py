"""Fixture trees of real boards: the files zeke reads to tell a board and its cameras apart.

Each builder writes, below a directory of your choice, the device tree / DMI / release
files, the sysfs entries of its V4L2 nodes, I2C sensors and USB devices (with relative
symlinks, as the kernel lays them out), and one regular file per ``/dev/videoN`` holding the
104-byte ``VIDIOC_QUERYCAP`` answer its driver gives. Board and camera detection then run
against the tree as they would on the board:

    python -m zeke.testing.fake_boards raspberry-pi-5 pi5-tree
    zeke doctor --root pi5-tree

Boards: a Coral Dev Board (Mendel, PCIe Edge TPU, Coral Camera on the i.MX CSI bridge), a
Jetson Orin Nano developer kit (JetPack 6.0, IMX219 on CSI), a Raspberry Pi 5 with a Camera
Module 3 (IMX708) and a generic x86 PC with a USB webcam (plus its UVC metadata node) and a
USB Coral Accelerator that has not had its firmware loaded yet.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zeke.camera.discovery import (
    CAP_DEVICE_CAPS,
    CAP_EXT_PIX_FORMAT,
    CAP_IO_MC,
    CAP_META_CAPTURE,
    CAP_META_OUTPUT,
    CAP_READWRITE,
    CAP_STREAMING,
    CAP_VIDEO_CAPTURE,
    CAP_VIDEO_CAPTURE_MPLANE,
    CAP_VIDEO_M2M_MPLANE,
    CAP_VIDEO_OUTPUT_MPLANE,
    pack_querycap,
)


@dataclass(frozen=True)
class FakeBoard:
    """A fixture tree and what it represents."""

    name: str
    root: Path
    description: str


class _Tree:
    """Writes files and relative symlinks below a root, creating directories as needed."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def write(self, rel: str, content: str | bytes) -> Path:
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        target.write_bytes(content)
        return target

    def mkdir(self, rel: str) -> Path:
        target = self.path(rel)
        target.mkdir(parents=True, exist_ok=True)
        return target

    def link(self, rel: str, target_rel: str) -> None:
        """A relative symlink at ``rel`` pointing at ``target_rel`` (both below the root)."""
        link = self.path(rel)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(self.path(target_rel), link.parent), link)

    # -- pieces every board has -------------------------------------------------------------
    def device_tree(self, model: str, compatible: list[str]) -> None:
        base = "sys/firmware/devicetree/base"
        self.write(f"{base}/model", model + "\0")
        self.write(f"{base}/compatible", "\0".join(compatible) + "\0")
        self.link("proc/device-tree", base)

    def system(self, arch: str, cpus: int, mem_kb: int, pretty_os: str, os_id: str) -> None:
        self.write("proc/sys/kernel/arch", arch + "\n")
        self.write("sys/devices/system/cpu/present", f"0-{cpus - 1}\n")
        self.write(
            "proc/meminfo", f"MemTotal:       {mem_kb} kB\nMemFree:        {mem_kb // 2} kB\n"
        )
        self.write("etc/os-release", f'PRETTY_NAME="{pretty_os}"\nID={os_id}\n')

    def driver(self, bus: str, name: str) -> str:
        rel = f"sys/bus/{bus}/drivers/{name}"
        self.mkdir(rel)
        return rel

    def v4l2_node(
        self,
        node: str,
        name: str,
        device_dir: str,
        bus: str,
        driver: str,
        caps: bytes,
        index: int = 0,
    ) -> None:
        """A /dev/videoN node: its sysfs class entry, parent device, driver and QUERYCAP answer."""
        number = int(node.removeprefix("video"))
        entry = f"{device_dir}/video4linux/{node}"
        self.write(f"{entry}/name", name + "\n")
        self.write(f"{entry}/index", f"{index}\n")
        self.write(f"{entry}/dev", f"81:{number}\n")
        self.write(f"{entry}/uevent", f"MAJOR=81\nMINOR={number}\nDEVNAME={node}\n")
        self.link(f"{entry}/device", device_dir)
        self.link(f"{entry}/subsystem", "sys/class/video4linux")
        self.link(f"sys/class/video4linux/{node}", entry)
        self.link(f"{device_dir}/driver", self.driver(bus, driver))
        self.mkdir(f"sys/bus/{bus}")
        self.link(f"{device_dir}/subsystem", f"sys/bus/{bus}")
        self.write(f"dev/{node}", caps)

    def usb_device(
        self,
        device_dir: str,
        vid: str,
        pid: str,
        product: str,
        manufacturer: str,
        busnum: int,
        devnum: int,
    ) -> None:
        self.write(f"{device_dir}/idVendor", vid + "\n")
        self.write(f"{device_dir}/idProduct", pid + "\n")
        self.write(f"{device_dir}/product", product + "\n")
        self.write(f"{device_dir}/manufacturer", manufacturer + "\n")
        self.write(f"{device_dir}/busnum", f"{busnum}\n")
        self.write(f"{device_dir}/devnum", f"{devnum}\n")
        self.link(f"sys/bus/usb/devices/{Path(device_dir).name}", device_dir)

    def i2c_sensor(self, address: str, sensor: str, driver: str | None = None) -> None:
        device_dir = f"sys/devices/platform/i2c-{address.split('-')[0]}/{address}"
        self.write(f"{device_dir}/name", sensor + "\n")
        if driver:
            self.link(f"{device_dir}/driver", self.driver("i2c", driver))
        self.link(f"sys/bus/i2c/devices/{address}", device_dir)


def _caps(
    driver: str, card: str, bus: str, device_caps: int, extra: int = 0, version: int = 0x060601
) -> bytes:
    return pack_querycap(
        driver, card, bus, device_caps | extra | CAP_DEVICE_CAPS, device_caps, version
    )


def coral_dev_board(root: str | os.PathLike) -> FakeBoard:
    """Coral Dev Board: i.MX 8M + PCIe Edge TPU, Mendel Linux 5.3, Coral Camera (OV5645)."""
    tree = _Tree(Path(root))
    tree.device_tree("Freescale i.MX8MQ Phanbell", ["fsl,imx8mq-phanbell", "fsl,imx8mq"])
    tree.system("aarch64", 4, 1001104, "Mendel GNU/Linux 5 (Eagle)", "mendel")
    tree.write("etc/mendel_version", "5.3\n")
    tree.write("dev/apex_0", b"")
    tree.mkdir("sys/class/apex/apex_0")
    csi = "sys/devices/platform/30a90000.csi1_bridge"
    tree.v4l2_node(
        "video0",
        "i.MX6S_CSI",
        csi,
        "platform",
        "mx6s-csi",
        _caps(
            "mx6s-csi",
            "i.MX6S_CSI",
            "platform:30a90000.csi1_bridge",
            CAP_VIDEO_CAPTURE | CAP_STREAMING | CAP_READWRITE,
            version=0x040E62,
        ),
    )
    tree.i2c_sensor("1-003c", "ov5645", "ov5645_mipi")
    return FakeBoard("coral-dev-board", tree.root, "Coral Dev Board, Mendel 5.3, Coral Camera")


def jetson_orin_nano(root: str | os.PathLike) -> FakeBoard:
    """Jetson Orin Nano developer kit, JetPack 6.0 (L4T R36.3.0), an IMX219 on CAM0."""
    tree = _Tree(Path(root))
    tree.device_tree(
        "NVIDIA Jetson Orin Nano Developer Kit",
        ["nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"],
    )
    tree.system("aarch64", 6, 7802284, "Ubuntu 22.04.4 LTS", "ubuntu")
    tree.write(
        "etc/nv_tegra_release",
        "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
        "DATE: Mon May  6 17:34:21 UTC 2024\n# KERNEL_VARIANT: oot\n"
        "TARGET_USERSPACE_LIB_DIR=nvidia\n"
        "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n",
    )
    vi = "sys/devices/platform/bus@0/tegra-capture-vi"
    card = "vi-output, imx219 9-0010"
    tree.v4l2_node(
        "video0",
        card,
        vi,
        "platform",
        "tegra-camrtc-capture-vi",
        _caps(
            "tegra-video",
            card,
            "platform:tegra-capture-vi:2",
            CAP_VIDEO_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT,
            version=0x050F88,
        ),
    )
    tree.i2c_sensor("9-0010", "imx219", "imx219")
    return FakeBoard("jetson-orin-nano", tree.root, "Jetson Orin Nano devkit, JetPack 6.0, IMX219")


def raspberry_pi_5(root: str | os.PathLike) -> FakeBoard:
    """Raspberry Pi 5 (Bookworm) with a Camera Module 3 (IMX708) on CAM1.

    Its V4L2 nodes are the RP1 CSI receiver's, the PiSP back end's and the HEVC decoder's:
    none is a camera to open through V4L2; the sensor is ``csi://0`` through libcamera.
    """
    tree = _Tree(Path(root))
    tree.device_tree("Raspberry Pi 5 Model B Rev 1.0", ["raspberrypi,5-model-b", "brcm,bcm2712"])
    tree.system("aarch64", 4, 8245568, "Debian GNU/Linux 12 (bookworm)", "debian")
    cfe = "sys/devices/platform/axi/1000120000.pcie/1f00128000.csi"
    cfe_nodes = [
        ("video0", "rp1-cfe-csi2_ch0", CAP_VIDEO_CAPTURE | CAP_META_CAPTURE),
        ("video1", "rp1-cfe-csi2_ch1", CAP_VIDEO_CAPTURE | CAP_META_CAPTURE),
        ("video2", "rp1-cfe-csi2_ch2", CAP_VIDEO_CAPTURE | CAP_META_CAPTURE),
        ("video3", "rp1-cfe-csi2_ch3", CAP_VIDEO_CAPTURE | CAP_META_CAPTURE),
        ("video4", "rp1-cfe-fe_image0", CAP_VIDEO_CAPTURE),
        ("video5", "rp1-cfe-fe_image1", CAP_VIDEO_CAPTURE),
        ("video6", "rp1-cfe-fe_stats", CAP_META_CAPTURE),
        ("video7", "rp1-cfe-fe_config", CAP_META_OUTPUT),
    ]
    for node, name, caps in cfe_nodes:
        tree.v4l2_node(
            node,
            name,
            cfe,
            "platform",
            "rp1-cfe",
            _caps(
                "rp1-cfe", "rp1-cfe", "platform:1f00128000.csi", caps | CAP_STREAMING | CAP_IO_MC
            ),
        )
    hevc = "sys/devices/platform/axi/1000800000.codec"
    tree.v4l2_node(
        "video19",
        "rpi-hevc-dec",
        hevc,
        "platform",
        "rpi-hevc-dec",
        _caps(
            "rpi-hevc-dec",
            "rpi-hevc-dec",
            "platform:rpi-hevc-dec",
            CAP_VIDEO_M2M_MPLANE | CAP_STREAMING | CAP_EXT_PIX_FORMAT,
        ),
    )
    be = "sys/devices/platform/axi/1000880000.pisp_be"
    for node, name, caps in [
        ("video20", "pispbe-input", CAP_VIDEO_OUTPUT_MPLANE),
        ("video21", "pispbe-tdn_input", CAP_VIDEO_OUTPUT_MPLANE),
        ("video22", "pispbe-stitch_input", CAP_VIDEO_OUTPUT_MPLANE),
        ("video23", "pispbe-output0", CAP_VIDEO_CAPTURE_MPLANE),
        ("video24", "pispbe-output1", CAP_VIDEO_CAPTURE_MPLANE),
        ("video25", "pispbe-tdn_output", CAP_VIDEO_CAPTURE_MPLANE),
        ("video26", "pispbe-stitch_output", CAP_VIDEO_CAPTURE_MPLANE),
        ("video27", "pispbe-config", CAP_META_OUTPUT),
    ]:
        tree.v4l2_node(
            node,
            name,
            be,
            "platform",
            "pispbe",
            _caps(
                "pispbe",
                "PiSP Back End",
                "platform:1000880000.pisp_be",
                caps | CAP_STREAMING | CAP_IO_MC,
            ),
        )
    tree.i2c_sensor("6-001a", "imx708", "imx708")
    return FakeBoard("raspberry-pi-5", tree.root, "Raspberry Pi 5, Bookworm, Camera Module 3")


def generic_x86_uvc(root: str | os.PathLike) -> FakeBoard:
    """An x86 mini PC (DMI) with a Logitech C920 (two V4L2 nodes: picture and UVC metadata)
    and a USB Coral Accelerator still in its bootloader (1a6e:089a)."""
    tree = _Tree(Path(root))
    tree.system("x86_64", 8, 16203124, "Debian GNU/Linux 12 (bookworm)", "debian")
    dmi = "sys/devices/virtual/dmi/id"
    tree.write(f"{dmi}/sys_vendor", "Intel(R) Client Systems\n")
    tree.write(f"{dmi}/product_name", "NUC11TNHi5\n")
    tree.write(f"{dmi}/board_name", "NUC11TNBi5\n")
    tree.link("sys/class/dmi/id", dmi)
    cam = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-2"
    tree.usb_device(cam, "046d", "082d", "HD Pro Webcam C920", "Logitech", 1, 3)
    iface = f"{cam}/1-2:1.0"
    card = "HD Pro Webcam C920"
    whole = CAP_VIDEO_CAPTURE | CAP_META_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT
    tree.v4l2_node(
        "video0",
        card,
        iface,
        "usb",
        "uvcvideo",
        pack_querycap(
            "uvcvideo",
            card,
            "usb-0000:00:14.0-2",
            whole | CAP_DEVICE_CAPS,
            CAP_VIDEO_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT,
            0x060601,
        ),
    )
    tree.v4l2_node(
        "video1",
        card,
        iface,
        "usb",
        "uvcvideo",
        pack_querycap(
            "uvcvideo",
            card,
            "usb-0000:00:14.0-2",
            whole | CAP_DEVICE_CAPS,
            CAP_META_CAPTURE | CAP_STREAMING | CAP_EXT_PIX_FORMAT,
            0x060601,
        ),
        index=1,
    )
    by_id = "dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8E1F2A3F-video-index"
    tree.link(f"{by_id}0", "dev/video0")
    tree.link(f"{by_id}1", "dev/video1")
    tpu = "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1"
    tree.usb_device(tpu, "1a6e", "089a", "", "", 2, 2)
    return FakeBoard("generic-x86", tree.root, "x86 PC, Logitech C920, USB Coral (no firmware)")


BOARDS: dict[str, Callable[[str | os.PathLike], FakeBoard]] = {
    "coral-dev-board": coral_dev_board,
    "jetson-orin-nano": jetson_orin_nano,
    "raspberry-pi-5": raspberry_pi_5,
    "generic-x86": generic_x86_uvc,
}


def build(name: str, root: str | os.PathLike) -> FakeBoard:
    """Build the fixture tree of board ``name`` (one of ``BOARDS``) below ``root``."""
    try:
        builder = BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known: {', '.join(BOARDS)}") from None
    return builder(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zeke.testing.fake_boards",
        description="Write a board's fixture tree; then try `zeke doctor --root DIR`.",
    )
    parser.add_argument("board", choices=sorted(BOARDS))
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    board = build(args.board, args.directory)
    print(f"{board.description}: {board.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
