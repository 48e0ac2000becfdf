"""Normalise: what must differ per device or per build is gone, and the archive is stable."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from image_build.errors import StageError
from image_build.plan import resolve
from image_build.profile import load_profile
from image_build.progress import BuildProgress
from image_build.stages.normalise import check_no_passwords, normalise

EPOCH = 1_700_000_000
SHADOW = "root:*:19000:0:99999:7:::\nzeke-kiosk:!*:19000::::::\n"


def _tree(root: Path, mtime: int) -> None:
    files = {
        "etc/ssh/ssh_host_ed25519_key": "secret",
        "etc/ssh/sshd_config": "PermitRootLogin prohibit-password\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
        "etc/passwd-": "old\n",
        "etc/shadow": SHADOW,
        "etc/resolv.conf": "nameserver 10.0.0.1\n",
        "var/lib/systemd/random-seed": "seed",
        "var/log/apt/history.log": "installed things at a time\n",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease": "lists",
        "var/cache/ldconfig/aux-cache": "cache",
        "root/.cache/pip/x": "cache",
        "tmp/zeke-payload/x.whl": "wheel",
        "boot/firmware/ZEKE-README.txt": "readme\n",
        "usr/bin/tool": "#!/bin/sh\n",
        "lib/systemd/system/systemd-resolved.service": "[Unit]\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "var/lib/dbus").mkdir(parents=True)
    (root / "var/lib/dbus/machine-id").symlink_to("/etc/machine-id")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def _ctx(tmp_path: Path, name: str) -> SimpleNamespace:
    work = tmp_path / name
    plan = resolve(load_profile("qemu-amd64"))
    return SimpleNamespace(
        plan=plan,
        rootfs=work / "rootfs",
        work_dir=work,
        source_date_epoch=EPOCH,
        record={},
        progress=BuildProgress(("normalise",)),
        log=lambda stage: work / f"{stage}.log",
        partition_dir=lambda part: work / "partitions" / part,
    )


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
def test_normalise_removes_per_device_state_and_archives_reproducibly(tmp_path):
    digests = []
    for name, mtime in (("one", EPOCH + 3600), ("two", EPOCH + 7200)):
        ctx = _ctx(tmp_path, name)
        _tree(ctx.rootfs, mtime)
        normalise(ctx)
        root = ctx.rootfs
        assert not list(root.glob("etc/ssh/ssh_host_*"))
        assert (root / "etc/ssh/sshd_config").exists()
        assert (root / "etc/machine-id").read_text() == "uninitialized\n"
        assert (root / "var/lib/dbus/machine-id").is_symlink()
        assert os.readlink(root / "etc/resolv.conf") == "../run/systemd/resolve/stub-resolv.conf"
        for gone in (
            "etc/passwd-",
            "var/lib/systemd/random-seed",
            "var/cache/ldconfig/aux-cache",
            "root/.cache",
            "tmp/zeke-payload",
        ):
            assert not (root / gone).exists(), gone
        assert (root / "var/log/apt").is_dir() and not list((root / "var/log").rglob("*.log"))
        assert not list((root / "var/lib/apt/lists").iterdir())
        # The boot partition's files left the tree for their own filesystem.
        assert list((root / "boot/firmware").iterdir()) == []
        assert (ctx.partition_dir("boot") / "ZEKE-README.txt").read_text() == "readme\n"
        tar = ctx.work_dir / "rootfs.tar"
        with tarfile.open(tar) as archive:
            members = archive.getmembers()
        assert all(m.mtime <= EPOCH for m in members), "mtimes are clamped"
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert ctx.record["outputs"]["rootfs.tar"]["sha256"]
        digests.append(hashlib.sha256(tar.read_bytes()).hexdigest())
    # Same tree, built at different times: the same archive.
    assert digests[0] == digests[1]


def test_an_account_with_a_password_is_refused(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/shadow").write_text(SHADOW)
    check_no_passwords(tmp_path)
    (tmp_path / "etc/shadow").write_text(SHADOW + "pi:$y$j9T$abc$def:19000:0:99999:7:::\n")
    with pytest.raises(StageError, match="account 'pi' has a password"):
        check_no_passwords(tmp_path)
