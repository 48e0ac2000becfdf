"""The build manifest: inputs, package versions, outputs and what was left out."""

from __future__ import annotations

import json
import platform
from typing import Any

from image_build.context import BuildContext, checkout_state, sha256_file
from image_build.host import tool_version
from image_build.inventory import Package
from image_build.plan import Plan

SCHEMA = "zeke-image-manifest/1"


def left_out(plan: Plan, record: dict[str, Any]) -> dict[str, Any]:
    """Everything the plan wanted that this build did not put in the image, and why."""
    result: dict[str, Any] = {
        "vendor_sources": plan.left_out["sources"],
        "vendor_packages": plan.left_out["packages"],
        "reason": (
            "--offline: vendor repositories are not reachable from this build machine"
            if plan.offline and plan.left_out["sources"]
            else None
        ),
    }
    by_source = {}
    for source in plan.vendor:
        if source["name"] in plan.left_out["sources"]:
            by_source[source["name"]] = {"uri": source["uri"], "packages": source["packages"]}
    result["by_source"] = by_source
    extra = record.get("left_out", {})
    if extra.get("blobs"):
        result["bootloader_blobs"] = extra["blobs"]
    if extra.get("initramfs"):
        result["initramfs"] = extra["initramfs"]
    keys = record.get("trusted_keys")
    if keys and not keys.get("installed"):
        result["trusted_keys"] = keys.get("note")
    return result


def archive_note(plan: Plan) -> dict[str, Any]:
    """Whether the archive was pinned, and what that means for rebuilding these bytes."""
    dist = plan.distribution
    pinned = bool(dist["snapshot"])
    if pinned:
        note = f"pinned to snapshot {dist['snapshot']}"
    elif dist["name"] == "debian":
        note = (
            "not pinned: the package versions recorded here are what the mirror served; to "
            "rebuild bit-identically later, set distribution.snapshot on a machine that "
            "reaches snapshot.debian.org (not reachable from the machine that built this)"
        )
    else:
        note = (
            f"not pinned: {dist['name']} has no snapshot archive in this builder; the package "
            "versions recorded here are what the mirror served"
        )
    return {"mirror": dist["mirror"], "pinned": pinned, "note": note}


def build_manifest(
    ctx: BuildContext, debs: list[Package], wheels: list[Package], stages: dict[str, float]
) -> dict[str, Any]:
    plan = ctx.plan
    profile_path = ctx.profile_path
    return {
        "schema": SCHEMA,
        "profile": plan.profile,
        "board": plan.board,
        "architecture": plan.architecture,
        "offline": ctx.offline,
        "status": "complete",
        "inputs": {
            "profile": {"file": profile_path.name, "sha256": sha256_file(profile_path)},
            "checkout": checkout_state(ctx.repo),
            "wheel": ctx.record.get("wheel"),
            "wheel_backend": ctx.record.get("wheel_backend"),
            "lock": ctx.record.get("lock"),
            "source_date_epoch": ctx.source_date_epoch,
            "source_date_epoch_origin": ctx.epoch_origin,
            "archive": archive_note(plan),
            "apt_sources": [s["line"] for s in plan.apt_sources],
            "trusted_keys": ctx.record.get("trusted_keys"),
        },
        "tools": {
            "host": platform.platform(),
            "mmdebstrap": tool_version(["mmdebstrap", "--version"], r"mmdebstrap (\S+)"),
            "mke2fs": ctx.record.get("mke2fs"),
            "zstd": tool_version(["zstd", "--version"], r"v(\d+\.\d+\.\d+)"),
        },
        "packages": {
            "debian": {p.name: p.version for p in debs},
            "python": {p.name: p.version for p in wheels},
        },
        "left_out": left_out(plan, ctx.record),
        "boot": plan.boot,
        "units_enabled": ctx.record.get("units_enabled"),
        "outputs": ctx.record.get("outputs"),
        "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
        "plan": plan.to_dict(),
    }


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"
