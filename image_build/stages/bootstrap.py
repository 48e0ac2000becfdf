"""Stage 1: mmdebstrap the base system into a directory, in a clean environment."""

from __future__ import annotations

import os
import shutil

from image_build.context import PACKAGE_DIR, BuildContext
from image_build.host import clean_env, run

# While packages install, update-initramfs is diverted to a no-op: every kernel and hook
# package would otherwise rebuild the initramfs (twice under qemu-user: minutes each).
# The customise stage restores it and builds the initramfs once.
DIVERT_INITRAMFS = (
    'chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && '
    'printf "#!/bin/sh\\nexit 0\\n" > "$1/usr/sbin/update-initramfs" && '
    'chmod 0755 "$1/usr/sbin/update-initramfs"'
)


def mmdebstrap_command(ctx: BuildContext) -> list[str]:
    """The mmdebstrap invocation for this plan (also shown by ``plan``)."""
    plan = ctx.plan
    dist = plan.distribution
    cmd = [
        "mmdebstrap",
        "--mode=root",
        "--format=directory",
        f"--variant={dist['variant']}",
        f"--arch={plan.architecture}",
        f"--components={','.join(dist['components'])}",
        f"--include={','.join(plan.packages)}",
        f"--essential-hook={DIVERT_INITRAMFS}",
        "--aptopt=Acquire::Retries=3",
        "--aptopt=APT::Install-Recommends=false",
    ]
    if dist.get("keyring"):
        cmd.append(f"--keyring={dist['keyring']}")
    for source in plan.vendor:
        if source["name"] in plan.left_out["sources"]:
            continue
        keyring = PACKAGE_DIR / "keyrings" / source["keyring"]
        cmd.append(f"--keyring={keyring}")
    cmd += [dist["suite"], os.fspath(ctx.rootfs)]
    for source in plan.apt_sources:
        line = source["line"]
        if source["vendor"]:
            # apt runs on the host here: point signed-by at the keyring in the checkout.
            keyring = next(v["keyring"] for v in plan.vendor if v["name"] == source["name"])
            line = line.replace(
                f"/usr/share/keyrings/{keyring}", os.fspath(PACKAGE_DIR / "keyrings" / keyring)
            )
        cmd.append(line)
    return cmd


def bootstrap(ctx: BuildContext) -> None:
    if ctx.rootfs.exists():
        shutil.rmtree(ctx.rootfs)
    ctx.rootfs.parent.mkdir(parents=True, exist_ok=True)
    ctx.progress.step(f"mmdebstrap {ctx.plan.distribution['suite']} {ctx.plan.architecture}")
    run(
        mmdebstrap_command(ctx),
        ctx.log("bootstrap"),
        env=clean_env(ctx.source_date_epoch),
        what="mmdebstrap",
    )
