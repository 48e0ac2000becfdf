"""A CycloneDX 1.5 JSON SBOM of every Debian and Python package in the image.

The document is a function of the package list and the build's fixed epoch only, so two
builds of the same inputs give the same SBOM, serial number included.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from image_build.inventory import Package

_SBOM_NAMESPACE = uuid.UUID("2f6c2d0e-63a4-5a7e-b1f0-7d1c5e0b9a42")


def purl(pkg: Package, distro: str) -> str:
    """The package URL (purl spec) of a Debian or PyPI package."""
    version = quote(pkg.version, safe=".-_~")
    if pkg.ecosystem == "deb":
        vendor, _, release = distro.partition("-")
        return f"pkg:deb/{vendor}/{quote(pkg.name, safe='.-_~+')}@{version}?arch={pkg.arch}" + (
            f"&distro={distro}" if release else ""
        )
    return f"pkg:pypi/{pkg.name}@{version}"


def _component(pkg: Package, distro: str) -> dict[str, Any]:
    ref = purl(pkg, distro)
    component: dict[str, Any] = {
        "type": "library" if pkg.ecosystem == "pypi" else "application",
        "bom-ref": ref,
        "name": pkg.name,
        "version": pkg.version,
        "purl": ref,
    }
    if pkg.license:
        component["licenses"] = [{"license": {"name": pkg.license}}]
    properties = [{"name": "zeke:ecosystem", "value": pkg.ecosystem}]
    if pkg.source and pkg.source != pkg.name:
        properties.append({"name": "zeke:deb-source", "value": pkg.source})
    if pkg.location:
        properties.append({"name": "zeke:location", "value": pkg.location})
    component["properties"] = properties
    return component


def cyclonedx(
    image_name: str,
    image_version: str,
    distro: str,
    packages: list[Package],
    epoch: int,
    tool_version: str,
) -> dict[str, Any]:
    """The SBOM document for an image holding ``packages``."""
    components = [_component(p, distro) for p in sorted(packages)]
    refs = [c["bom-ref"] for c in components]
    serial = uuid.uuid5(_SBOM_NAMESPACE, "\n".join([image_name, image_version, *refs]))
    timestamp = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [
                    {"type": "application", "name": "zeke-image-build", "version": tool_version}
                ]
            },
            "component": {
                "type": "operating-system",
                "bom-ref": f"image:{image_name}",
                "name": image_name,
                "version": image_version,
            },
        },
        "components": components,
        "dependencies": [{"ref": f"image:{image_name}", "dependsOn": refs}],
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
