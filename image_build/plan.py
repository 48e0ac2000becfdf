"""Resolve a profile into the concrete plan of a build: sources, package set, steps, layout.

The plan is pure data (no host access), so it can be rendered, diffed against checked-in
expectations for boards whose vendor repositories this machine cannot reach, and handed to
the stages. Every identifier that must be fixed for bit-identical images (partition and
filesystem UUIDs, the ext4 hash seed) is derived here from the profile name.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from image_build.profile import Partition, Profile

# A fixed namespace: the same profile name always yields the same UUIDs.
_UUID_NAMESPACE = uuid.UUID("6b0c52e4-6f1e-5c65-9a3e-2f0d5a7e8b11")

SNAPSHOT_HOSTS = {
    "http://deb.debian.org/debian": "http://snapshot.debian.org/archive/debian/{ts}",
    "http://deb.debian.org/debian-security": "http://snapshot.debian.org/archive/debian-security/{ts}",
}

# GPT partition type GUIDs and MBR type codes by role.
_GPT_TYPES = {
    "linux": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    "esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    "basic-data": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
}
_MBR_TYPES = {"linux": "83", "esp": "ef", "basic-data": "c"}

STAGES = (
    "preflight",
    "bootstrap",
    "customise",
    "payload",
    "normalise",
    "filesystem",
    "disk image",
    "compress",
    "manifest",
)


def stable_uuid(profile: str, what: str) -> str:
    """A UUID fixed by profile name and purpose (reproducible, unique per profile)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{profile}/{what}"))


@dataclass(frozen=True)
class PartitionPlan:
    number: int
    name: str
    filesystem: str
    mountpoint: str
    size_mib: int | None
    type_code: str
    partuuid: str
    fs_uuid: str
    label: str | None

    @property
    def is_root(self) -> bool:
        return self.mountpoint == "/"


@dataclass(frozen=True)
class Step:
    """One step of a stage, as the plan shows it."""

    stage: str
    name: str
    what: str


@dataclass
class Plan:
    """Everything a build of one profile will do, before it does it."""

    profile: str
    description: str
    board: str
    architecture: str
    distribution: dict[str, Any]
    apt_sources: list[dict[str, Any]]
    packages: list[str]
    vendor: list[dict[str, Any]]
    offline: bool
    left_out: dict[str, Any]
    layout: dict[str, Any]
    partitions: list[PartitionPlan]
    boot: dict[str, Any]
    payload: dict[str, Any]
    steps: list[Step]
    notes: list[str] = field(default_factory=list)

    @property
    def root(self) -> PartitionPlan:
        return next(p for p in self.partitions if p.is_root)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [asdict(s) for s in self.steps]
        data["partitions"] = [asdict(p) for p in self.partitions]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def effective_mirror(uri: str, snapshot: str | None) -> str:
    """The archive URL to use: the snapshot archive when the profile pins a date."""
    if snapshot and uri in SNAPSHOT_HOSTS:
        return SNAPSHOT_HOSTS[uri].format(ts=snapshot)
    return uri


def disk_id(profile: Profile) -> str:
    """The partition table's identifier: a GUID for GPT, 8 hex digits for MBR."""
    ident = stable_uuid(profile.name, "disk")
    return ident if profile.layout.table == "gpt" else ident[:8]


def _partition_plans(profile: Profile) -> list[PartitionPlan]:
    plans = []
    for number, part in enumerate(profile.layout.partitions, start=1):
        plans.append(_partition_plan(profile, number, part))
    return plans


def _partition_plan(profile_obj: Profile, number: int, part: Partition) -> PartitionPlan:
    profile = profile_obj.name
    table = profile_obj.layout.table
    type_code = _GPT_TYPES[part.type] if table == "gpt" else _MBR_TYPES[part.type]
    if table == "gpt":
        partuuid = stable_uuid(profile, f"{part.name}/partuuid")
    else:
        # MBR disks have no per-partition UUID: the kernel derives "<disk id>-<nn>".
        partuuid = f"{disk_id(profile_obj)}-{number:02d}"
    if part.filesystem == "vfat":
        # FAT volume ids are 32 bits: derive them from the same stable UUID.
        fs_uuid = stable_uuid(profile, f"{part.name}/fs")[:8].upper()
        fs_uuid = f"{fs_uuid[:4]}-{fs_uuid[4:]}"
    else:
        fs_uuid = stable_uuid(profile, f"{part.name}/fs")
    return PartitionPlan(
        number=number,
        name=part.name,
        filesystem=part.filesystem,
        mountpoint=part.mountpoint,
        size_mib=part.size_mib,
        type_code=type_code,
        partuuid=partuuid,
        fs_uuid=fs_uuid,
        label=part.label,
    )


def _source_line(uri: str, suites: list[str], components: list[str], keyring: str | None) -> str:
    options = f"[signed-by=/usr/share/keyrings/{keyring}] " if keyring else ""
    return f"deb {options}{uri} {' '.join(suites)} {' '.join(components)}"


def _steps(profile: Profile, offline: bool) -> list[Step]:
    dist = profile.distribution
    foreign = dist.architecture != "amd64"
    steps = [
        Step("preflight", "host", "check root, host tools, binfmt for foreign architectures"),
        Step(
            "preflight", "sources", "check every apt source answers (vendor ones skipped offline)"
        ),
        Step("preflight", "mke2fs", "find mke2fs >= 1.47.1 (host or bookworm-backports copy)"),
        Step(
            "bootstrap",
            "mmdebstrap",
            f"mmdebstrap --mode=root --variant={dist.variant} --arch={dist.architecture} "
            f"{dist.suite} in a clean environment with SOURCE_DATE_EPOCH"
            + (" (qemu-user emulation)" if foreign else ""),
        ),
        Step("bootstrap", "initramfs-once", "divert update-initramfs while packages install"),
        Step("customise", "overlay", "copy image_build/overlay into the rootfs"),
        Step(
            "customise", "identity", f"hostname {profile.hostname!r}, /etc/hosts, fstab by PARTUUID"
        ),
        Step(
            "customise",
            "users",
            "root locked (no password); SSH disabled, keys from boot partition",
        ),
        Step("customise", "network", "systemd-networkd DHCP on wired links, resolved"),
        Step("customise", "boot-config", f"boot files for {profile.kernel.boot}"),
        Step("customise", "initramfs", "undivert and generate the initramfs once"),
        Step(
            "payload", "wheel", "build the zeke wheel from the checkout (models as factory_models)"
        ),
        Step(
            "payload",
            "venv",
            f"python3 -m venv {profile.zeke.venv}"
            + (" --system-site-packages" if profile.zeke.system_site_packages else ""),
        ),
        Step(
            "payload", "locked-deps", "pip install --require-hashes --no-deps -r requirements.lock"
        ),
        Step("payload", "zeke", "pip install the zeke wheel (no deps, no index); pip check"),
        Step("payload", "units", f"install systemd/ units, enable {', '.join(profile.zeke.units)}"),
        Step("payload", "udev", "install systemd/*.rules into /etc/udev/rules.d"),
        Step(
            "payload", "trusted-keys", "copy trusted model-bundle keys to /etc/zeke/trusted-keys/"
        ),
        Step("payload", "firstboot", "write first-boot defaults (zeke setup arguments)"),
        Step("normalise", "secrets", "remove SSH host keys, machine-id, random seed"),
        Step("normalise", "state", "remove logs, apt lists and caches, backup files"),
        Step("normalise", "rootfs-tar", "sorted pax tar, mtimes clamped to SOURCE_DATE_EPOCH"),
        Step("filesystem", "root", "mke2fs -d rootfs.tar, fixed UUID and hash seed, fake time"),
        Step(
            "filesystem", "boot", "mkfs.vfat --invariant with a fixed volume id; mcopy boot files"
        ),
        Step("disk image", "partition", f"sfdisk {profile.layout.table} on the image file"),
        Step(
            "disk image", "place", "dd conv=notrunc each filesystem at its offset (no loop devices)"
        ),
    ]
    for blob in profile.layout.blobs:
        steps.append(
            Step("disk image", "bootloader", f"write {blob.source} at {blob.offset_kib} KiB")
        )
    if profile.kernel.boot == "qemu-direct":
        steps.append(Step("disk image", "kernel", "export kernel and initrd for direct boot"))
    steps += [
        Step("compress", "zstd", f"{profile.name}.img.zst and its sha256"),
        Step("manifest", "manifest", "inputs, package versions, what was left out"),
        Step("manifest", "sbom", "CycloneDX 1.5 JSON of every Debian and Python package"),
    ]
    if offline and profile.vendor_sources:
        steps.insert(
            4,
            Step("bootstrap", "offline", "vendor sources and their packages left out (recorded)"),
        )
    return steps


def boot_files(method: str, cmdline: str, root: PartitionPlan) -> dict[str, str]:
    """Files in the rootfs that tell the board's boot chain how to start this system."""
    if method == "raspberrypi-firmware":
        # Debian's raspi-firmware hook writes cmdline.txt/config.txt from these when the
        # initramfs is built, and copies kernel, initrd and device trees to /boot/firmware.
        extra = " ".join(w for w in cmdline.split() if not w.startswith(("root=", "console=")))
        consoles = " ".join(w.split("=", 1)[1] for w in cmdline.split() if w.startswith("console="))
        return {
            "/etc/default/raspi-firmware": (
                f'ROOTPART=PARTUUID={root.partuuid}\nCONSOLES="{consoles}"\nKERNEL_ARCH=arm64\n'
            ),
            "/etc/default/raspi-extra-cmdline": f"{extra}\n",
        }
    if method == "coral-uboot":
        # U-Boot on the Dev Board runs boot.scr from the first (ext2) partition.
        return {
            "/boot/boot.txt": (
                f'setenv bootargs "{cmdline}"\n'
                "ext2load mmc 0:1 ${kernel_addr_r} vmlinuz\n"
                "ext2load mmc 0:1 ${fdt_addr_r} imx8mq-phanbell.dtb\n"
                "ext2load mmc 0:1 ${ramdisk_addr_r} initrd.img\n"
                "booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}\n"
            ),
        }
    if method == "jetson-l4t":
        # L4T's UEFI loader reads extlinux.conf from the APP partition.
        return {
            "/boot/extlinux/extlinux.conf": (
                "TIMEOUT 30\nDEFAULT zeke\n\nMENU TITLE L4T boot options\n\n"
                "LABEL zeke\n      MENU LABEL zeke (L4T r36)\n      LINUX /boot/Image\n"
                "      INITRD /boot/initrd\n"
                f"      APPEND ${{cbootargs}} {cmdline}\n"
            ),
        }
    return {}


def _boot(profile: Profile, partitions: list[PartitionPlan]) -> dict[str, Any]:
    root = next(p for p in partitions if p.is_root)
    cmdline = [f"root=PARTUUID={root.partuuid}", *profile.kernel.cmdline]
    boot: dict[str, Any] = {
        "method": profile.kernel.boot,
        "cmdline": " ".join(cmdline),
        "console": profile.kernel.console,
        "files": boot_files(profile.kernel.boot, " ".join(cmdline), root),
    }
    if profile.qemu is not None:
        boot["qemu"] = profile.qemu.model_dump()
    return boot


def _notes(profile: Profile) -> list[str]:
    dist = profile.distribution
    notes = []
    if dist.snapshot:
        notes.append(f"archive pinned to snapshot {dist.snapshot}")
    elif dist.name == "debian":
        notes.append(
            "archive not pinned: the manifest records every package version; set "
            "distribution.snapshot on a machine that reaches snapshot.debian.org for "
            "bit-identical rebuilds later"
        )
    else:
        notes.append(
            f"{dist.name} has no snapshot pinning here: the manifest records every version"
        )
    if dist.architecture != "amd64":
        notes.append("foreign architecture: needs qemu-user-static and binfmt_misc on the host")
    return notes


def resolve(profile: Profile, offline: bool = False) -> Plan:
    """Turn a validated profile into its plan (offline: without vendor sources)."""
    dist = profile.distribution
    mirror = effective_mirror(dist.mirror, dist.snapshot)
    apt_sources = [
        {
            "name": dist.name,
            "line": _source_line(mirror, [dist.suite], dist.components, None),
            "vendor": False,
        }
    ]
    vendor = []
    left_sources: list[str] = []
    left_packages: list[str] = []
    packages = set(profile.packages) | set(profile.kernel.packages)
    for source in profile.sources:
        uri = effective_mirror(source.uri, dist.snapshot)
        line = _source_line(uri, source.suites, source.components, source.keyring)
        if source.vendor:
            vendor.append(
                {
                    "name": source.name,
                    "uri": source.uri,
                    "suites": source.suites,
                    "components": source.components,
                    "keyring": source.keyring,
                    "keyring_url": source.keyring_url,
                    "packages": sorted(source.packages),
                }
            )
            if offline:
                left_sources.append(source.name)
                left_packages += source.packages
                continue
            packages |= set(source.packages)
        apt_sources.append({"name": source.name, "line": line, "vendor": source.vendor})
    partitions = _partition_plans(profile)
    return Plan(
        profile=profile.name,
        description=profile.description,
        board=profile.board,
        architecture=dist.architecture,
        distribution={
            "name": dist.name,
            "suite": dist.suite,
            "variant": dist.variant,
            "mirror": mirror,
            "components": dist.components,
            "snapshot": dist.snapshot,
            "python": dist.python,
            "keyring": dist.keyring,
        },
        apt_sources=apt_sources,
        packages=sorted(packages),
        vendor=vendor,
        offline=offline,
        left_out={"sources": sorted(left_sources), "packages": sorted(left_packages)},
        layout={
            "table": profile.layout.table,
            "first_offset_mib": profile.layout.first_offset_mib,
            "disk_id": disk_id(profile),
            "blobs": [b.model_dump() for b in profile.layout.blobs],
            "ext4_hash_seed": stable_uuid(profile.name, "root/hash-seed"),
            "output": f"{profile.name}.{profile.layout.output}",
        },
        partitions=partitions,
        boot=_boot(profile, partitions),
        payload={
            "venv": profile.zeke.venv,
            "system_site_packages": profile.zeke.system_site_packages,
            "python": dist.python,
            "lock": "requirements.lock",
            "units": profile.zeke.units,
            "setup_args": profile.zeke.setup_args,
            "trusted_keys": profile.zeke.trusted_keys,
        },
        steps=_steps(profile, offline),
        notes=_notes(profile),
    )
