"""What every stage of one build shares: the plan, directories, the fixed epoch, the record."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image_build.plan import Plan
from image_build.profile import Profile
from image_build.progress import BuildProgress

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent

# What the payload is made of: the epoch fallback looks at these.
PAYLOAD_INPUTS = ("pyproject.toml", "appliance", "models", "systemd", "requirements.lock")


@dataclass
class BuildContext:
    """One build: inputs, working directories and what the manifest will record."""

    profile: Profile
    profile_path: Path
    plan: Plan
    out_dir: Path
    work_dir: Path
    repo: Path
    lock: Path
    source_date_epoch: int
    epoch_origin: str
    progress: BuildProgress
    offline: bool = False
    trusted_keys: Path | None = None
    keep_work: bool = False
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def rootfs(self) -> Path:
        return self.work_dir / "rootfs"

    @property
    def logs(self) -> Path:
        return self.out_dir / "logs" / self.profile.name

    def log(self, stage: str) -> Path:
        return self.logs / f"{stage.replace(' ', '-')}.log"

    def output(self, suffix: str) -> Path:
        return self.out_dir / f"{self.profile.name}{suffix}"

    def partition_dir(self, name: str) -> Path:
        """Where a non-root partition's files are gathered before its filesystem is made."""
        return self.work_dir / "partitions" / name


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_date_epoch(repo: Path) -> tuple[int, str]:
    """The fixed time of every timestamp in the image, and where it came from.

    In order: ``$SOURCE_DATE_EPOCH``; the checkout's last commit; the newest modification time
    of the payload's inputs (for an uncommitted checkout: the same files give the same time).
    """
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"]), "SOURCE_DATE_EPOCH"
    proc = subprocess.run(
        ["git", "-C", os.fspath(repo), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0 and proc.stdout.strip().isdigit():
        return int(proc.stdout.strip()), "last commit"
    newest = 0
    for name in PAYLOAD_INPUTS:
        path = repo / name
        if path.is_file():
            newest = max(newest, int(path.stat().st_mtime))
        elif path.is_dir():
            for item in path.rglob("*"):
                if item.is_file() and "__pycache__" not in item.parts:
                    newest = max(newest, int(item.stat().st_mtime))
    return newest, "newest payload input (uncommitted checkout)"


def checkout_state(repo: Path) -> dict[str, Any]:
    """Which commit the payload came from and whether the tree had changes."""
    head = subprocess.run(
        ["git", "-C", os.fspath(repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    status = subprocess.run(
        ["git", "-C", os.fspath(repo), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "commit": head.stdout.strip() if head.returncode == 0 else None,
        "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
    }
