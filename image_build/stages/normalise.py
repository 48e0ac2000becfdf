"""Stage 4: strip what must differ per device or per build, then write the rootfs archive.

After this stage the tree holds no secret and no trace of when or where it was built: no SSH
host keys, no machine id, no random seed, no logs, caches or backup files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from image_build.context import BuildContext, sha256_file
from image_build.errors import StageError
from image_build.host import clean_env, run

# Globs relative to the rootfs whose matches are removed.
REMOVE = (
    "etc/ssh/ssh_host_*",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/credential.secret",
    "var/cache/ldconfig/aux-cache",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*_*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "etc/*-",
    "etc/.pwd.lock",
    "root/.cache",
    "root/.bash_history",
    "root/.wget-hsts",
    "tmp/*",
    "var/tmp/*",
    "var/lib/dbus/machine-id",
    "etc/resolv.conf.host",
)


def _remove(root: Path) -> list[str]:
    removed = []
    for pattern in REMOVE:
        for path in sorted(root.glob(pattern)):
            if path.is_symlink() and pattern.endswith("machine-id"):
                continue  # dbus' machine-id is a link to /etc/machine-id: keep it
            removed.append(os.fspath(path.relative_to(root)))
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return removed


def _empty_logs(root: Path) -> None:
    """Keep /var/log's directories (services expect them) but no file in them."""
    log_dir = root / "var/log"
    for path in sorted(log_dir.rglob("*"), reverse=True):
        if path.is_file() or path.is_symlink():
            path.unlink()


def check_no_passwords(root: Path) -> None:
    """No account may carry a usable password hash: the image has no default password."""
    for line in (root / "etc/shadow").read_text().splitlines():
        user, pw_hash = line.split(":")[:2]
        if pw_hash and not pw_hash.startswith(("*", "!")):
            raise StageError(
                f"account {user!r} has a password in /etc/shadow",
                hint="images must not ship a password; lock it (passwd --lock)",
            )


def gather_partitions(ctx: BuildContext) -> None:
    """Move every non-root partition's files out of the tree (the mountpoint stays, empty)."""
    for part in ctx.plan.partitions:
        if part.is_root:
            continue
        source = ctx.rootfs / part.mountpoint.lstrip("/")
        target = ctx.partition_dir(part.name)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for item in sorted(source.iterdir()):
            shutil.move(os.fspath(item), os.fspath(target / item.name))


def write_rootfs_tar(ctx: BuildContext) -> Path:
    """A sorted, numeric-owner pax archive with every mtime clamped: the same tree, same bytes."""
    tar = ctx.work_dir / "rootfs.tar"
    tar.unlink(missing_ok=True)
    run(
        [
            "tar",
            "--create",
            f"--file={tar}",
            f"--directory={ctx.rootfs}",
            "--sort=name",
            "--numeric-owner",
            "--format=pax",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            f"--mtime=@{ctx.source_date_epoch}",
            "--clamp-mtime",
            "--xattrs",
            "--xattrs-include=*",
            "--one-file-system",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "--exclude=./dev/*",
            "--exclude=./run/*",
            ".",
        ],
        ctx.log("normalise"),
        env=clean_env(ctx.source_date_epoch),
        what="tar (rootfs archive)",
    )
    return tar


def normalise(ctx: BuildContext) -> None:
    root = ctx.rootfs
    ctx.progress.step("remove secrets, logs, caches")
    ctx.record["removed"] = _remove(root)
    _empty_logs(root)
    # systemd sees "uninitialized" as a first boot and makes this device's own id.
    (root / "etc/machine-id").write_text("uninitialized\n")
    resolv = root / "etc/resolv.conf"
    if resolv.exists() and not resolv.is_symlink():
        resolv.unlink()
    if not resolv.is_symlink() and (root / "lib/systemd/system/systemd-resolved.service").exists():
        resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    check_no_passwords(root)
    gather_partitions(ctx)
    ctx.progress.step("rootfs archive")
    tar = write_rootfs_tar(ctx)
    ctx.record.setdefault("outputs", {})["rootfs.tar"] = {
        "size": tar.stat().st_size,
        "sha256": sha256_file(tar),
    }
