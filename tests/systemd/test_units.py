"""The unit files as systemd itself reads them: verify, security exposure, users, directories."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .unitsandbox import UnitFile

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
UNITS = sorted(UNIT_DIR.glob("*.service"))
KIOSK = UNIT_DIR / "zeke-kiosk.service"
MESH = UNIT_DIR / "zeke-mesh.service"
INSTALLED_ZEKE = "/opt/zeke/bin/zeke"
#: Where the image installs what the units run -> the same program in this checkout.
INSTALLED_PATHS = {
    INSTALLED_ZEKE: Path(sys.executable).parent / "zeke",
    "/usr/lib/zeke/zeke-firstboot": UNIT_DIR / "zeke-firstboot.sh",
}
#: The long-running services must stay tightly sandboxed; other units only report.
EXPOSURE_GOAL = {"zeke-kiosk.service": 2.0, "zeke-mesh.service": 2.0}

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt: systemd)"
)


def test_units_exist():
    assert {KIOSK, MESH} <= set(UNITS)


def runnable_copies(tmp_path: Path) -> list[Path]:
    """The units, byte for byte, except that Exec lines name this checkout's programs.

    ``systemd-analyze verify`` insists that every binary exists; on a build machine they
    live in the virtualenv and the checkout instead of /opt/zeke or /usr/lib/zeke. Every
    other line is the committed text.
    """
    copies = []
    for unit in UNITS:
        text = unit.read_text()
        for line in text.splitlines():
            if re.match(r"Exec\w+=", line):
                program = line.split("=", 1)[1].split()[0].lstrip("-@:+!")
                assert Path(program).exists() or program in INSTALLED_PATHS, (
                    f"{unit.name}: {program} is not on a build machine: add where the "
                    "checkout has it to INSTALLED_PATHS"
                )
        for installed, here in INSTALLED_PATHS.items():
            assert here.exists(), f"{here} is missing (install zeke into the virtualenv)"
            text = re.sub(
                rf"^(\w+=[-@:+!]*){re.escape(str(installed))}", rf"\g<1>{here}", text, flags=re.M
            )
        copy = tmp_path / unit.name
        copy.write_text(text)
        copies.append(copy)
    return copies


def test_systemd_analyze_verify_is_clean(tmp_path):
    copies = runnable_copies(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, copies)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    # verify exits 0 on some problems (unknown keys, bad values) but always reports them.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_would_catch_a_broken_unit(tmp_path):
    """The check above is real: a typo'd setting and a missing binary are both reported."""
    kiosk = tmp_path / KIOSK.name
    runnable_copies(tmp_path)
    broken = tmp_path / "broken.service"
    broken.write_text(kiosk.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictt"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True
    )
    assert "strictt" in result.stderr
    missing = tmp_path / "missing.service"
    missing.write_text(KIOSK.read_text())  # ExecStart=/opt/zeke/bin/zeke: not on this machine
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(missing)], capture_output=True, text=True
    )
    assert result.returncode != 0 and INSTALLED_ZEKE in result.stderr


def exposure(unit: Path) -> tuple[float, str]:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1)), result.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_security_exposure(unit):
    figure, report = exposure(unit)
    print(f"\n{unit.name}: exposure {figure}")
    print("\n".join(line for line in report.splitlines() if line.startswith("✗")))
    if unit.name in EXPOSURE_GOAL:
        assert figure <= EXPOSURE_GOAL[unit.name], report


def test_the_kiosk_has_no_network_and_the_mesh_no_camera():
    """The privacy split in the units' own words, so a careless edit fails loudly."""
    kiosk = UnitFile(KIOSK)
    assert kiosk.flag("PrivateNetwork")
    assert kiosk.words("IPAddressDeny") == ["any"]
    assert kiosk.words("IPAddressAllow") == []
    assert kiosk.words("RestrictAddressFamilies") == ["AF_UNIX"]
    assert kiosk.last("Type") == "notify"
    assert kiosk.last("WatchdogSec")
    assert kiosk.last("Restart") == "always"
    assert "getty@tty1.service" in kiosk.words("Conflicts", section="Unit")
    assert kiosk.last("TTYPath") == "/dev/tty1"
    assert kiosk.last("LimitCORE") == "0"  # a core dump would hold frames

    mesh = UnitFile(MESH)
    assert not mesh.flag("PrivateNetwork")
    assert mesh.last("DevicePolicy") == "closed"
    allowed = " ".join(mesh.values("DeviceAllow"))
    assert "video4linux" not in allowed and "apex" not in allowed and "usb_device" not in allowed
    assert "video" not in mesh.words("SupplementaryGroups")
    assert not set(mesh.words("SupplementaryGroups")) & {"video", "apex", "plugdev", "render"}
    assert mesh.words("IPAddressDeny") == ["any"]

    # Both speak through the same socket, which only their shared group can reach.
    for unit in (kiosk, mesh):
        assert "ZEKE_EVENTS_SOCKET=/run/zeke/events.sock" in unit.words("Environment")
        assert unit.last("Group") == "zeke"
    assert kiosk.last("RuntimeDirectory") == "zeke"
    assert kiosk.last("RuntimeDirectoryMode") == "0750"


def test_users_groups_and_directories_come_up(tmp_path):
    """sysusers and tmpfiles, run on a scratch root, create what the units name."""
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    sysusers = root / "usr/lib/sysusers.d/zeke.conf"
    tmpfiles = root / "usr/lib/tmpfiles.d/zeke.conf"
    sysusers.parent.mkdir(parents=True)
    tmpfiles.parent.mkdir(parents=True)
    shutil.copy(UNIT_DIR / "zeke.sysusers", sysusers)
    shutil.copy(UNIT_DIR / "zeke.tmpfiles", tmpfiles)

    run = subprocess.run(
        ["systemd-sysusers", f"--root={root}"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").open()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").open()}
    zeke_gid = groups["zeke"][2]
    for user in ("zeke-kiosk", "zeke-mesh"):
        assert passwd[user][3] == zeke_gid, f"{user} must have zeke as its primary group"
        assert int(passwd[user][2]) < 1000, "a system user"
        assert passwd[user][6].strip().endswith("nologin")

    # Every user and group a unit or the udev rules name exists after sysusers.
    named_groups = set()
    for unit_path in (KIOSK, MESH):
        unit = UnitFile(unit_path)
        assert unit.last("User") in passwd
        named_groups |= {unit.last("Group"), *unit.words("SupplementaryGroups")}
    for rules in UNIT_DIR.rglob("*.rules"):
        named_groups |= set(re.findall(r'GROUP="([^"]+)"', rules.read_text()))
    assert named_groups - set(groups) == set()

    # Only this file, only --create, only inside the scratch root.
    run = subprocess.run(
        ["systemd-tmpfiles", f"--root={root}", "--create", str(tmpfiles)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    run_dir = (root / "run/zeke").stat()
    assert (run_dir.st_uid, run_dir.st_gid) == (int(passwd["zeke-kiosk"][2]), int(zeke_gid))
    assert run_dir.st_mode & 0o7777 == 0o750
    assert (root / "var/lib/zeke/models").is_dir()
