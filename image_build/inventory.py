"""What is installed in a rootfs: Debian packages (dpkg database) and Python distributions."""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Package:
    """One installed package, Debian or Python."""

    ecosystem: str  # "deb" or "pypi"
    name: str
    version: str
    arch: str | None = None
    source: str | None = None
    license: str | None = None
    location: str | None = None


def debian_packages(root: Path) -> list[Package]:
    """Installed Debian packages, read from the rootfs's dpkg database."""
    fmt = "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\n"
    proc = subprocess.run(
        ["dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", f"-f={fmt}"],
        capture_output=True,
        text=True,
        check=True,
    )
    packages = []
    for line in proc.stdout.splitlines():
        status, name, version, arch, source = line.split("\t")
        if not status.startswith("ii"):
            continue
        packages.append(Package("deb", name, version, arch, source or name))
    return sorted(packages)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_packages(root: Path, venv: str) -> list[Package]:
    """Distributions in the venv's site-packages (the zeke payload)."""
    packages = []
    parser = email.parser.HeaderParser()
    for site in sorted((root / venv.lstrip("/")).glob("lib/python3*/site-packages")):
        for meta in sorted(site.glob("*.dist-info/METADATA")):
            msg = parser.parsestr(meta.read_text(encoding="utf-8", errors="replace"))
            license_ = msg.get("License-Expression") or _short_license(msg.get("License"))
            if not license_:
                classifiers = [c for c in msg.get_all("Classifier", []) if "License ::" in c]
                license_ = classifiers[0].split("::")[-1].strip() if classifiers else None
            packages.append(
                Package(
                    "pypi",
                    _normalise(msg["Name"]),
                    msg["Version"],
                    license=license_,
                    location=os.fspath(Path("/") / meta.parent.relative_to(root)),
                )
            )
    return sorted(packages)


def _short_license(text: str | None) -> str | None:
    """Some METADATA files carry the whole licence text in License: keep the first line."""
    if not text:
        return None
    first = text.strip().splitlines()[0].strip()
    return first[:100] if first and first.upper() != "UNKNOWN" else None
