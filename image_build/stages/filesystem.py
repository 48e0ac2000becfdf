"""Stage 5: filesystems as files: ext4 from the rootfs archive, FAT from the boot files.

Both are bit-reproducible: mke2fs reads the tarball (no host inode times), with a fixed
UUID, hash seed, root owner and fake time; mkfs.vfat runs with ``--invariant`` and a fixed
volume id, and mcopy copies files whose times were clamped first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from image_build.context import PACKAGE_DIR, BuildContext
from image_build.host import clean_env, run
from image_build.mke2fs import find_mke2fs
from image_build.plan import PartitionPlan

MIB = 1 << 20
# Root partition: content plus a margin for ext4's own metadata and first-boot writes
# (first boot grows it to the whole card anyway).
ROOT_OVERHEAD = 1.25
ROOT_HEADROOM_MIB = 256
ROOT_ALIGN_MIB = 64


def root_size_mib(tar_size: int) -> int:
    """The root filesystem's size for a rootfs archive of ``tar_size`` bytes."""
    wanted = tar_size * ROOT_OVERHEAD / MIB + ROOT_HEADROOM_MIB
    return int(math.ceil(wanted / ROOT_ALIGN_MIB) * ROOT_ALIGN_MIB)


def make_ext4(ctx: BuildContext, part: PartitionPlan, tar: Path, size_mib: int) -> Path:
    mke2fs = find_mke2fs(log=ctx.log("filesystem"))
    ctx.record["mke2fs"] = {"version": mke2fs.version, "origin": mke2fs.origin}
    image = ctx.work_dir / f"{part.name}.{part.filesystem}"
    image.unlink(missing_ok=True)
    options = [
        f"hash_seed={ctx.plan.layout['ext4_hash_seed']}",
        "root_owner=0:0",
        "lazy_itable_init=0",
        "lazy_journal_init=0",
        "nodiscard",
    ]
    cmd = [
        os.fspath(mke2fs.path),
        "-q",
        "-F",
        "-t",
        part.filesystem,
        "-U",
        part.fs_uuid,
        "-E",
        ",".join(options),
        "-d",
        os.fspath(tar),
    ]
    if part.label:
        cmd += ["-L", part.label]
    cmd += [os.fspath(image), f"{size_mib}M"]
    env = mke2fs.env(
        clean_env(
            ctx.source_date_epoch,
            E2FSPROGS_FAKE_TIME=str(ctx.source_date_epoch),
            MKE2FS_CONFIG=os.fspath(PACKAGE_DIR / "mke2fs.conf"),
        )
    )
    run(cmd, ctx.log("filesystem"), env=env, what=f"mke2fs ({part.name})")
    return image


def make_vfat(ctx: BuildContext, part: PartitionPlan) -> Path:
    image = ctx.work_dir / f"{part.name}.vfat"
    image.unlink(missing_ok=True)
    size_kib = (part.size_mib or 0) * 1024
    volume_id = part.fs_uuid.replace("-", "")
    env = clean_env(ctx.source_date_epoch, MTOOLS_SKIP_CHECK="1")
    cmd = ["mkfs.vfat", "--invariant", "-i", volume_id, "-C", os.fspath(image), str(size_kib)]
    if part.label:
        cmd[1:1] = ["-n", part.label]
    log = ctx.log("filesystem")
    run(cmd, log, env=env, what=f"mkfs.vfat ({part.name})")
    files = ctx.partition_dir(part.name)
    for path in [files, *files.rglob("*")]:
        os.utime(path, (ctx.source_date_epoch, ctx.source_date_epoch), follow_symlinks=False)
    # Directories first (sorted) so the FAT's directory entries come out in one order.
    for path in sorted(p for p in files.rglob("*") if p.is_dir()):
        rel = path.relative_to(files).as_posix()
        run(["mmd", "-i", image, f"::/{rel}"], log, env=env, what="mmd")
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        rel = path.relative_to(files).as_posix()
        run(["mcopy", "-m", "-o", "-i", image, path, f"::/{rel}"], log, env=env, what="mcopy")
    return image


def filesystems(ctx: BuildContext) -> dict[str, Path]:
    tar = ctx.work_dir / "rootfs.tar"
    images = {}
    for part in ctx.plan.partitions:
        ctx.progress.step(f"{part.filesystem} for {part.name}")
        if part.is_root:
            size = part.size_mib or root_size_mib(tar.stat().st_size)
            images[part.name] = make_ext4(ctx, part, tar, size)
        elif part.filesystem == "vfat":
            images[part.name] = make_vfat(ctx, part)
        else:
            images[part.name] = make_ext4(ctx, part, _dir_tar(ctx, part), part.size_mib or 0)
    return images


def _dir_tar(ctx: BuildContext, part: PartitionPlan) -> Path:
    """A non-root ext partition (e.g. Coral's ext2 /boot) from its gathered files."""
    tar = ctx.work_dir / f"{part.name}.tar"
    run(
        [
            "tar",
            "--create",
            f"--file={tar}",
            f"--directory={ctx.partition_dir(part.name)}",
            "--sort=name",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--format=pax",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            f"--mtime=@{ctx.source_date_epoch}",
            "--clamp-mtime",
            ".",
        ],
        ctx.log("filesystem"),
        env=clean_env(ctx.source_date_epoch),
        what=f"tar ({part.name})",
    )
    return tar
