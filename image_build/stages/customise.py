"""Stage 2: make the bootstrapped tree this board's system (overlay, identity, boot)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from image_build.context import PACKAGE_DIR, BuildContext
from image_build.errors import StageError
from image_build.host import chroot_mounts, in_chroot

OVERLAY = PACKAGE_DIR / "overlay"


def copy_tree(src: Path, dst: Path) -> list[str]:
    """Copy a directory's files into ``dst`` keeping modes; returns the relative paths."""
    copied = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copy2(path, target, follow_symlinks=False)
        copied.append(os.fspath(rel))
    return copied


def write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()
    target.write_text(text)
    target.chmod(mode)


def fstab(ctx: BuildContext) -> str:
    lines = ["# <file system> <mount point> <type> <options> <dump> <pass>"]
    for part in ctx.plan.partitions:
        if part.is_root:
            lines.append(f"PARTUUID={part.partuuid} / {part.filesystem} defaults,noatime 0 1")
        elif part.filesystem == "vfat":
            lines.append(
                f"PARTUUID={part.partuuid} {part.mountpoint} vfat "
                "defaults,nofail,noatime,umask=0077 0 2"
            )
        else:
            lines.append(
                f"PARTUUID={part.partuuid} {part.mountpoint} {part.filesystem} "
                "defaults,nofail,noatime 0 2"
            )
    return "\n".join(lines) + "\n"


def apt_sources(ctx: BuildContext) -> None:
    """The image's own apt sources (the same lines the build used, keyrings in the image)."""
    root = ctx.rootfs
    lines = [source["line"] for source in ctx.plan.apt_sources]
    write(root, "/etc/apt/sources.list", "\n".join(lines) + "\n")
    for source in ctx.plan.vendor:
        if source["name"] in ctx.plan.left_out["sources"]:
            continue
        key = PACKAGE_DIR / "keyrings" / source["keyring"]
        shutil.copy2(key, root / "usr/share/keyrings" / source["keyring"])


def identity(ctx: BuildContext) -> None:
    root = ctx.rootfs
    hostname = ctx.profile.hostname
    write(root, "/etc/hostname", f"{hostname}\n")
    write(
        root,
        "/etc/hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n",
    )
    write(root, "/etc/fstab", fstab(ctx))
    localtime = root / "etc/localtime"
    if not localtime.exists():
        localtime.unlink(missing_ok=True)
        localtime.symlink_to("/usr/share/zoneinfo/Etc/UTC")
    for part in ctx.plan.partitions:
        (root / part.mountpoint.lstrip("/")).mkdir(parents=True, exist_ok=True)


def initramfs(ctx: BuildContext) -> None:
    """Undo the bootstrap's diversion and build the initramfs exactly once."""
    root = ctx.rootfs
    if not (root / "usr/sbin/update-initramfs.distrib").exists():
        return  # no initramfs-tools in this image (e.g. vendor boot without initrd)
    log = ctx.log("customise")
    (root / "usr/sbin/update-initramfs").unlink()
    in_chroot(
        root,
        ["dpkg-divert", "--quiet", "--local", "--rename", "--remove", "/usr/sbin/update-initramfs"],
        log,
        ctx.source_date_epoch,
    )
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if not kernels and ctx.plan.left_out["packages"] and not ctx.profile.kernel.packages:
        # The board's kernel comes from its vendor repository, left out of this build.
        ctx.record.setdefault("left_out", {})["initramfs"] = "no kernel: vendor kernel left out"
        return
    if not kernels:
        raise StageError(
            "no kernel in /boot after bootstrap",
            hint=f"check kernel.packages of profile {ctx.profile.name}",
        )
    for version in kernels:
        ctx.progress.step(f"initramfs for {version}")
        in_chroot(
            root,
            ["update-initramfs", "-c", "-k", version],
            log,
            ctx.source_date_epoch,
            what="update-initramfs",
        )


def customise(ctx: BuildContext) -> None:
    root = ctx.rootfs
    log = ctx.log("customise")
    ctx.progress.step("overlay")
    ctx.record["overlay"] = copy_tree(OVERLAY, root)
    ctx.progress.step("identity, fstab, apt sources")
    identity(ctx)
    apt_sources(ctx)
    with chroot_mounts(root):
        ctx.progress.step("users and services")
        # root keeps a locked password ('*'): there is no default password to leak.
        in_chroot(root, ["passwd", "--lock", "root"], log, ctx.source_date_epoch)
        services = ["systemd-networkd.service", "zeke-boot-report.service"]
        if (root / "lib/systemd/system/systemd-resolved.service").exists():
            services.append("systemd-resolved.service")
        in_chroot(root, ["systemctl", "enable", *services], log, ctx.source_date_epoch)
        if (root / "lib/systemd/system/ssh.service").exists():
            # SSH stays off until first boot finds a key on the boot partition.
            in_chroot(root, ["systemctl", "disable", "ssh.service"], log, ctx.source_date_epoch)
        # zeke-firstboot does the first boot; systemd's interactive wizard would wait for a
        # keypress on the console of a device that has no keyboard.
        in_chroot(
            root, ["systemctl", "mask", "systemd-firstboot.service"], log, ctx.source_date_epoch
        )
        for path, text in sorted(ctx.plan.boot["files"].items()):
            write(root, path, text)
        if ctx.plan.boot["method"] == "coral-uboot" and (root / "usr/bin/mkimage").exists():
            in_chroot(
                root,
                [
                    "mkimage",
                    "-A",
                    "arm64",
                    "-T",
                    "script",
                    "-C",
                    "none",
                    "-d",
                    "/boot/boot.txt",
                    "/boot/boot.scr",
                ],
                log,
                ctx.source_date_epoch,
                what="mkimage boot.scr",
            )
        initramfs(ctx)
