"""The locked dependencies for one target: parse a hashed lock, keep what the target needs.

The lock is universal (markers for every Python and platform). The host downloads the
target's wheels with hash checking and the chroot installs them with no network; markers are
evaluated here for the image's Python and CPU so a host of another version or architecture
fetches the right files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from image_build.errors import ImageBuildError

MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class LockedRequirement:
    """One pinned requirement with its allowed hashes."""

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]

    def line(self) -> str:
        hashes = " ".join(f"--hash={h}" for h in self.hashes)
        return f"{self.name}=={self.version} {hashes}"


def parse_lock(path: Path) -> list[LockedRequirement]:
    """Every requirement of a ``--generate-hashes`` lock; unpinned or unhashed is an error."""
    text = path.read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    entries = []
    for number, raw in enumerate(logical.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            continue  # options such as --index-url
        hashes = tuple(re.findall(r"--hash=(\S+)", line))
        spec = re.sub(r"--hash=\S+", "", line).strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as err:
            raise ImageBuildError(
                f"{path.name}: entry {number} is not a requirement: {err}"
            ) from None
        pins = [s for s in req.specifier if s.operator == "=="]
        if len(pins) != 1 or not hashes:
            raise ImageBuildError(
                f"{path.name}: {req.name} is not pinned with hashes",
                hint="regenerate the lock with --generate-hashes (every entry name==version)",
            )
        entries.append(
            LockedRequirement(
                req.name, pins[0].version, str(req.marker) if req.marker else None, hashes
            )
        )
    return entries


def target_environment(python: str, architecture: str) -> dict[str, str]:
    """PEP 508 marker values of the image's interpreter (CPython on Linux)."""
    major_minor = ".".join(python.split(".")[:2])
    return {
        "implementation_name": "cpython",
        "implementation_version": python,
        "os_name": "posix",
        "platform_machine": MACHINES[architecture],
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python,
        "python_version": major_minor,
        "sys_platform": "linux",
    }


def for_target(
    entries: list[LockedRequirement], python: str, architecture: str
) -> list[LockedRequirement]:
    """The entries the image's interpreter installs."""
    from packaging.markers import Marker

    env = target_environment(python, architecture)
    return [e for e in entries if e.marker is None or Marker(e.marker).evaluate(env)]


def platform_tags(architecture: str, glibc: str) -> list[str]:
    """pip --platform values for a glibc: every manylinux level up to it."""
    machine = MACHINES[architecture]
    major, minor = (int(x) for x in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
    tags += [f"manylinux2014_{machine}"]
    if machine == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags
