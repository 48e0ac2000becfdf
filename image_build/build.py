"""The build: preflight, then each stage in order, then the manifest and SBOM."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

import zeke
from image_build import manifest as manifest_mod
from image_build import sbom
from image_build.context import REPO_ROOT, BuildContext, source_date_epoch
from image_build.errors import HostToolError, ImageBuildError
from image_build.host import require_binfmt, require_root, require_tools, url_answers
from image_build.inventory import debian_packages, python_packages
from image_build.mke2fs import find_mke2fs
from image_build.plan import STAGES, resolve
from image_build.profile import PROFILES_DIR, load_profile
from image_build.progress import BuildProgress
from image_build.stages.bootstrap import bootstrap
from image_build.stages.compress import compress
from image_build.stages.customise import customise
from image_build.stages.disk import disk_image
from image_build.stages.filesystem import filesystems
from image_build.stages.normalise import normalise
from image_build.stages.payload import payload

HOST_TOOLS = (
    "mmdebstrap",
    "sfdisk",
    "mkfs.vfat",
    "mcopy",
    "mmd",
    "zstd",
    "tar",
    "dpkg-query",
    "dpkg-deb",
    "chroot",
    "apt-get",
)


def _release_url(line: str) -> tuple[str, str]:
    """(uri, Release URL) of a one-line apt source."""
    parts = line.split()
    if parts[1].startswith("["):
        parts.pop(1)
    uri, suite = parts[1], parts[2]
    return uri, f"{uri.rstrip('/')}/dists/{suite}/Release"


def preflight(ctx: BuildContext) -> None:
    require_root()
    require_tools(HOST_TOOLS)
    require_binfmt(ctx.plan.architecture)
    for source in ctx.plan.vendor:
        if source["name"] in ctx.plan.left_out["sources"]:
            continue
        key = Path(__file__).resolve().parent / "keyrings" / source["keyring"]
        if not key.is_file():
            raise HostToolError(
                f"vendor keyring {source['keyring']} for source {source['name']!r} is missing",
                hint=f"download it from {source['keyring_url']} into image_build/keyrings/, "
                "or build with --offline to leave the vendor packages out",
            )
    ctx.progress.step("apt sources answer?")
    for source in ctx.plan.apt_sources:
        uri, release = _release_url(source["line"])
        if url_answers(release):
            continue
        if source["vendor"]:
            raise HostToolError(
                f"vendor repository {source['name']!r} ({uri}) does not answer",
                hint="build with --offline to leave its packages out (the manifest lists them)",
            )
        raise HostToolError(
            f"the {source['name']} archive {uri} does not answer from this machine",
            hint="build this profile on a machine that reaches it (see the plan's notes)",
        )
    keyring = ctx.plan.distribution.get("keyring")
    if keyring and not Path(keyring).is_file():
        raise HostToolError(
            f"the {ctx.plan.distribution['name']} archive keyring {keyring} is missing",
            hint="install it (Ubuntu: apt-get install ubuntu-keyring; Debian 12 does not "
            "package it: copy the file from an Ubuntu system)",
        )
    if not ctx.lock.is_file():
        raise HostToolError(
            f"no lock file {ctx.lock}",
            hint="create requirements.lock at the checkout root or pass --lock PATH",
        )
    ctx.progress.step("mke2fs >= 1.47.1")
    found = find_mke2fs(log=ctx.log("preflight"))
    ctx.record["mke2fs"] = {"version": found.version, "origin": found.origin}


def write_incomplete_manifest(ctx: BuildContext, failed_stage: str, error: ImageBuildError) -> None:
    """A failed build still says what it was, what it left out and where it stopped."""
    data = {
        "schema": manifest_mod.SCHEMA,
        "profile": ctx.plan.profile,
        "status": "incomplete",
        "failed_stage": failed_stage,
        "error": error.message,
        "hint": error.hint,
        "offline": ctx.offline,
        "inputs": {
            "archive": manifest_mod.archive_note(ctx.plan),
            "apt_sources": [s["line"] for s in ctx.plan.apt_sources],
        },
        "left_out": manifest_mod.left_out(ctx.plan, ctx.record),
        "stage_seconds": {k: round(v, 1) for k, v in ctx.progress.timer.seconds.items()},
        "plan": ctx.plan.to_dict(),
    }
    ctx.output(".manifest.json").write_text(manifest_mod.dumps(data))


def run_build(ctx: BuildContext) -> dict:
    progress = ctx.progress
    current = "preflight"
    try:
        with progress:
            with progress.stage("preflight"):
                preflight(ctx)
            current = "bootstrap"
            with progress.stage("bootstrap"):
                bootstrap(ctx)
            current = "customise"
            with progress.stage("customise"):
                customise(ctx)
            current = "payload"
            with progress.stage("payload"):
                payload(ctx)
            current = "normalise"
            with progress.stage("normalise"):
                debs = debian_packages(ctx.rootfs)
                wheels = python_packages(ctx.rootfs, ctx.profile.zeke.venv)
                normalise(ctx)
            current = "filesystem"
            with progress.stage("filesystem"):
                images = filesystems(ctx)
            current = "disk image"
            with progress.stage("disk image"):
                raw = disk_image(ctx, images)
            current = "compress"
            with progress.stage("compress"):
                compress(ctx, raw)
            current = "manifest"
            with progress.stage("manifest"):
                document = sbom.cyclonedx(
                    ctx.profile.name,
                    zeke.__version__,
                    _distro(ctx),
                    debs + wheels,
                    ctx.source_date_epoch,
                    zeke.__version__,
                )
                sbom_path = ctx.output(".sbom.cdx.json")
                sbom_path.write_text(sbom.dumps(document))
                stages = dict(progress.timer.seconds)
                stages["manifest"] = 0.0
                data = manifest_mod.build_manifest(ctx, debs, wheels, stages)
                data["outputs"][sbom_path.name] = {"components": len(document["components"])}
                ctx.output(".manifest.json").write_text(manifest_mod.dumps(data))
    except ImageBuildError as err:
        write_incomplete_manifest(ctx, current, err)
        raise
    finally:
        if not ctx.keep_work and ctx.work_dir.exists():
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
    progress.console.print(progress.summary())
    return data


def _distro(ctx: BuildContext) -> str:
    dist = ctx.plan.distribution
    release = {"bookworm": "12", "trixie": "13", "jammy": "22.04"}.get(dist["suite"], dist["suite"])
    return f"{dist['name']}-{release}"


def make_context(
    profile_name: str,
    out_dir: Path,
    *,
    offline: bool = False,
    lock: Path | None = None,
    work_dir: Path | None = None,
    trusted_keys: Path | None = None,
    keep_work: bool = False,
    console: Console | None = None,
) -> BuildContext:
    profile = load_profile(profile_name)
    profile_path = (
        Path(profile_name)
        if profile_name.endswith(".toml")
        else (PROFILES_DIR / f"{profile_name}.toml")
    )
    plan = resolve(profile, offline=offline)
    out_dir = out_dir.resolve()
    if out_dir.is_relative_to(REPO_ROOT):
        raise ImageBuildError(
            f"output directory {out_dir} is inside the checkout",
            hint="build outside the repository, e.g. --out /var/tmp/zeke-images",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "logs" / profile.name, ignore_errors=True)
    epoch, origin = source_date_epoch(REPO_ROOT)
    return BuildContext(
        profile=profile,
        profile_path=profile_path,
        plan=plan,
        out_dir=out_dir,
        work_dir=(work_dir or out_dir / f".work-{profile.name}").resolve(),
        repo=REPO_ROOT,
        lock=(lock or REPO_ROOT / "requirements.lock").resolve(),
        source_date_epoch=epoch,
        epoch_origin=origin,
        progress=BuildProgress(STAGES, console=console),
        offline=offline,
        trusted_keys=trusted_keys.resolve() if trusted_keys else None,
        keep_work=keep_work,
    )
