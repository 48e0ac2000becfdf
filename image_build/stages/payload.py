"""Stage 3: the zeke payload: wheel from the checkout, locked dependencies, units, keys."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from image_build.context import BuildContext, sha256_file
from image_build.errors import StageError
from image_build.host import chroot_mounts, clean_env, in_chroot, run, with_network_settings
from image_build.lockfile import LockedRequirement, for_target, parse_lock, platform_tags

UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target")
STAGING = "/tmp/zeke-payload"


def build_wheel(ctx: BuildContext) -> Path:
    """``pip wheel`` of the checkout; hatchling's zips honour SOURCE_DATE_EPOCH."""
    wheel_dir = ctx.work_dir / "wheel"
    if wheel_dir.exists():
        shutil.rmtree(wheel_dir)
    # The venv's hatchling when it has one (no download, a known version); otherwise pip's
    # isolated build environment fetches the backend.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    ctx.record["wheel_backend"] = "isolated build" if not isolation else _hatchling_version()
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *isolation,
            "--disable-pip-version-check",
            "-w",
            wheel_dir,
            ctx.repo,
        ],
        ctx.log("payload"),
        env=with_network_settings(clean_env(ctx.source_date_epoch, PIP_NO_CACHE_DIR="1")),
        what="pip wheel (zeke)",
    )
    wheels = sorted(wheel_dir.glob("zeke-*.whl"))
    if len(wheels) != 1:
        raise StageError(
            f"expected one zeke wheel, found {len(wheels)}", hint="see the payload log"
        )
    return wheels[0]


def _hatchling_version() -> str:
    from importlib.metadata import version

    return f"hatchling {version('hatchling')}"


def download_wheels(ctx: BuildContext) -> tuple[Path, list[LockedRequirement]]:
    """Fetch the target's locked wheels on the host, hash-checked, into a wheelhouse.

    The download uses the host's own pip configuration (index, proxy, CA): that is the
    build machine's business and never reaches the image. The chroot installs offline.
    """
    dist = ctx.profile.distribution
    wanted = for_target(parse_lock(ctx.lock), dist.python, dist.architecture)
    wheelhouse = ctx.work_dir / "wheelhouse"
    if wheelhouse.exists():
        shutil.rmtree(wheelhouse)
    wheelhouse.mkdir(parents=True)
    target_lock = ctx.work_dir / "requirements.target.txt"
    target_lock.write_text("".join(e.line() + "\n" for e in wanted))
    major, minor = dist.python.split(".")[:2]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-cache-dir",
        f"--python-version={major}.{minor}",
        "--implementation=cp",
        f"--abi=cp{major}{minor}",
        "-d",
        wheelhouse,
        "-r",
        target_lock,
    ]
    for tag in platform_tags(dist.architecture, dist.glibc):
        cmd.append(f"--platform={tag}")
    # A host-wide pip constraints file must not override the lock.
    env = with_network_settings(clean_env(ctx.source_date_epoch))
    env["PIP_CONSTRAINT"] = ""
    run(cmd, ctx.log("payload"), env=env, what="pip download (locked wheels)")
    return wheelhouse, wanted


def install_python(ctx: BuildContext, wheel: Path) -> None:
    root = ctx.rootfs
    log = ctx.log("payload")
    venv = ctx.profile.zeke.venv
    ctx.progress.step("download locked wheels")
    wheelhouse, wanted = download_wheels(ctx)
    ctx.record["locked_wheels"] = sorted(f"{e.name}=={e.version}" for e in wanted)
    staging = root / STAGING.lstrip("/")
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy2(wheel, staging / wheel.name)
    shutil.copy2(ctx.lock, staging / "requirements.lock")
    shutil.copytree(wheelhouse, staging / "wheels")
    try:
        with chroot_mounts(root):
            venv_cmd = ["python3", "-m", "venv"]
            if ctx.profile.zeke.system_site_packages:
                venv_cmd.append("--system-site-packages")
            ctx.progress.step(f"venv {venv}")
            in_chroot(root, [*venv_cmd, venv], log, ctx.source_date_epoch, what="python3 -m venv")
            pip = [f"{venv}/bin/python", "-m", "pip", "--disable-pip-version-check", "--no-input"]
            ctx.progress.step("locked dependencies (hash-checked)")
            in_chroot(
                root,
                [
                    *pip,
                    "install",
                    "--no-cache-dir",
                    "--require-hashes",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--no-index",
                    f"--find-links={STAGING}/wheels",
                    "-r",
                    f"{STAGING}/requirements.lock",
                ],
                log,
                ctx.source_date_epoch,
                what="pip install -r requirements.lock",
            )
            ctx.progress.step(f"zeke wheel {wheel.name}")
            in_chroot(
                root,
                [
                    *pip,
                    "install",
                    "--no-cache-dir",
                    "--no-deps",
                    "--no-index",
                    f"{STAGING}/{wheel.name}",
                ],
                log,
                ctx.source_date_epoch,
                what="pip install zeke",
            )
            in_chroot(root, [*pip, "check"], log, ctx.source_date_epoch, what="pip check")
            in_chroot(
                root,
                [f"{venv}/bin/zeke", "--version"],
                log,
                ctx.source_date_epoch,
                what="zeke --version in the image",
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    bin_link = root / "usr/local/bin/zeke"
    bin_link.parent.mkdir(parents=True, exist_ok=True)
    bin_link.unlink(missing_ok=True)
    bin_link.symlink_to(f"{venv}/bin/zeke")


def unit_destinations(source: Path) -> list[tuple[Path, str, int]]:
    """Where each file of the checkout's systemd/ directory goes in the image, and its mode."""
    placed = []
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix in UNIT_SUFFIXES:
            placed.append((path, f"usr/lib/systemd/system/{path.name}", 0o644))
        elif path.suffix == ".rules":
            placed.append((path, f"etc/udev/rules.d/{path.name}", 0o644))
        elif path.suffix == ".sysusers":
            placed.append((path, f"usr/lib/sysusers.d/{path.stem}.conf", 0o644))
        elif path.suffix == ".tmpfiles":
            placed.append((path, f"usr/lib/tmpfiles.d/{path.stem}.conf", 0o644))
        elif path.suffix == ".sh":
            placed.append((path, f"usr/lib/zeke/{path.stem}", 0o755))
    return placed


def install_units(ctx: BuildContext) -> None:
    """Every unit, helper script, sysusers/tmpfiles entry and udev rule of systemd/."""
    root = ctx.rootfs
    source = ctx.repo / "systemd"
    placed = unit_destinations(source) if source.is_dir() else []
    units = [src.name for src, _, _ in placed if src.suffix in UNIT_SUFFIXES]
    missing = [u for u in ctx.profile.zeke.units if u not in units]
    if missing:
        raise StageError(
            f"profile {ctx.profile.name} enables units the checkout does not have: "
            f"{', '.join(missing)}",
            hint="add them to systemd/ or remove them from the profile's zeke.units",
        )
    for src, rel, mode in placed:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        target.chmod(mode)
    ctx.record["units_installed"] = [rel for _, rel, _ in placed]
    log = ctx.log("payload")
    with chroot_mounts(root):
        if any(rel.startswith("usr/lib/sysusers.d/") for _, rel, _ in placed):
            # Users exist in the image (same ids every build), not only after first boot.
            in_chroot(
                root, ["systemd-sysusers"], log, ctx.source_date_epoch, what="systemd-sysusers"
            )
        in_chroot(
            root,
            ["systemctl", "enable", *ctx.profile.zeke.units],
            log,
            ctx.source_date_epoch,
            what="systemctl enable",
        )
    ctx.record["units_enabled"] = list(ctx.profile.zeke.units)


def install_trusted_keys(ctx: BuildContext) -> None:
    """Hook for signed model bundles: copy the trusted keys when the build has them."""
    target = ctx.rootfs / "etc/zeke/trusted-keys"
    target.mkdir(parents=True, exist_ok=True)
    source = ctx.trusted_keys
    if source is None and ctx.profile.zeke.trusted_keys:
        source = ctx.repo / ctx.profile.zeke.trusted_keys
    if ctx.trusted_keys is not None:
        shown = "--trusted-keys"
    else:
        shown = ctx.profile.zeke.trusted_keys or None
    if source is None or not source.is_dir():
        ctx.record["trusted_keys"] = {
            "source": shown,
            "installed": [],
            "note": "no trusted keys provided",
        }
        return
    keys = sorted(p for p in source.iterdir() if p.is_file())
    for key in keys:
        shutil.copyfile(key, target / key.name)
        (target / key.name).chmod(0o644)
    ctx.record["trusted_keys"] = {
        "source": shown,
        "installed": [{"name": k.name, "sha256": sha256_file(k)} for k in keys],
    }


def firstboot_defaults(ctx: BuildContext) -> None:
    """/etc/default/zeke-firstboot: what the first boot passes to ``zeke setup``."""
    args = " ".join(ctx.profile.zeke.setup_args)
    boot = next((p.mountpoint for p in ctx.plan.partitions if p.filesystem == "vfat"), "")
    text = (
        "# Written by the image build from the board profile; read by zeke-firstboot.\n"
        f'ZEKE_SETUP_ARGS="{args}"\n'
        f'ZEKE_BOOT_PARTITION="{boot}"\n'
        f'ZEKE_PROFILE="{ctx.profile.name}"\n'
    )
    path = ctx.rootfs / "etc/default/zeke-firstboot"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def payload(ctx: BuildContext) -> None:
    if not ctx.lock.is_file():
        raise StageError(
            f"no lock file at {ctx.lock}",
            hint="write requirements.lock (uv pip compile --universal --generate-hashes) or "
            "pass --lock PATH",
        )
    ctx.progress.step("wheel from the checkout")
    wheel = build_wheel(ctx)
    ctx.record["wheel"] = {"name": wheel.name, "sha256": sha256_file(wheel)}
    ctx.record["lock"] = {"path": ctx.lock.name, "sha256": sha256_file(ctx.lock)}
    install_python(ctx, wheel)
    ctx.progress.step("units, udev rules")
    install_units(ctx)
    install_trusted_keys(ctx)
    firstboot_defaults(ctx)
