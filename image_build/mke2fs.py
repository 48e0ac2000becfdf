"""A reproducible mke2fs: 1.47.1 or newer, from the host or from bookworm-backports.

bookworm's mke2fs 1.47.0 copies host inode times with ``-d DIR`` and cannot read a tarball;
1.47.2 (bookworm-backports) reads ``-d rootfs.tar`` and, with a fixed UUID, hash seed and
``E2FSPROGS_FAKE_TIME``, writes the same bytes every time. When the host's is too old, the
backports packages are downloaded with a private apt configuration (the host's sources and
installed packages stay untouched) and unpacked into a cache directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from image_build.errors import HostToolError
from image_build.host import run, tool_version

MIN_VERSION = (1, 47, 1)
BACKPORTS_SOURCE = "deb http://deb.debian.org/debian bookworm-backports main\n"
BACKPORTS_PACKAGES = ("e2fsprogs", "libext2fs2")
DEFAULT_CACHE = Path("/var/cache/zeke-image-build")


@dataclass(frozen=True)
class Mke2fs:
    """A usable mke2fs binary, the library path it needs and its version."""

    path: Path
    version: str
    origin: str
    library_path: Path | None = None

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.library_path is not None:
            env["LD_LIBRARY_PATH"] = os.fspath(self.library_path)
        return env


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:3])


def _probe(path: Path, library_path: Path | None = None) -> str | None:
    """The version a mke2fs binary reports, or None if it is absent or does not run."""
    if not path.exists():
        return None
    env = None
    if library_path is not None:
        env = {"LD_LIBRARY_PATH": os.fspath(library_path), "PATH": "/usr/bin:/bin"}
    return tool_version([os.fspath(path), "-V"], r"mke2fs (\d+\.\d+\.\d+)", env=env)


def find_mke2fs(cache_dir: Path = DEFAULT_CACHE, log: Path | None = None) -> Mke2fs:
    """The host's mke2fs if new enough, else a private copy from bookworm-backports."""
    host = Path("/usr/sbin/mke2fs")
    version = _probe(host)
    if version and _parse(version) >= MIN_VERSION:
        return Mke2fs(host, version, "host")
    root = cache_dir / "e2fsprogs-backports"
    private = root / "sbin/mke2fs"
    version = _probe(private, _library_dir(root))
    if version and _parse(version) >= MIN_VERSION:
        return Mke2fs(private, version, "bookworm-backports (private copy)", _library_dir(root))
    _fetch_backports(root, log or cache_dir / "e2fsprogs-backports.log")
    libs = _library_dir(root)
    version = _probe(private, libs)
    if not version or _parse(version) < MIN_VERSION:
        raise HostToolError(
            f"could not get mke2fs >= 1.47.1 (host has {version or 'none'})",
            hint="apt-get install -t bookworm-backports e2fsprogs, or check network access "
            "to deb.debian.org",
        )
    return Mke2fs(private, version, "bookworm-backports (private copy)", libs)


def _library_dir(root: Path) -> Path | None:
    """The multiarch library directory of the unpacked packages (e.g. lib/x86_64-linux-gnu)."""
    found = sorted(root.glob("lib/*-linux-gnu*/libext2fs.so.2"))
    return found[0].parent if found else None


def _fetch_backports(root: Path, log: Path) -> None:
    """Download e2fsprogs from bookworm-backports with a private apt state and unpack it."""
    apt_dir = root.parent / "apt-backports"
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(BACKPORTS_SOURCE)
    options = [
        f"-oDir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt_dir / 'lists'}",
        f"-oDir::Cache={apt_dir / 'cache'}",
        "-oDebug::NoLocking=1",
        "-oAPT::Get::List-Cleanup=0",
    ]
    run(["apt-get", *options, "update"], log, what="apt-get update (bookworm-backports)")
    targets = [f"{name}/bookworm-backports" for name in BACKPORTS_PACKAGES]
    run(
        ["apt-get", *options, "download", *targets],
        log,
        cwd=apt_dir / "debs",
        what="apt-get download e2fsprogs (bookworm-backports)",
    )
    root.mkdir(parents=True, exist_ok=True)
    for deb in sorted((apt_dir / "debs").glob("*.deb")):
        run(["dpkg-deb", "-x", deb, root], log, what=f"dpkg-deb -x {deb.name}")
    # Debian 12 is merged-/usr: the packages ship /usr/sbin and /usr/lib.
    for name in ("sbin", "lib"):
        usr = root / "usr" / name
        link = root / name
        if usr.is_dir() and not link.exists():
            link.symlink_to(Path("usr") / name)
