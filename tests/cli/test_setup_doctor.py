"""``zeke setup`` and ``zeke doctor`` as a user runs them, on a fresh machine and on fixtures."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zeke.config import read_config
from zeke.resources import DEMO_CLIP
from zeke.testing.fake_boards import build

CHECK_IDS = [
    "python", "config", "board", "camera", "permissions", "models", "backend", "disk", "clock",
    "mesh", "extras",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(tmp_path):
    """A fresh machine as far as zeke can tell: no config anywhere it looks."""
    return {
        "ZEKE_CONFIG": str(tmp_path / "etc-zeke" / "zeke.toml"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "ZEKE_STATE_DIR": str(tmp_path / "state"),
    }


def test_setup_yes_then_doctor_passes(zeke_cli, fresh, tmp_path):
    config = Path(fresh["ZEKE_CONFIG"])
    proc = zeke_cli(
        "setup", "--yes", "--camera", f"file://{DEMO_CLIP}", "--name", "bench-1", env=fresh
    )
    assert proc.returncode == 0, proc.stderr
    assert "camera ok" in proc.stdout and "vision ok" in proc.stdout
    assert "face(s) in the test frame" in proc.stdout
    written = read_config(config)
    assert written.camera.uri == f"file://{DEMO_CLIP}"
    assert written.device.name == "bench-1"
    assert (written.vision.detector, written.vision.backend) == ("short", "auto")
    assert not list(config.parent.glob("*.tmp"))

    doctor = zeke_cli("doctor", "--json", env=fresh)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["ok"] is True and report["summary"]["fail"] == 0
    assert [c["id"] for c in report["checks"]] == CHECK_IDS
    by_id = {c["id"]: c for c in report["checks"]}
    assert by_id["config"]["status"] == "pass" and str(config) in by_id["config"]["detail"]
    assert by_id["camera"]["status"] == "pass" and "gives frames" in by_id["camera"]["detail"]
    assert by_id["models"]["status"] == "pass" and "sha256-verified" in by_id["models"]["detail"]
    assert by_id["backend"]["status"] in ("pass", "warn")
    assert by_id["mesh"]["status"] == "pass" and "not set up" in by_id["mesh"]["detail"]
    assert "test frame" in by_id["backend"]["detail"]
    for check in report["checks"]:
        assert set(check) == {"id", "title", "status", "detail", "fix"}
        assert check["status"] in ("pass", "warn", "fail")
        assert check["status"] == "pass" or check["fix"], "every problem comes with its fix"
    board = report["board"]
    assert {"kind", "model", "arch", "os", "details", "edgetpus", "libedgetpu", "plan"} <= set(
        board
    )

    human = zeke_cli("doctor", env=fresh)
    assert human.returncode == 0
    assert "passed" in human.stdout and "0 failed" in human.stdout


def test_setup_keeps_the_previous_config(zeke_cli, fresh):
    config = Path(fresh["ZEKE_CONFIG"])
    args = ("setup", "--yes", "--no-test", "--camera", "demo")
    assert zeke_cli(*args, "--name", "first", env=fresh).returncode == 0
    proc = zeke_cli(*args, "--name", "second", "--detector", "full", env=fresh)
    assert proc.returncode == 0, proc.stderr
    assert f"previous kept as {config}.bak" in proc.stdout
    assert read_config(config).device.name == "second"
    assert read_config(config).vision.detector == "full"
    assert read_config(f"{config}.bak").device.name == "first"


def test_doctor_fails_on_a_broken_config_and_says_how_to_fix(zeke_cli, fresh):
    config = Path(fresh["ZEKE_CONFIG"])
    config.parent.mkdir(parents=True)
    config.write_text('[vision]\ndetector = "huge"\n')
    proc = zeke_cli("doctor", "--json", env=fresh)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    check = next(c for c in report["checks"] if c["id"] == "config")
    assert check["status"] == "fail" and "got 'huge'" in check["detail"]
    assert "zeke config validate" in check["fix"]
    assert report["ok"] is False and report["summary"]["fail"] >= 1
    human = zeke_cli("doctor", env={**fresh, "COLUMNS": "300"})
    assert human.returncode == 1
    assert "[vision] detector: must be 'short', 'full' or 'ssd', got 'huge'" in human.stdout


def test_unattended_setup_keeps_a_configured_camera_that_fails(zeke_cli, fresh, tmp_path):
    """First boot: no --camera, the configured one gives nothing; setup goes on, doctor tells."""
    config = Path(fresh["ZEKE_CONFIG"])
    config.parent.mkdir(parents=True)
    config.write_text(f'[camera]\nuri = "{tmp_path / "gone.mp4"}"\n')
    proc = zeke_cli("setup", "--yes", env=fresh)
    assert proc.returncode == 0, proc.stderr
    assert "gives no frame" in proc.stdout and "zeke doctor" in proc.stdout
    assert read_config(config).camera.uri == str(tmp_path / "gone.mp4")
    assert zeke_cli("doctor", env=fresh).returncode == 1


def test_doctor_fails_when_the_camera_is_gone(zeke_cli, fresh, tmp_path):
    clip = tmp_path / "cam.mp4"
    shutil.copyfile(DEMO_CLIP, clip)
    assert zeke_cli("setup", "--yes", "--camera", str(clip), "--no-test", env=fresh).returncode == 0
    clip.unlink()
    proc = zeke_cli("doctor", env=fresh)
    assert proc.returncode == 1
    assert "no such video file" in proc.stdout and "1 failed" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_setup_refuses_a_camera_that_does_not_work(zeke_cli, fresh, tmp_path):
    proc = zeke_cli("setup", "--yes", "--camera", str(tmp_path / "none.mp4"), env=fresh)
    assert proc.returncode == 3
    assert proc.stderr.splitlines()[0] == f"error: no such video file: {tmp_path / 'none.mp4'}"
    assert not Path(fresh["ZEKE_CONFIG"]).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--detector", "huge"), "error: --detector must be one of short, full, ssd, not 'huge'"),
        (("--backend", "gpu"), "error: --backend must be one of auto, cpu, edgetpu, not 'gpu'"),
        (("--camera", "ftp://x"), "error: unsupported camera URI scheme 'ftp://'"),
        (("--name", "my box"), "error: zeke setup: [device] name: must be 1 to 63 letters"),
    ],
)
def test_setup_bad_options(zeke_cli, fresh, args, message):
    proc = zeke_cli("setup", "--yes", "--no-test", *args, env=fresh)
    assert proc.returncode == (5 if "--name" in args else 2), proc.stderr
    assert proc.stderr.startswith(message)
    assert not Path(fresh["ZEKE_CONFIG"]).exists()


def _users(root: Path, groups: str) -> None:
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
    )
    (etc / "group").write_text(groups)
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nalice:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text(
        "\n".join(f"{line.split(':')[0]}:*::" for line in groups.splitlines()) + "\n"
    )


def test_dry_run_prints_exactly_what_would_change(zeke_cli, fresh, tmp_path):
    root = build("coral-dev-board", tmp_path / "coral").root
    _users(root, "root:x:0:\nvideo:x:44:alice\ndialout:x:20:\nalice:x:1000:\n")
    proc = zeke_cli(
        "setup", "--yes", "--no-test", "--dry-run", "--camera", "v4l2:///dev/video0",
        "--root", str(root), "--user", "alice", env=fresh,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"would write {fresh['ZEKE_CONFIG']}" in out
    assert 'uri = "v4l2:///dev/video0"' in out
    rules = sorted(p.name for p in (REPO / "systemd" / "udev").glob("*.rules"))
    changes = out.split("would change the system:")[1].strip().splitlines()
    expected = [
        f"install udev rule {root}/etc/udev/rules.d/{name} (from {REPO}/systemd/udev/{name})"
        for name in rules
    ] + [
        f"create group plugdev: groupadd --root {root} --system plugdev",
        f"add alice to group plugdev: usermod --root {root} -aG plugdev alice",
        f"add alice to group dialout: usermod --root {root} -aG dialout alice",
        f"create group apex: groupadd --root {root} --system apex",  # the Coral's PCIe TPU
        f"add alice to group apex: usermod --root {root} -aG apex alice",
    ]
    assert [line.strip() for line in changes] == expected
    assert out.startswith("board: Coral Dev Board (aarch64, Mendel Linux 5.3), Edge TPU pcie")
    assert not Path(fresh["ZEKE_CONFIG"]).exists(), "a dry run writes nothing"
    assert not (root / "etc/udev").exists()
    assert "alice" not in (root / "etc/group").read_text().split("dialout")[1].split("\n")[0]


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("usermod"), reason="needs root and usermod"
)
def test_system_steps_are_applied_to_a_board_tree(zeke_cli, fresh, tmp_path):
    root = build("raspberry-pi-5", tmp_path / "pi").root
    _users(root, "root:x:0:\nvideo:x:44:\nplugdev:x:46:\ndialout:x:20:\nalice:x:1000:\n")
    proc = zeke_cli(
        "setup", "--yes", "--no-test", "--system", "--camera", "demo", "--root", str(root),
        "--user", "alice", env=fresh,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    installed = sorted(p.name for p in (root / "etc/udev/rules.d").iterdir())
    assert installed == sorted(p.name for p in (REPO / "systemd/udev").glob("*.rules"))
    groups = {
        line.split(":")[0]: line.split(":")[3]
        for line in (root / "etc/group").read_text().splitlines()
    }
    assert {groups["video"], groups["plugdev"], groups["dialout"]} == {"alice"}
    assert "apex" not in groups  # no PCIe Edge TPU on this board
    again = zeke_cli(
        "setup", "--yes", "--no-test", "--dry-run", "--camera", "demo", "--root", str(root),
        "--user", "alice", env=fresh,
    )  # fmt: skip
    assert "system: nothing to change" in again.stdout


def test_interactive_setup(fresh, tmp_path, monkeypatch):
    """The prompts in order: camera, detector, backend, device name."""
    from zeke.cli.main import app

    for key, value in fresh.items():
        monkeypatch.setenv(key, value)
    root = build("generic-x86", tmp_path / "pc").root  # one USB webcam: choice 2 is the demo
    answers = "2\nfull\ncpu\nlobby\n"
    result = CliRunner().invoke(app, ["setup", "--root", str(root), "--no-system"], input=answers)
    assert result.exit_code == 0, result.output
    assert "HD Pro Webcam C920" in result.output
    assert (
        "v4l2:///dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8E1F2A3F-video-index0" in result.output
    )
    # once with the defaults before choosing, once more with what was chosen
    assert result.output.count("vision ok") == 2
    assert "short on cpu" in result.output and "full on cpu" in result.output
    written = read_config(fresh["ZEKE_CONFIG"])
    assert (written.camera.uri, written.vision.detector, written.vision.backend) == (
        "demo", "full", "cpu"
    )  # fmt: skip
    assert written.device.name == "lobby"
    assert written.vision.threads == 4  # 8 CPUs in the fixture: half, at most 4


def test_doctor_on_fixture_boards(zeke_cli, fresh, tmp_path):
    for name, kind, camera in [
        ("raspberry-pi-5", "raspberry-pi", "csi://0"),
        ("jetson-orin-nano", "jetson", "csi://0"),
        ("coral-dev-board", "coral-dev-board", "v4l2:///dev/video0"),
    ]:
        root = build(name, tmp_path / name).root
        proc = zeke_cli("doctor", "--json", "--root", str(root), env=fresh)
        report = json.loads(proc.stdout)
        assert report["board"]["kind"] == kind
        cam = next(c for c in report["checks"] if c["id"] == "camera")
        assert f"cameras found: {camera}" in cam["detail"]
        extras = next(c for c in report["checks"] if c["id"] == "extras")
        if name == "raspberry-pi-5" and importlib.util.find_spec("picamera2") is None:
            assert extras["status"] == "warn" and "python3-picamera2" in extras["fix"]
