"""Board profiles: one declarative TOML file per board, validated before anything runs.

A profile says what an image is made of (distribution, apt sources, packages, kernel, boot
method, partition layout, the zeke payload, units) and nothing about how it is built; the
plan (``plan.py``) turns it into concrete steps.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from image_build.errors import ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_packages(names: list[str]) -> list[str]:
    for name in names:
        if not _PACKAGE_RE.match(name):
            raise ValueError(f"{name!r} is not a valid Debian package name")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"listed twice: {', '.join(dupes)}")
    return names


# A list of Debian package names: each valid, none twice.
PackageList = Annotated[list[str], AfterValidator(_check_packages)]


class Distribution(_Strict):
    """The base distribution the rootfs is bootstrapped from."""

    name: Literal["debian", "ubuntu"]
    suite: str
    architecture: Literal["amd64", "arm64"]
    mirror: str
    components: list[str] = ["main"]
    variant: Literal["apt", "required", "important", "standard"] = "apt"
    # A snapshot.debian.org timestamp (YYYYMMDDTHHMMSSZ) pins the archive for bit-identical
    # rebuilds later; without it the build records the versions it got.
    snapshot: str | None = None
    keyring: str | None = None
    python: str = Field(pattern=r"^3\.\d+\.\d+$", description="python3 version, e.g. 3.11.2")
    glibc: str = Field(pattern=r"^2\.\d+$", description="C library version, e.g. 2.36")

    @field_validator("snapshot")
    @classmethod
    def _snapshot_format(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{8}T\d{6}Z", value):
            raise ValueError("must look like 20250520T000000Z (snapshot.debian.org timestamp)")
        return value

    @field_validator("mirror")
    @classmethod
    def _mirror_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class AptSource(_Strict):
    """An extra apt source; ``vendor`` sources are the board maker's and may be unreachable."""

    name: Annotated[str, Field(pattern=_NAME_RE.pattern)]
    uri: str
    suites: list[str]
    components: list[str] = ["main"]
    vendor: bool = False
    # Keyring file for signed-by, relative to image_build/keyrings/ (vendor keys are not
    # shipped: the build says where to put them).
    keyring: str | None = None
    keyring_url: str | None = None
    # Packages that only this source provides; left out (and recorded) in --offline builds.
    packages: PackageList = []

    @model_validator(mode="after")
    def _vendor_needs_key(self) -> AptSource:
        if self.vendor and not self.keyring:
            raise ValueError(f"vendor source {self.name!r} needs a keyring file name")
        if self.packages and not self.vendor:
            raise ValueError(f"only vendor sources list packages (source {self.name!r})")
        return self


class Kernel(_Strict):
    """Kernel packages and how the kernel is started."""

    packages: PackageList
    boot: Literal["qemu-direct", "raspberrypi-firmware", "coral-uboot", "jetson-l4t"]
    cmdline: list[str]
    console: str


class Qemu(_Strict):
    """How the boot test starts this image (qemu profiles only)."""

    binary: str
    machine: str
    cpu: str
    memory_mib: int = Field(2048, ge=256, le=16384)
    smp: int = Field(2, ge=1, le=8)
    kvm: bool = False


class Partition(_Strict):
    """One partition of the disk image, in order."""

    name: Annotated[str, Field(pattern=_NAME_RE.pattern)]
    filesystem: Literal["vfat", "ext4", "ext2"]
    mountpoint: str
    # None: sized to the content plus headroom (the root partition; grown at first boot).
    size_mib: int | None = Field(None, ge=8)
    type: Literal["linux", "esp", "basic-data"] = "linux"
    label: str | None = None

    @field_validator("mountpoint")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value


class RawBlob(_Strict):
    """A bootloader blob written at a fixed offset outside any partition."""

    source: str = Field(description="path inside the rootfs, e.g. /usr/lib/u-boot/.../u-boot.imx")
    offset_kib: int = Field(ge=0)
    package: str


class Layout(_Strict):
    """Partition table and partitions."""

    table: Literal["gpt", "dos"] = "gpt"
    first_offset_mib: int = Field(1, ge=1)
    partitions: list[Partition]
    blobs: list[RawBlob] = []
    output: Literal["img.zst"] = "img.zst"

    @model_validator(mode="after")
    def _one_root(self) -> Layout:
        roots = [p for p in self.partitions if p.mountpoint == "/"]
        if len(roots) != 1:
            raise ValueError("exactly one partition must have mountpoint '/'")
        if self.partitions[-1].mountpoint != "/":
            raise ValueError("the root partition must come last so first boot can grow it")
        if roots[0].filesystem not in ("ext4", "ext2"):
            raise ValueError("the root partition must be ext4 or ext2")
        sized = [p.name for p in self.partitions if p.size_mib is None and p.mountpoint != "/"]
        if sized:
            raise ValueError(f"partitions other than root need size_mib: {', '.join(sized)}")
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ValueError("partition names must be unique")
        return self


class Payload(_Strict):
    """The zeke payload: venv, units, first-boot defaults."""

    venv: str = "/opt/zeke"
    system_site_packages: bool = False
    units: list[str]
    setup_args: list[str] = ["--yes"]
    # Directory on the build host whose files are copied to /etc/zeke/trusted-keys/ (signed
    # model bundles); relative to the checkout. Absent directories are skipped and recorded.
    trusted_keys: str | None = "keys/trusted"

    @field_validator("units")
    @classmethod
    def _unit_names(cls, value: list[str]) -> list[str]:
        for unit in value:
            if not re.fullmatch(r"[A-Za-z0-9@_.-]+\.(service|socket|timer|path)", unit):
                raise ValueError(f"{unit!r} is not a systemd unit file name")
        return value


class Profile(_Strict):
    """A board profile, as read from ``profiles/<name>.toml``."""

    name: Annotated[str, Field(pattern=_NAME_RE.pattern)]
    description: str
    board: str
    hostname: Annotated[str, Field(pattern=_NAME_RE.pattern, max_length=63)]
    distribution: Distribution
    sources: list[AptSource] = []
    packages: PackageList
    kernel: Kernel
    layout: Layout
    zeke: Payload
    qemu: Qemu | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.kernel.boot == "qemu-direct" and self.qemu is None:
            raise ValueError("kernel.boot = 'qemu-direct' needs a [qemu] table")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("apt source names must be unique")
        everywhere = list(self.packages) + list(self.kernel.packages)
        for source in self.sources:
            everywhere += source.packages
        dupes = sorted({n for n in everywhere if everywhere.count(n) > 1})
        if dupes:
            raise ValueError(f"packages listed in more than one place: {', '.join(dupes)}")
        return self

    @property
    def vendor_sources(self) -> list[AptSource]:
        return [s for s in self.sources if s.vendor]


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``profiles/``."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def _format_validation(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(x) for x in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def load_profile(name_or_path: str | Path) -> Profile:
    """Read and validate a profile by name (``qemu-amd64``) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(available_profiles())
        raise ProfileError(
            f"no profile {str(name_or_path)!r} (looked for {path.name})",
            hint=f"use one of: {known}, or a path to a .toml profile",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProfileError(
            f"profile {path.name} is not valid TOML: {err}", hint="fix the syntax"
        ) from None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as err:
        raise ProfileError(
            f"profile {path.name} is invalid: {_format_validation(err)}",
            hint="fix the named fields (see image_build/README.md, 'Profiles')",
        ) from None
    if profile.name != path.stem:
        raise ProfileError(
            f"profile {path.name} is named {profile.name!r}",
            hint=f"set name = {path.stem!r} or rename the file",
        )
    return profile
