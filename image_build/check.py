"""Build, boot and (optionally) rebuild a profile, and report the numbers that matter.

Used for the targets too slow for CI (qemu-arm64 under TCG) and for the reproducibility
check: the second build shares nothing with the first (fresh output and scratch
directories) and must give the same sha256 for the rootfs archive, the raw disk image, the
compressed image and the SBOM.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from image_build.boot import boot_image
from image_build.build import make_context, run_build
from image_build.errors import ImageBuildError

COMPARED = ("rootfs.tar", "raw image")


def _build(
    profile: str, out: Path, offline: bool, console: Console, keep_work: bool = False
) -> dict[str, Any]:
    ctx = make_context(profile, out, offline=offline, console=console, keep_work=keep_work)
    return run_build(ctx)


def _hashes(manifest: dict[str, Any], profile: str) -> dict[str, str]:
    outputs = manifest["outputs"]
    hashes = {name: outputs[name]["sha256"] for name in COMPARED}
    hashes[f"{profile}.img.zst"] = outputs[f"{profile}.img.zst"]["sha256"]
    return hashes


def check(
    profile: str,
    out: Path,
    *,
    boot: bool = True,
    twice: bool = False,
    offline: bool = False,
    timeout: float = 1800.0,
    console: Console | None = None,
    keep_work: bool = False,
) -> dict[str, Any]:
    console = console or Console(stderr=True)
    first = _build(profile, out / "first", offline, console, keep_work)
    name = first["profile"]
    image = out / "first" / f"{name}.img.zst"
    report: dict[str, Any] = {
        "profile": name,
        "stage_seconds": first["stage_seconds"],
        "build_seconds": round(sum(first["stage_seconds"].values()), 1),
        "raw_bytes": first["outputs"]["raw image"]["size"],
        "compressed_bytes": first["outputs"][f"{name}.img.zst"]["size"],
        "sha256": _hashes(first, name),
    }
    if boot:
        report["boot"] = boot_image(image, timeout=timeout)
    if twice:
        second = _build(profile, out / "second", offline, console, keep_work)
        report["second_build_seconds"] = round(sum(second["stage_seconds"].values()), 1)
        report["second_sha256"] = _hashes(second, name)
        sbom = [(out / d / f"{name}.sbom.cdx.json").read_bytes() for d in ("first", "second")]
        report["identical"] = report["sha256"] == report["second_sha256"] and sbom[0] == sbom[1]
        for path in (out / "second").glob(f"{name}.*"):
            if path.suffix in (".zst", ".vmlinuz", ".img"):
                path.unlink()
        if not report["identical"]:
            raise ImageBuildError(
                f"two builds of {name} differ: {json.dumps(report['sha256'])} vs "
                f"{json.dumps(report['second_sha256'])}",
                hint=f"compare the manifests in {out / 'first'} and {out / 'second'}",
            )
    return report


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{report['profile']}", show_edge=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for stage, seconds in report["stage_seconds"].items():
        table.add_row(f"stage {stage}", f"{seconds:.1f} s")
    table.add_row("build total", f"{report['build_seconds']:.1f} s")
    table.add_row("image raw", f"{report['raw_bytes'] / 2**20:.0f} MiB")
    table.add_row("image .zst", f"{report['compressed_bytes'] / 2**20:.0f} MiB")
    if "boot" in report:
        boot = report["boot"]
        seconds = boot["seconds"]
        table.add_row("boot accel", f"{boot['accel']} ({'; '.join(boot['attempts'])})")
        table.add_row(
            "boot to system state", f"{seconds['to_system_state']:.1f} s ({boot['system_state']})"
        )
        if "to_first_event" in seconds:
            table.add_row("boot to first event", f"{seconds['to_first_event']:.1f} s")
    for key, digest in report["sha256"].items():
        table.add_row(f"sha256 {key}", digest)
    for key, digest in report.get("second_sha256", {}).items():
        table.add_row(f"sha256 {key} (2nd)", digest)
    if "identical" in report:
        table.add_row("bit-identical", "yes" if report["identical"] else "NO")
    console.print(table)


def clean(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
