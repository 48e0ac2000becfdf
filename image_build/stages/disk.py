"""Stage 6: the disk image: a partition table written by sfdisk into a plain file, each
filesystem placed with ``dd conv=notrunc`` (no loop devices), bootloader blobs, boot files."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from image_build.context import BuildContext, sha256_file
from image_build.errors import StageError
from image_build.host import clean_env, run

SECTOR = 512
MIB = 1 << 20


def sfdisk_script(ctx: BuildContext, sizes_mib: dict[str, int]) -> tuple[str, int]:
    """The sfdisk input for this layout and the image's total size in MiB."""
    layout = ctx.plan.layout
    table = layout["table"]
    lines = [
        f"label: {table}",
        f"label-id: {_label_id(layout['disk_id'], table)}",
        "unit: sectors",
        "sector-size: 512",
    ]
    if table == "gpt":
        lines.append(f"first-lba: {layout['first_offset_mib'] * MIB // SECTOR}")
    offset = layout["first_offset_mib"]
    for part in ctx.plan.partitions:
        size = sizes_mib[part.name]
        fields = [
            f"start={offset * MIB // SECTOR}",
            f"size={size * MIB // SECTOR}",
            f"type={part.type_code}",
        ]
        if table == "gpt":
            fields += [f"uuid={part.partuuid}", f'name="{part.name}"']
        lines.append(", ".join(fields))
        offset += size
    total = offset + 1  # room for the backup GPT
    return "\n".join(lines) + "\n", total


def _label_id(disk_id: str, table: str) -> str:
    return disk_id if table == "gpt" else f"0x{disk_id}"


def export_kernel(ctx: BuildContext) -> dict[str, dict[str, object]]:
    """For direct-kernel boot: copy the kernel and initrd out of the rootfs archive."""
    exported = {}
    with tarfile.open(ctx.work_dir / "rootfs.tar") as tar:
        names = tar.getnames()
        for kind, suffix in (("vmlinuz", ".vmlinuz"), ("initrd.img", ".initrd.img")):
            found = sorted(n for n in names if n.startswith(f"./boot/{kind}-"))
            if not found:
                raise StageError(
                    f"no /boot/{kind}-* in the rootfs",
                    hint="the profile's kernel packages must install a kernel",
                )
            member = tar.extractfile(found[-1])
            assert member is not None
            target = ctx.output(suffix)
            with target.open("wb") as out:
                shutil.copyfileobj(member, out)
            exported[target.name] = {
                "from": found[-1][1:],
                "sha256": sha256_file(target),
                "size": target.stat().st_size,
            }
    return exported


def disk_image(ctx: BuildContext, filesystems: dict[str, Path]) -> Path:
    log = ctx.log("disk-image")
    sizes = {}
    for part in ctx.plan.partitions:
        size = filesystems[part.name].stat().st_size
        if size % MIB:
            raise StageError(f"filesystem {part.name} is not a whole number of MiB")
        sizes[part.name] = size // MIB
    script, total_mib = sfdisk_script(ctx, sizes)
    raw = ctx.work_dir / f"{ctx.profile.name}.img"
    raw.unlink(missing_ok=True)
    with raw.open("wb") as fh:
        fh.truncate(total_mib * MIB)
    ctx.progress.step(f"sfdisk {ctx.plan.layout['table']} ({total_mib} MiB)")
    env = clean_env(ctx.source_date_epoch)
    run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe=never", raw],
        log,
        env=env,
        stdin=script.encode(),
        what="sfdisk",
    )
    offset = ctx.plan.layout["first_offset_mib"]
    for part in ctx.plan.partitions:
        ctx.progress.step(f"place {part.name} at {offset} MiB")
        run(
            [
                "dd",
                f"if={filesystems[part.name]}",
                f"of={raw}",
                "bs=1M",
                f"seek={offset}",
                "conv=notrunc,sparse",
                "status=none",
            ],
            log,
            env=env,
            what=f"dd ({part.name})",
        )
        offset += sizes[part.name]
    for blob in ctx.plan.layout["blobs"]:
        source = ctx.rootfs / blob["source"].lstrip("/")
        if not source.is_file():
            ctx.record.setdefault("left_out", {}).setdefault("blobs", []).append(blob)
            continue
        run(
            [
                "dd",
                f"if={source}",
                f"of={raw}",
                "bs=1K",
                f"seek={blob['offset_kib']}",
                "conv=notrunc",
                "status=none",
            ],
            log,
            env=env,
            what="dd (bootloader)",
        )
    outputs = ctx.record.setdefault("outputs", {})
    outputs["raw image"] = {
        "size": raw.stat().st_size,
        "sha256": sha256_file(raw),
        "partition_sizes_mib": sizes,
    }
    outputs["sfdisk"] = script
    if ctx.plan.boot["method"] == "qemu-direct":
        outputs.update(export_kernel(ctx))
    return raw
