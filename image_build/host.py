"""Running things on the build host: logged commands, chroots, and the host tools a build needs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from image_build.errors import HostToolError, StageError

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Host packages per tool, for actionable errors (README lists the same).
TOOL_PACKAGES = {
    "mmdebstrap": "mmdebstrap",
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "zstd": "zstd",
    "tar": "tar",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-img": "qemu-utils",
    "qemu-aarch64-static": "qemu-user-static",
}


def clean_env(source_date_epoch: int, **extra: str) -> dict[str, str]:
    """The environment every build command runs in: nothing inherited from the caller."""
    env = {
        "PATH": CLEAN_PATH,
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/root",
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
        "DEBIAN_FRONTEND": "noninteractive",
    }
    env.update(extra)
    return env


NETWORK_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def with_network_settings(env: dict[str, str]) -> dict[str, str]:
    """Add the caller's proxy, CA and pip index settings: fetching is the host's business."""
    merged = dict(env)
    for key, value in os.environ.items():
        if key.startswith("PIP_") or key.lower().endswith("_proxy") or key in NETWORK_VARIABLES:
            merged[key] = value
    return merged


def run(
    cmd: Sequence[str | os.PathLike[str]],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    what: str | None = None,
) -> None:
    """Run a command, appending its output to ``log``; a failure names the log's last lines."""
    argv = [os.fspath(c) for c in cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise StageError(
            f"{what or argv[0]} failed (exit {proc.returncode}): {' | '.join(tail)}",
            hint=f"full output in {log}",
        )


def capture(cmd: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None) -> str:
    """Run a short query command and return its stdout (errors become HostToolError)."""
    argv = [os.fspath(c) for c in cmd]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise HostToolError(f"{argv[0]} is not installed", hint=_install_hint(argv[0])) from None
    if proc.returncode != 0:
        raise HostToolError(f"{' '.join(argv)} failed: {proc.stderr.strip()[:300]}")
    return proc.stdout


def _install_hint(tool: str) -> str:
    package = TOOL_PACKAGES.get(tool, tool)
    return f"apt-get install {package} (see image_build/README.md)"


def require_tools(tools: Sequence[str]) -> dict[str, str]:
    """Paths of the given host tools; a missing one is a HostToolError naming its package."""
    found = {}
    missing = []
    for tool in tools:
        path = shutil.which(tool, path=CLEAN_PATH)
        if path is None:
            missing.append(tool)
        else:
            found[tool] = path
    if missing:
        packages = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
        raise HostToolError(
            f"missing host tools: {', '.join(missing)}",
            hint=f"apt-get install {' '.join(packages)} (see image_build/README.md)",
        )
    return found


def require_root() -> None:
    if os.geteuid() != 0:
        raise HostToolError(
            "building an image needs root (mmdebstrap --mode=root, chroot, mounts)",
            hint="run it as root, e.g. sudo .venv/bin/python -m image_build build ...",
        )


def require_binfmt(architecture: str) -> None:
    """Foreign-architecture chroots need qemu-user registered with binfmt_misc."""
    if architecture == "amd64":
        return
    qemu = {"arm64": "qemu-aarch64"}[architecture]
    entry = Path("/proc/sys/fs/binfmt_misc") / qemu
    if not Path("/proc/sys/fs/binfmt_misc/status").exists():
        raise HostToolError(
            "binfmt_misc is not mounted, so arm64 programs cannot run in the chroot",
            hint="mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && "
            "update-binfmts --enable qemu-aarch64",
        )
    if not entry.exists() or "enabled" not in entry.read_text():
        raise HostToolError(
            f"{qemu} is not registered with binfmt_misc",
            hint="apt-get install qemu-user-static binfmt-support && "
            "update-binfmts --enable qemu-aarch64",
        )


def url_answers(url: str, timeout: float = 8.0) -> bool:
    """Whether an apt repository URL answers at all (used to fail early and clearly)."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tool_version(cmd: Sequence[str], pattern: str, env: dict[str, str] | None = None) -> str | None:
    """The first match of ``pattern`` in a tool's version output (stdout or stderr)."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        return None
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else None


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """Mount /proc, /sys and /dev into a rootfs for the duration of some chroot commands."""
    mounted: list[Path] = []
    specs = [
        (["-t", "proc", "proc"], root / "proc"),
        (["-t", "sysfs", "sysfs"], root / "sys"),
        (["--bind", "/dev"], root / "dev"),
        (["--bind", "/dev/pts"], root / "dev/pts"),
    ]
    try:
        for args, target in specs:
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, os.fspath(target)], check=True)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            if subprocess.run(["umount", os.fspath(target)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", os.fspath(target)], check=False)


def in_chroot(
    root: Path, cmd: Sequence[str], log: Path, source_date_epoch: int, what: str | None = None
) -> None:
    """Run a command inside the rootfs (mounts must be set up by ``chroot_mounts``)."""
    run(
        ["chroot", root, *cmd],
        log,
        env=clean_env(source_date_epoch, PYTHONDONTWRITEBYTECODE="1"),
        what=what or f"chroot {cmd[0]}",
    )
