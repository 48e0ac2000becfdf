"""What a build records: the SBOM (CycloneDX 1.5, schema-checked), the manifest's account of
what was left out, the package inventory of a rootfs, and the lock file per target."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from image_build.errors import ImageBuildError
from image_build.inventory import Package, debian_packages, python_packages
from image_build.lockfile import for_target, parse_lock, platform_tags
from image_build.manifest import archive_note, left_out
from image_build.plan import resolve
from image_build.profile import load_profile
from image_build.sbom import cyclonedx, dumps, purl

REPO = Path(__file__).resolve().parents[2]

DPKG_STATUS = """\
Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b7

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.15-1~deb12u1

Package: python3.11-minimal
Status: install ok installed
Architecture: amd64
Source: python3.11
Version: 3.11.2-6+deb12u5

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

"""


def _dist_info(site: Path, name: str, version: str, license_: str | None, dirname: str) -> None:
    info = site / f"{dirname}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if license_:
        lines.append(f"License: {license_}")
    else:
        lines.append("Classifier: License :: OSI Approved :: BSD License")
    (info / "METADATA").write_text("\n".join(lines) + "\n\nlong description\n")


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG_STATUS)
    site = root / "opt/zeke/lib/python3.11/site-packages"
    _dist_info(site, "zeke", "0.1.0", "Apache-2.0", "zeke")
    _dist_info(site, "numpy", "2.4.6", None, "numpy")
    _dist_info(site, "ai_edge_litert", "2.3.0", "Apache 2.0", "ai_edge_litert")
    return root


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query")
def test_inventory_reads_dpkg_and_dist_info(rootfs):
    debs = debian_packages(rootfs)
    assert [(p.name, p.version, p.source) for p in debs] == [
        ("bash", "5.2.15-2+b7", "bash"),
        ("libssl3", "3.0.15-1~deb12u1", "openssl"),
        ("python3.11-minimal", "3.11.2-6+deb12u5", "python3.11"),
    ]
    wheels = {p.name: p for p in python_packages(rootfs, "/opt/zeke")}
    assert set(wheels) == {"zeke", "numpy", "ai-edge-litert"}
    assert wheels["ai-edge-litert"].version == "2.3.0"
    assert wheels["numpy"].license == "BSD License"
    assert wheels["zeke"].location == "/opt/zeke/lib/python3.11/site-packages/zeke-0.1.0.dist-info"


def test_purls():
    deb = Package("deb", "libssl3", "1:3.0.15-1~deb12u1", "arm64", "openssl")
    assert purl(deb, "debian-12") == (
        "pkg:deb/debian/libssl3@1%3A3.0.15-1~deb12u1?arch=arm64&distro=debian-12"
    )
    assert purl(Package("pypi", "ai-edge-litert", "2.3.0"), "debian-12") == (
        "pkg:pypi/ai-edge-litert@2.3.0"
    )


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query")
def test_sbom_is_valid_cyclonedx_1_5_and_reproducible(rootfs):
    packages = debian_packages(rootfs) + python_packages(rootfs, "/opt/zeke")
    document = cyclonedx("qemu-amd64", "0.1.0", "debian-12", packages, 1_700_000_000, "0.1.0")
    text = dumps(document)
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    names = {c["name"]: c for c in document["components"]}
    for required in ("zeke", "numpy", "ai-edge-litert", "bash", "libssl3"):
        assert required in names
    assert names["numpy"]["version"] == "2.4.6"
    assert names["libssl3"]["purl"].startswith("pkg:deb/debian/libssl3@")
    assert document["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    again = cyclonedx(
        "qemu-amd64", "0.1.0", "debian-12", list(reversed(packages)), 1_700_000_000, "0.1.0"
    )
    assert dumps(again) == text
    other = cyclonedx("qemu-amd64", "0.1.0", "debian-12", packages[1:], 1_700_000_000, "0.1.0")
    assert other["serialNumber"] != document["serialNumber"]


def test_sbom_schema_check_catches_a_broken_document():
    document = cyclonedx("x", "1", "debian-12", [Package("pypi", "numpy", "2.4.6")], 0, "1")
    document["components"][0]["type"] = "not-a-type"
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document)) is not None


@pytest.mark.parametrize(
    ("name", "must_list"),
    [
        (
            "coral-devboard",
            {
                "coral-edgetpu": {"libedgetpu1-std", "gasket-dkms"},
                "coral-mendel": {"linux-image-4.14.98-imx", "uboot-imx"},
            },
        ),
        (
            "jetson-orin-jp6",
            {
                "nvidia-t234": {"nvidia-l4t-kernel", "nvidia-l4t-core"},
                "nvidia-common": {"nvidia-l4t-jetson-io"},
            },
        ),
    ],
)
def test_manifest_records_the_vendor_packages_left_out(name, must_list):
    plan = resolve(load_profile(name), offline=True)
    record = {"trusted_keys": {"installed": [], "note": "no trusted keys provided"}}
    result = left_out(plan, record)
    assert "--offline" in result["reason"]
    assert set(result["by_source"]) == set(must_list)
    for source, packages in must_list.items():
        assert packages <= set(result["by_source"][source]["packages"])
    everything = sorted(p for s in result["by_source"].values() for p in s["packages"])
    assert everything == result["vendor_packages"]
    assert result["trusted_keys"] == "no trusted keys provided"
    online = left_out(resolve(load_profile(name)), {})
    assert online["vendor_packages"] == [] and online["reason"] is None


def test_manifest_says_whether_the_archive_is_pinned():
    jetson = archive_note(resolve(load_profile("jetson-orin-jp6")))
    assert jetson["pinned"] is False and "snapshot" in jetson["note"]
    plan = resolve(load_profile("qemu-amd64"))
    plan.distribution["snapshot"] = "20250520T000000Z"
    assert archive_note(plan)["pinned"] is True


LOCK = """\
# comment
numpy==2.2.6 ; python_full_version < '3.11' \\
    --hash=sha256:aaa
numpy==2.4.6 ; python_full_version == '3.11.*' \\
    --hash=sha256:bbb \\
    --hash=sha256:ccc
    # via zeke
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash=sha256:ddd
tomli==2.5.0 ; python_full_version < '3.11' \\
    --hash=sha256:eee
rich==15.0.0 \\
    --hash=sha256:fff
"""


def test_lock_entries_are_chosen_for_the_image_interpreter(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    entries = parse_lock(lock)
    assert len(entries) == 5
    bookworm = {e.name: e for e in for_target(entries, "3.11.2", "amd64")}
    assert set(bookworm) == {"numpy", "rich"}
    assert bookworm["numpy"].version == "2.4.6"
    assert bookworm["numpy"].line() == "numpy==2.4.6 --hash=sha256:bbb --hash=sha256:ccc"
    jammy = {e.name: e.version for e in for_target(entries, "3.10.12", "arm64")}
    assert jammy == {"numpy": "2.2.6", "tomli": "2.5.0", "rich": "15.0.0"}


def test_unhashed_lock_is_refused(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6\n")
    with pytest.raises(ImageBuildError, match="numpy is not pinned with hashes"):
        parse_lock(lock)
    lock.write_text("numpy>=2 --hash=sha256:abc\n")
    with pytest.raises(ImageBuildError, match="not pinned"):
        parse_lock(lock)


@pytest.mark.skipif(not (REPO / "requirements.lock").is_file(), reason="no lock in checkout")
def test_the_checkout_lock_serves_every_image_python():
    entries = parse_lock(REPO / "requirements.lock")
    for python, arch in (("3.11.2", "amd64"), ("3.11.2", "arm64"), ("3.10.12", "arm64")):
        names = {e.name for e in for_target(entries, python, arch)}
        assert {"numpy", "ai-edge-litert", "opencv-python-headless", "typer"} <= names


def test_platform_tags_cover_older_manylinux_levels():
    tags = platform_tags("arm64", "2.36")
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags
    assert all("x86_64" not in t for t in tags)
