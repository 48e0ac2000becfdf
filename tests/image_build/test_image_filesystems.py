"""The filesystem and disk steps on small inputs: same input, same bytes, real tools.

ext4 comes from a tarball through mke2fs >= 1.47.1 (fetched from bookworm-backports when
the host's is older), FAT from mkfs.vfat/mtools; neither needs root or a loop device.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from image_build.errors import HostToolError
from image_build.mke2fs import find_mke2fs
from image_build.plan import resolve
from image_build.profile import load_profile
from image_build.stages.filesystem import make_ext4, make_vfat

EPOCH = 1_700_000_000


def _ctx(tmp_path: Path, name: str) -> SimpleNamespace:
    work = tmp_path / name
    work.mkdir()
    plan = resolve(load_profile("qemu-amd64"))
    return SimpleNamespace(
        plan=plan,
        work_dir=work,
        source_date_epoch=EPOCH,
        record={},
        log=lambda stage: work / f"{stage}.log",
        partition_dir=lambda part: tmp_path / "files" / part,
    )


def _tarball(path: Path) -> Path:
    """A small rootfs-like archive: directories, a file, a symlink, odd owners and times."""
    added: set[Path] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in [
            ("etc/hostname", b"zeke\n", 0o644),
            ("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
        ]:
            for parent in reversed(Path(name).parents):
                if str(parent) != "." and parent not in added:
                    added.add(parent)
                    info = tarfile.TarInfo(f"./{parent}")
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                    tar.addfile(info)
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mode, info.mtime, info.uid = len(data), mode, EPOCH - 5, 0
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./usr/bin/alias")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "tool", EPOCH
        tar.addfile(link)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mke2fs():
    try:
        return find_mke2fs()
    except (HostToolError, PermissionError, OSError) as err:
        pytest.skip(f"no mke2fs >= 1.47.1 here: {err}")


def test_ext4_from_a_tarball_is_reproducible(tmp_path, mke2fs):
    tar = _tarball(tmp_path / "rootfs.tar")
    root = resolve(load_profile("qemu-amd64")).root
    first = make_ext4(_ctx(tmp_path, "a"), root, tar, 16)
    second = make_ext4(_ctx(tmp_path, "b"), root, tar, 16)
    assert _sha(first) == _sha(second)
    env = mke2fs.env({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    debugfs = shutil.which("debugfs", path=env["PATH"])
    if debugfs:
        out = subprocess.run(
            [debugfs, "-R", "stat /usr/bin/tool", str(first)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "mtime: 0x6553f0fb" in out  # the archive's time, not the host's
        uuid = subprocess.run(
            [debugfs, "-R", "stats", str(first)], capture_output=True, text=True, check=True
        ).stdout
        assert f"Filesystem UUID:          {root.fs_uuid}" in uuid
        assert "orphan_file" not in uuid  # readable by older e2fsck (Ubuntu 22.04)


@pytest.mark.skipif(
    shutil.which("mkfs.vfat") is None or shutil.which("mcopy") is None,
    reason="needs dosfstools and mtools",
)
def test_fat_boot_partition_is_reproducible(tmp_path):
    files = tmp_path / "files" / "boot"
    (files / "zeke").mkdir(parents=True)
    (files / "ZEKE-README.txt").write_text("hello\n")
    (files / "zeke" / "authorized_keys").write_text("ssh-ed25519 AAAA test\n")
    boot = resolve(load_profile("qemu-amd64")).partitions[0]
    first = make_vfat(_ctx(tmp_path, "a"), boot)
    (files / "ZEKE-README.txt").touch()  # a newer host time must not matter
    second = make_vfat(_ctx(tmp_path, "b"), boot)
    assert _sha(first) == _sha(second)
    listing = subprocess.run(
        ["mdir", "-i", str(first), "-/", "::/"],
        capture_output=True,
        text=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    assert "ZEKE-README" in listing and "authoriz" in listing
    label = subprocess.run(
        ["mlabel", "-i", str(first), "-s", "::"],
        capture_output=True,
        text=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    assert "ZEKEBOOT" in label
