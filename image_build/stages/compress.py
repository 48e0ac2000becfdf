"""Stage 7: compress the raw image (zstd output depends only on level and input)."""

from __future__ import annotations

from pathlib import Path

from image_build.context import BuildContext, sha256_file
from image_build.host import clean_env, run

ZSTD_LEVEL = 12


def compress(ctx: BuildContext, raw: Path) -> Path:
    target = ctx.output(".img.zst")
    target.unlink(missing_ok=True)
    ctx.progress.step(f"zstd -{ZSTD_LEVEL} {raw.name}")
    run(
        ["zstd", "-q", f"-{ZSTD_LEVEL}", "-T0", "--no-progress", "-o", target, raw],
        ctx.log("compress"),
        env=clean_env(ctx.source_date_epoch),
        what="zstd",
    )
    digest = sha256_file(target)
    ctx.output(".img.zst.sha256").write_text(f"{digest}  {target.name}\n")
    ctx.record.setdefault("outputs", {})[target.name] = {
        "size": target.stat().st_size,
        "sha256": digest,
    }
    return target
